"""The notification outbox in the API database: rows written with the cursor advance, sent, listed.

One row per event and recipient (unique key), so a block followed twice (the process died after
sending nothing, or between two blocks) writes nothing twice.  WeChat rows start ``pending`` and the
deliverer marks them ``sent`` (or, after a permanent error or too many attempts, ``failed``); API rows
(staff and tenant audiences) are ``sent`` once written: reading them is their delivery.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from ledger.core.encoding import CHINA_TZ
from ticket_api.db import Notification, NotifyCursor, WechatUser, make_sessionmaker, write_lock
from ticket_api.notify.events import Event

CURSOR = "chain"
#: attempts before a WeChat message is given up (``failed``), and the longest wait between two
MAX_ATTEMPTS = 8
MAX_BACKOFF_S = 300.0

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def backoff(attempts: int, *, base: float = 1.0) -> float:
    """Seconds to wait after the ``attempts``-th failed send: 1, 2, 4, ... at most ``MAX_BACKOFF_S``."""
    return float(min(MAX_BACKOFF_S, base * 2.0 ** max(0, attempts - 1)))


def principal_keys(role: str, tenant: str) -> list[str]:
    """The audience names a user of ``role`` and ``tenant`` reads."""
    return [f"tenant:{role}:{tenant}", f"role:{role}"]


@dataclass(frozen=True)
class Pending:
    """A WeChat message to send."""

    id: int
    openid: str
    event: Event
    attempts: int


class Outbox:
    def __init__(self, engine: Engine, *, clock: Clock = _now, backoff_base: float = 1.0) -> None:
        self.engine = engine
        self.session = make_sessionmaker(engine)
        self.clock = clock
        self.backoff_base = backoff_base

    # -- the cursor --------------------------------------------------------
    def cursor(self) -> int | None:
        """The last block whose events are in the outbox (None before the first run)."""
        with self.session() as s:
            row = s.get(NotifyCursor, CURSOR)
            return None if row is None else row.height

    def note_error(self, error: str | None) -> None:
        """Record (or clear) why following the chain failed, for the status answer."""
        with write_lock(self.engine), self.session.begin() as s:
            row = s.get(NotifyCursor, CURSOR)
            if row is not None:
                row.last_error = error[:500] if error else None
                row.pid = os.getpid()

    def record(self, height: int, events: Iterable[Event], *, chain_height: int | None = None) -> int:
        """Write the rows of ``events`` (found in blocks up to ``height``) and move the cursor to
        ``height``, in one transaction; the number of new rows."""
        now = self.clock()
        added = 0
        with write_lock(self.engine), self.session.begin() as s:
            users = s.execute(select(WechatUser.openid, WechatUser.role, WechatUser.tenant)).all()
            for e in events:
                recipients: dict[str, str] = {}
                for aud in e.audiences:
                    recipients[aud] = "api"
                    for openid, role, tenant in users:
                        if aud in principal_keys(role, tenant):
                            recipients[f"wechat:{openid}"] = "wechat"
                have = set(s.scalars(select(Notification.recipient).where(Notification.event_id == e.event_id)))
                doc = json.dumps(e.to_dict(), ensure_ascii=False, sort_keys=True)
                for recipient, channel in recipients.items():
                    if recipient in have:
                        continue
                    wechat = channel == "wechat"
                    s.add(Notification(event_id=e.event_id, recipient=recipient, channel=channel, kind=e.kind,
                                       event=doc, height=e.height, created_at=now,
                                       status="pending" if wechat else "sent", attempts=0,
                                       next_attempt_at=now if wechat else None, sent_at=None if wechat else now))
                    added += 1
            row = s.get(NotifyCursor, CURSOR)
            if row is None:
                s.add(NotifyCursor(name=CURSOR, height=height, chain_height=chain_height, updated_at=now,
                                   pid=os.getpid(), last_error=None))
            else:
                row.height, row.updated_at, row.pid, row.last_error = height, now, os.getpid(), None
                row.chain_height = chain_height
        return added

    # -- delivery ----------------------------------------------------------
    def due(self, limit: int = 50) -> list[Pending]:
        now = self.clock()
        with self.session() as s:
            rows = s.scalars(select(Notification).where(Notification.status == "pending",
                                                        Notification.next_attempt_at <= now)
                             .order_by(Notification.id).limit(limit)).all()
        return [Pending(r.id, r.recipient.removeprefix("wechat:"), Event.from_dict(json.loads(r.event)), r.attempts)
                for r in rows]

    def sent(self, row_id: int) -> None:
        with write_lock(self.engine), self.session.begin() as s:
            row = s.get(Notification, row_id)
            if row is not None and row.status == "pending":
                row.status, row.sent_at, row.attempts = "sent", self.clock(), row.attempts + 1
                row.last_error = None

    def failed(self, row_id: int, error: str, *, permanent: bool = False) -> None:
        """A failed attempt: try again after the backoff, or give up (``failed``)."""
        with write_lock(self.engine), self.session.begin() as s:
            row = s.get(Notification, row_id)
            if row is None or row.status != "pending":
                return
            row.attempts += 1
            row.last_error = error[:500]
            if permanent or row.attempts >= MAX_ATTEMPTS:
                row.status, row.next_attempt_at = "failed", None
            else:
                row.next_attempt_at = self.clock() + timedelta(seconds=backoff(row.attempts, base=self.backoff_base))

    # -- reading -----------------------------------------------------------
    def for_reader(self, keys: Sequence[str], *, after: int | None = None, before: int | None = None,
                   limit: int = 50, newest_first: bool = True) -> list[tuple[int, Event, datetime]]:
        """API rows for the audiences ``keys``: newest first below ``before``, or oldest first after ``after``."""
        q = select(Notification).where(Notification.channel == "api", Notification.recipient.in_(list(keys)))
        if after is not None:
            q = q.where(Notification.id > after)
        if before is not None:
            q = q.where(Notification.id < before)
        q = q.order_by(Notification.id.desc() if newest_first else Notification.id).limit(limit)
        with self.session() as s:
            rows = s.scalars(q).all()
        return [(r.id, Event.from_dict(json.loads(r.event)), r.created_at) for r in rows]

    def summary(self) -> dict[str, Any]:
        """The notifier's health: cursor, its process, the last error, WeChat messages by status and the
        newest failure."""
        with self.session() as s:
            cur = s.get(NotifyCursor, CURSOR)
            counts: dict[str, int] = {str(k): int(n) for k, n in s.execute(
                select(Notification.status, func.count()).where(Notification.channel == "wechat")
                .group_by(Notification.status)).all()}
            last = s.scalars(select(Notification).where(Notification.last_error.is_not(None))
                             .order_by(Notification.id.desc()).limit(1)).first()
        return {
            "cursor_height": None if cur is None else cur.height,
            "chain_final_height": None if cur is None else cur.chain_height,
            "lag_blocks": None if cur is None or cur.chain_height is None else max(0, cur.chain_height - cur.height),
            "updated_at": None if cur is None else cur.updated_at.astimezone(CHINA_TZ).isoformat(timespec="seconds"),
            "pid": None if cur is None else cur.pid,
            "error": None if cur is None else cur.last_error,
            "wechat": {k: int(counts.get(k, 0)) for k in ("pending", "sent", "failed")},
            "last_send_error": None if last is None else {"id": last.id, "status": last.status,
                                                          "attempts": last.attempts, "error": last.last_error},
        }
