"""The notification outbox: one row per event and recipient, written with the cursor; retries with
backoff; failures visible; readers see their audiences only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ticket_api.db import make_engine
from ticket_api.notify.deliver import SendError, deliver_due
from ticket_api.notify.events import Event
from ticket_api.notify.outbox import MAX_ATTEMPTS, Outbox, Pending, backoff, principal_keys
from ticket_api.tokens import TokenStore


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 12, 2, 13, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.t


def setup(tmp_path: Path) -> tuple[Outbox, Clock]:
    engine = make_engine(f"sqlite:///{tmp_path}/api.sqlite")
    TokenStore(engine).bind_wechat("o-1", role="contractor", tenant="ORG-1")
    TokenStore(engine).bind_wechat("o-2", role="contractor", tenant="ORG-2")
    clock = Clock()
    return Outbox(engine, clock=clock), clock


EV = Event("permit_approved:PM1", "permit_approved", 5, "2026-12-02T21:00:00+08:00", {"permit_id": "PM1"},
           ("tenant:contractor:ORG-1", "role:operator"))


def test_rows_per_recipient_written_once_with_the_cursor(tmp_path: Path) -> None:
    """An event becomes one API row per audience and one WeChat row per bound openid; writing the same
    event again (a block followed twice) adds nothing; the cursor moves with the rows."""
    box, _ = setup(tmp_path)
    assert box.cursor() is None
    assert box.record(5, [EV]) == 3
    assert box.cursor() == 5
    assert box.record(6, [EV]) == 0 and box.cursor() == 6
    [p] = box.due()
    assert p.openid == "o-1" and p.event == EV
    assert [i for i, _e, _c in box.for_reader(principal_keys("contractor", "ORG-1"))]
    assert box.for_reader(principal_keys("contractor", "ORG-2")) == []
    assert len(box.for_reader(principal_keys("operator", "centre"))) == 1


class FlakySender:
    def __init__(self, fails: int, permanent: bool = False) -> None:
        self.fails, self.permanent, self.sent = fails, permanent, []

    def send(self, p: Pending) -> None:
        if self.fails:
            self.fails -= 1
            raise SendError("WeChat errcode -1", permanent=self.permanent)
        self.sent.append(p.id)


def test_retries_with_backoff_then_sent_once(tmp_path: Path) -> None:
    """A failed send waits 1 s, then 2 s, ... before the next attempt; once sent it is never sent again;
    the newest failure shows in the summary until then."""
    box, clock = setup(tmp_path)
    box.record(5, [EV])
    sender = FlakySender(2)
    assert deliver_due(box, sender) == 0  # type: ignore[arg-type]
    assert box.summary()["last_send_error"]["attempts"] == 1
    assert deliver_due(box, sender) == 0 and box.due() == []  # type: ignore[arg-type]
    clock.t += timedelta(seconds=1)
    assert deliver_due(box, sender) == 0  # type: ignore[arg-type]
    clock.t += timedelta(seconds=1)
    assert box.due() == []
    clock.t += timedelta(seconds=1)
    assert deliver_due(box, sender) == 1  # type: ignore[arg-type]
    clock.t += timedelta(hours=1)
    assert deliver_due(box, sender) == 0 and len(sender.sent) == 1  # type: ignore[arg-type]
    assert box.summary()["wechat"] == {"pending": 0, "sent": 1, "failed": 0}
    assert [backoff(n) for n in (1, 2, 3, 20)] == [1.0, 2.0, 4.0, 300.0]


def test_permanent_errors_and_too_many_attempts_fail_visibly(tmp_path: Path) -> None:
    """A permanent error (invalid openid, refused subscription) gives up at once; others after
    MAX_ATTEMPTS; both show as failed."""
    box, clock = setup(tmp_path)
    box.record(5, [EV])
    deliver_due(box, FlakySender(1, permanent=True))  # type: ignore[arg-type]
    assert box.summary()["wechat"]["failed"] == 1
    box.record(6, [Event("penalty:PN1", "penalty_recorded", 6, EV.time, {}, ("tenant:contractor:ORG-1",))])
    sender = FlakySender(100)
    for _ in range(MAX_ATTEMPTS):
        clock.t += timedelta(seconds=400)
        deliver_due(box, sender)  # type: ignore[arg-type]
    assert box.summary()["wechat"] == {"pending": 0, "sent": 0, "failed": 2}
