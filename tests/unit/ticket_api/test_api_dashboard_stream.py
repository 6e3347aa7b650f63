"""The dashboard's event stream (``ticket_api.views.dashboard``): what counts as a change, and the frames."""

from __future__ import annotations

import json
from typing import Any

from ticket_api.views.dashboard import frames, snapshot_digest


def _snap(at: str, age: int, state: str = "reported") -> dict[str, Any]:
    return {"generated_at": at, "counters": {"open_violations": 1},
            "violations": [{"violation_id": "V1", "state": state, "age_seconds": age}]}


class _Clock:
    """A fake monotonic clock that ``sleep`` moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def test_digest_ignores_what_moves_by_itself_and_sees_real_changes() -> None:
    """generated_at and the events' ages change every second without anything happening: same digest; a state
    that changed: another digest."""
    a = snapshot_digest(_snap("2026-12-02T22:00:00+08:00", 5))
    assert a == snapshot_digest(_snap("2026-12-02T22:00:07+08:00", 12))
    assert a != snapshot_digest(_snap("2026-12-02T22:00:07+08:00", 12, state="confirmed"))


def _events(stream: list[str]) -> list[dict[str, Any]]:
    out = []
    for frame in stream:
        lines = dict(line.split(": ", 1) for line in frame.strip().split("\n") if not line.startswith(":"))
        if lines.get("event") == "dashboard":
            out.append(json.loads(lines["data"]))
    return out


def test_frames_send_the_snapshot_now_then_only_changes_with_keepalives_and_end() -> None:
    """retry first, the snapshot at once, nothing while it stays the same but a keepalive comment every
    ``keepalive`` seconds, the changed one as soon as it is seen, and the stream ends after ``seconds``."""
    clock = _Clock()
    states = iter(["reported"] * 12 + ["confirmed"] * 100)
    calls = []

    def snapshot() -> dict[str, Any]:
        calls.append(clock.now)
        return _snap(f"t{clock.now}", int(clock.now), next(states))

    out = list(frames(snapshot, seconds=30, poll=1.0, keepalive=5.0, clock=clock, sleep=clock.sleep))
    assert out[0] == "retry: 1000\n\n"
    sent = _events(out[1:])
    assert [e["violations"][0]["state"] for e in sent] == ["reported", "confirmed"]
    assert out.count(": keepalive\n\n") >= 3
    assert len(calls) <= 31 and clock.now < 30
    assert all(f.endswith("\n\n") for f in out)


def test_a_failing_snapshot_ends_the_stream_instead_of_raising() -> None:
    """The nodes unreachable or the database gone for a moment: the stream ends (the browser reconnects)."""
    clock = _Clock()

    def snapshot() -> dict[str, Any]:
        if clock.now >= 2:
            raise ConnectionError("node down")
        return _snap("t", 0)

    out = list(frames(snapshot, seconds=30, poll=1.0, clock=clock, sleep=clock.sleep))
    assert len(_events(out)) == 1 and clock.now == 2
