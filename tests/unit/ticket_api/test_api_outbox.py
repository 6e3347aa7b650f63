"""The gate claims' outbox (``ticket_api.adapter.outbox``) on a real SQLite database, with a stand-in for the
consortium's HTTP client (the functional tests in tests/functional/test_api_story.py drive it for real)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.core.crypto import PrivateKey
from ledger.core.transaction import Transaction
from ticket_api.adapter.outbox import ORPHAN_AFTER, RETAIN, Claim, GateOutbox
from ticket_api.db import make_engine

KEY = PrivateKey.generate()


def tx(ticket: str, n: int = 0) -> Transaction:
    return Transaction.create(key=KEY, type="gate.exit", payload={"ticket_id": ticket, "n": n},
                              actor="gate:exit:P-001", timestamp="2026-11-25T08:00:00+08:00")


class Consortium:
    """Records what the outbox sends; answers statuses from ``verdicts`` (tx id -> code) once ``final``."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.verdicts: dict[str, str] = {}
        self.final = False
        self.reject: set[str] = set()
        self.lock = threading.Lock()

    def submit_many(self, txs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        with self.lock:
            for d in txs:
                t = Transaction.from_dict(d)
                self.sent.append(t.tx_id)
                status = "rejected" if t.tx_id in self.reject else "accepted"
                out.append({"tx_id": t.tx_id, "status": status, **({"reason": "bad_signature"}
                                                                     if status == "rejected" else {})})
        return out

    def tx_details(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {i: ({"status": "final", "code": self.verdicts.get(i, "valid"), "height": 7} if self.final
                    else {"status": "pending", "code": None, "height": None}) for i in ids}


def outbox(tmp_path: Path, client: Consortium, reports: list[Claim] | None = None) -> GateOutbox:
    engine = make_engine(f"sqlite:///{tmp_path / 'api.sqlite'}")

    def refused(c: Claim) -> str:
        assert reports is not None
        reports.append(c)
        return f"WPYS{len(reports):05d}"

    return GateOutbox(engine=engine, client=client, on_refused=refused if reports is not None else None)  # type: ignore[arg-type]


def test_one_claim_per_ticket_and_kind(tmp_path: Path) -> None:
    """A second claim on the same ticket and kind is refused; another kind, or another ticket, is not."""
    box = outbox(tmp_path, Consortium())
    claim = {"gate": "exit_gate:P-001", "actor": "gate:exit:P-001", "send": False}
    assert box.claim(ticket_id="ET1", kind="exit", tx=tx("ET1"), **claim) is True
    assert box.claim(ticket_id="ET1", kind="exit", tx=tx("ET1", 1), **claim) is False
    assert box.claim(ticket_id="ET1", kind="disposal", tx=tx("ET1", 2), **claim) is True
    assert box.claim(ticket_id="ET2", kind="exit", tx=tx("ET2"), **claim) is True


def test_concurrent_claims_exactly_one_wins(tmp_path: Path) -> None:
    """Sixteen threads claiming one ticket at once: exactly one claim commits."""
    box = outbox(tmp_path, Consortium())
    barrier = threading.Barrier(16)
    wins: list[bool] = []

    def go(i: int) -> None:
        barrier.wait()
        wins.append(box.claim(ticket_id="ET9", kind="exit", gate="g", actor="gate:exit:P-001", tx=tx("ET9", i),
                              send=False))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(wins) == [False] * 15 + [True]


def test_pump_sends_then_settles_valid(tmp_path: Path) -> None:
    """Claims to send go out in one batch, are marked submitted, and settle valid once final; nothing is
    reported for a valid verdict and nothing is sent twice."""
    c = Consortium()
    reports: list[Claim] = []
    box = outbox(tmp_path, c, reports)
    txs = [tx(f"ET{i}") for i in range(3)]
    for i, t in enumerate(txs):
        assert box.claim(ticket_id=f"ET{i}", kind="exit", gate="g", actor="gate:exit:P-001", tx=t, send=True)
    box.stop()  # claim() started the pump thread: drive the rounds by hand instead
    box.pump_once()
    assert sorted(c.sent) == sorted(t.tx_id for t in txs)
    first = box.get(txs[0].tx_id)
    assert first is not None and first.submitted_at is not None and not first.final
    c.final = True
    box.pump_once()
    assert len(c.sent) == 3
    for t in txs:
        got = box.get(t.tx_id)
        assert got is not None and (got.verdict, got.height, got.violation_id) == ("valid", 7, None)
    assert reports == []


def test_refused_after_admission_is_reported_once_across_processes(tmp_path: Path) -> None:
    """When the ordered block refuses a claim's transaction, the verdict is recorded and the refusal
    reported once, even with two API processes' pumps settling the same claim."""
    c = Consortium()
    reports: list[Claim] = []
    a = outbox(tmp_path, c, reports)
    b = GateOutbox(engine=a.engine, client=c, on_refused=a.on_refused)  # type: ignore[arg-type]
    t = tx("ET5")
    assert a.claim(ticket_id="ET5", kind="exit", gate="g", actor="gate:exit:P-001", tx=t, send=True)
    a.stop()
    a.pump_once()
    c.final, c.verdicts[t.tx_id] = True, "voided"
    a.pump_once()
    b.pump_once()
    got = a.get(t.tx_id)
    assert got is not None and (got.verdict, got.violation_id) == ("voided", "WPYS00001")
    assert [r.tx_id for r in reports] == [t.tx_id]


def test_refused_at_admission_is_final_at_once(tmp_path: Path) -> None:
    """A transaction the node rejects on submission is settled with that reason without waiting for a block."""
    c = Consortium()
    reports: list[Claim] = []
    box = outbox(tmp_path, c, reports)
    t = tx("ET6")
    c.reject.add(t.tx_id)
    assert box.claim(ticket_id="ET6", kind="exit", gate="g", actor="gate:exit:P-001", tx=t, send=True)
    box.stop()
    box.pump_once()
    got = box.get(t.tx_id)
    assert got is not None and got.verdict == "bad_signature" and len(reports) == 1


def test_waiting_callers_claims_are_left_to_them_unless_orphaned(tmp_path: Path) -> None:
    """A claim whose caller submits and waits itself is not sent by the pump, unless the caller's request
    died: after ``ORPHAN_AFTER`` the pump delivers it; a released claim frees the ticket again."""
    c = Consortium()
    box = outbox(tmp_path, c)
    t = tx("ET7")
    assert box.claim(ticket_id="ET7", kind="exit", gate="g", actor="gate:exit:P-001", tx=t, send=False)
    box.pump_once()
    assert c.sent == []
    box.pump_once(now=datetime.now(UTC) + ORPHAN_AFTER + timedelta(seconds=1))
    assert c.sent == [t.tx_id]
    box.release(t.tx_id)
    assert box.get(t.tx_id) is None
    assert box.claim(ticket_id="ET7", kind="exit", gate="g", actor="gate:exit:P-001", tx=tx("ET7", 1), send=False)


def test_settled_claims_are_pruned_after_the_retention_unsettled_never(tmp_path: Path) -> None:
    """Pruning forgets settled claims older than the retention; a claim still waiting for its verdict, or a
    refused one whose violation is not reported yet, stays."""
    c = Consortium()
    box = outbox(tmp_path, c)
    done, waiting = tx("ET8"), tx("ET9")
    for t, tid in ((done, "ET8"), (waiting, "ET9")):
        assert box.claim(ticket_id=tid, kind="exit", gate="g", actor="gate:exit:P-001", tx=t, send=False)
    box.settle(done.tx_id, verdict="valid", height=3)
    assert box.prune(datetime.now(UTC) - RETAIN) == 0
    assert box.prune(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert box.get(done.tx_id) is None and box.get(waiting.tx_id) is not None


def test_a_report_left_half_done_by_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    """While a process reports a refusal the claim shows no violation yet (not the process's mark); if that
    process died mid-report, another takes the claim over once the mark is stale, and reports it once."""
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from ticket_api.adapter.outbox import STALE_MARK
    from ticket_api.db import GateClaim

    c = Consortium()
    reports: list[Claim] = []
    box = outbox(tmp_path, c, reports)
    t = tx("ET10")
    assert box.claim(ticket_id="ET10", kind="exit", gate="g", actor="gate:exit:P-001", tx=t, send=False)
    box.settle(t.tx_id, verdict="voided", height=4)
    now = datetime.now(UTC)
    with Session(box.engine) as s, s.begin():
        s.execute(update(GateClaim).values(violation_id=f"reporting:999999:{int(now.timestamp())}"))
    box.pump_once(now=now)
    got = box.get(t.tx_id)
    assert got is not None and got.violation_id is None and reports == []
    box.pump_once(now=now + STALE_MARK + timedelta(seconds=1))
    got = box.get(t.tx_id)
    assert got is not None and got.violation_id == "WPYS00001" and len(reports) == 1
    box.pump_once(now=now + STALE_MARK + timedelta(seconds=2))
    assert len(reports) == 1


def test_pump_knows_when_nothing_is_outstanding(tmp_path: Path) -> None:
    """A round that leaves a claim unsettled counts it outstanding (the pump keeps its quick round); once the
    claim is final nothing is outstanding (the pump may look less often, up to ``idle_every``)."""
    c = Consortium()
    box = outbox(tmp_path, c, [])
    assert box.claim(ticket_id="ET1", kind="exit", gate="g", actor="gate:exit:P-001", tx=tx("ET1"), send=True)
    box.stop()
    box.pump_once()
    assert box._outstanding == 1
    c.final = True
    box.pump_once()
    assert box._outstanding == 0 and box.idle_every >= box.settle_every
