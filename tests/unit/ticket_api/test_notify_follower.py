"""The follower reads final blocks after its cursor, one database transaction per block, and resumes
where it stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ticket_api.db import make_engine
from ticket_api.notify.follower import Follower
from ticket_api.notify.outbox import Outbox


def reject(height: int) -> dict[str, Any]:
    return {"header": {"height": height, "timestamp": "2026-12-02T13:00:00Z"},
            "transactions": [{"tx_id": f"t{height}", "code": "valid", "tx": {"type": "permit.decide", "payload": {
                "permit_id": f"PM{height}", "decision": "reject", "department": "d", "reason": "r"}}}]}


class FakeClient:
    def __init__(self, final: int) -> None:
        self.final = final
        self.asked: list[tuple[int, int]] = []
        self.polls: list[tuple[int | None, float]] = []

    def final_height(self, *, after: int | None = None, wait: float = 0.0) -> int:
        self.polls.append((after, wait))
        return self.final

    def blocks(self, start: int, limit: int) -> list[dict[str, Any]]:
        self.asked.append((start, limit))
        return [reject(h) for h in range(start, min(self.final, start + limit - 1) + 1)]

    def query_at(self, name: str, height: int, **kw: Any) -> Any:
        assert name == "permit"
        return {"permit_id": kw["permit_id"], "contractor_org_id": "ORG-1", "decisions": []}


def test_follows_final_blocks_in_batches_and_resumes(tmp_path: Path) -> None:
    """From genesis in batches up to the final height; a new follower (a restarted process) starts after
    the cursor; nothing is recorded twice; ``head`` on a first run skips the history."""
    engine = make_engine(f"sqlite:///{tmp_path}/api.sqlite")
    box = Outbox(engine)
    client = FakeClient(final=4)
    f = Follower(client, box, batch=3)  # type: ignore[arg-type]
    assert f.step() == 3 and box.cursor() == 2
    assert Follower(client, box, batch=3).step() == 2 and box.cursor() == 4  # type: ignore[arg-type]
    assert client.asked == [(0, 3), (3, 2)]
    assert f.step() == 0
    # a first run asks for the final height at once; with a cursor the node is asked to wait for a new block
    assert client.polls[0] == (None, 0.0) and client.polls[-1] == (4, f.long_poll) and f.long_poll > 0
    rows = box.for_reader(["tenant:contractor:ORG-1"], limit=100)
    assert sorted(e.event_id for _i, e, _c in rows) == [f"permit_rejected:PM{h}" for h in range(5)]
    fresh = Outbox(make_engine(f"sqlite:///{tmp_path}/other.sqlite"))
    assert Follower(FakeClient(final=9), fresh, start="head").step() == 0 and fresh.cursor() == 9  # type: ignore[arg-type]
