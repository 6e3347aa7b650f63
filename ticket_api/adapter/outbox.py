"""Gate claims: one scan per ticket and kind decided at once, its signed transaction delivered from an outbox.

A barrier cannot wait a block time for the consortium.  A gate that asks not to wait (``Prefer:
respond-async``) is answered as soon as

1. the QR verified offline (``ledger.qrticket.gatecheck``),
2. a node's *preview* of the signed transaction passed the ledger's own rules on the current state
   (``ledger.eticket.queries.preview``), and
3. the claim of ``(ticket, kind)`` with the signed transaction was committed to the API database (a
   unique key: of two gates racing for one ticket, exactly one claim commits).

The claim row is a transactional outbox: a pump thread in every API process hands unsent claims to the
consortium in batches (submission is idempotent by tx id, so a claim sent twice by two processes is one
transaction), then reads each one's verdict once final.  The verdict normally agrees with the preview;
when the state moved in between (the ticket voided a moment before), the truck has already passed the
barrier on a transaction the ledger refused, and the pump reports a ``no_ticket`` violation for it.
``GET /api/v1/gate/scans/<tx_id>`` shows a claim with its verdict.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Result, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger.core.transaction import Transaction
from ticket_api.db import GateClaim, write_lock
from ticket_api.errors import ServiceUnavailable
from ticket_api.ledger_client import NodeClient

log = logging.getLogger(__name__)


def _affected(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (``Session.execute`` of DML answers a ``CursorResult``)."""
    return cast(CursorResult[Any], result).rowcount

#: Claims made by a caller that waits for finality itself are only sent by the pump if that request died.
ORPHAN_AFTER = timedelta(seconds=60)
BATCH = 500
#: Settled claims are kept this long for ``GET /api/v1/gate/scans/<tx_id>``; tickets are valid for hours.
RETAIN = timedelta(days=30)


@dataclass(frozen=True)
class Claim:
    """A gate's claim on ``(ticket_id, kind)`` and where its transaction stands."""

    ticket_id: str
    kind: str
    gate: str
    actor: str
    tx_id: str
    created_at: datetime
    submitted_at: datetime | None
    verdict: str | None
    height: int | None
    violation_id: str | None

    @property
    def final(self) -> bool:
        return self.verdict is not None


#: Called with a claim the ledger refused after the gate had let the truck through; returns a violation id.
OnRefused = Callable[[Claim], str | None]


#: ``violation_id`` while a process is reporting the refusal (``_report_refused``): ``reporting:<pid>:<epoch s>``.
REPORTING = "reporting:"
#: A reporting mark this old belongs to a process that died while reporting: another one takes over.
STALE_MARK = timedelta(minutes=5)


def _stale(mark: str, now: datetime) -> bool:
    try:
        since = int(mark.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return True
    return now.timestamp() - since > STALE_MARK.total_seconds()


def _claim(row: GateClaim) -> Claim:
    vid = row.violation_id if row.violation_id and not row.violation_id.startswith(REPORTING) else None
    return Claim(ticket_id=row.ticket_id, kind=row.kind, gate=row.gate, actor=row.actor, tx_id=row.tx_id,
                 created_at=row.created_at, submitted_at=row.submitted_at, verdict=row.verdict, height=row.height,
                 violation_id=vid)


def holds_claim(engine: Engine, ticket_id: str, kind: str) -> bool:
    """Does a gate hold ``(ticket_id, kind)``: a claim not yet decided, or one the ledger found valid?"""
    with Session(engine) as s:
        return s.scalar(select(GateClaim.id).where(
            GateClaim.ticket_id == ticket_id, GateClaim.kind == kind,
            GateClaim.verdict.is_(None) | (GateClaim.verdict == "valid"),
        ).limit(1)) is not None


class GateOutbox:
    """Claims in the API database and the pump that delivers them (one pump thread per process)."""

    def __init__(self, *, engine: Engine, client: NodeClient, on_refused: OnRefused | None = None,
                 gather: float = 0.025, settle_every: float = 0.25, idle_every: float = 4.0) -> None:
        self.engine = engine
        self.client = client
        self.on_refused = on_refused
        self.gather = gather
        self.settle_every = settle_every
        #: the pump's round when nothing is outstanding: doubled from ``settle_every`` up to this while rounds
        #: find nothing to send, settle or report (a claim made in this process wakes it at once)
        self.idle_every = max(idle_every, settle_every)
        self._outstanding = 0  # claims the last upkeep left unsettled or unreported
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._pruned = datetime.min.replace(tzinfo=UTC)
        self._guard = threading.Lock()

    # -- claims ----------------------------------------------------------------
    def claim(self, *, ticket_id: str, kind: str, gate: str, actor: str, tx: Transaction, send: bool) -> bool:
        """Claim ``(ticket_id, kind)`` for ``tx``; False when another scan holds it already.

        With ``send`` the pump delivers the transaction; without, the caller submits it itself (and the
        pump only picks it up if the caller's request died, after ``ORPHAN_AFTER``).
        """
        row = GateClaim(ticket_id=ticket_id, kind=kind, gate=gate, actor=actor, tx_id=tx.tx_id,
                        tx=json.dumps(tx.to_dict(), ensure_ascii=False), send=send,
                        created_at=datetime.now(UTC))
        try:
            with write_lock(self.engine), Session(self.engine) as s, s.begin():
                s.add(row)
        except IntegrityError:
            return False
        if send:
            self.ensure_running()
            self._wake.set()
        return True

    def release(self, tx_id: str) -> None:
        """Drop a claim whose transaction the consortium refused (the ticket may be scanned again)."""
        with write_lock(self.engine), Session(self.engine) as s, s.begin():
            s.execute(delete(GateClaim).where(GateClaim.tx_id == tx_id))

    def settle(self, tx_id: str, *, verdict: str, height: int | None) -> None:
        """Record the final verdict a waiting caller received itself."""
        with write_lock(self.engine), Session(self.engine) as s, s.begin():
            s.execute(update(GateClaim).where(GateClaim.tx_id == tx_id, GateClaim.verdict.is_(None))
                      .values(verdict=verdict, height=height, submitted_at=datetime.now(UTC)))

    def get(self, tx_id: str) -> Claim | None:
        with Session(self.engine) as s:
            row = s.scalar(select(GateClaim).where(GateClaim.tx_id == tx_id))
            return _claim(row) if row is not None else None

    # -- the pump --------------------------------------------------------------
    def ensure_running(self) -> None:
        """Start this process's pump (again after a fork: threads do not survive one)."""
        with self._guard:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="gate-outbox", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        last_settle = 0.0
        wait = self.settle_every
        while not self._stop.is_set():
            woken = self._wake.wait(wait)
            if woken:
                # Claims arrive one by one: one request carries what arrives within ``gather`` seconds.
                self._stop.wait(self.gather)
            self._wake.clear()
            try:
                now = datetime.now(UTC)
                busy = self._send(now) > 0 or woken
                if time.monotonic() - last_settle >= self.settle_every:
                    last_settle = time.monotonic()
                    self._upkeep(now)
                # Idle (nothing sent, nothing left to settle or report): look less often.  Claims of another
                # process are its own pump's; this one only meets them late when that process died.
                wait = self.settle_every if busy or self._outstanding else min(wait * 2, self.idle_every)
            except ServiceUnavailable as exc:  # no node answered: keep the claims, try again
                log.warning("gate outbox: %s", exc)
                self._stop.wait(self.settle_every)
            except Exception:  # the pump must outlive any one bad round
                log.exception("gate outbox round failed")
                self._stop.wait(self.settle_every)

    def pump_once(self, *, now: datetime | None = None) -> bool:
        """One round by hand: send unsent claims, settle the ones whose transaction is final, report
        refused ones; True if there was work."""
        now = now or datetime.now(UTC)
        sent = self._send(now)
        return bool(self._upkeep(now) or sent)

    def _upkeep(self, now: datetime) -> int:
        done = self._settle(now) + self._report_refused(now)
        if now - self._pruned > timedelta(minutes=10):
            self._pruned = now
            self.prune(now - RETAIN)
        return done

    def prune(self, before: datetime) -> int:
        """Forget settled claims made before ``before`` (a refused one once its violation is reported)."""
        with write_lock(self.engine), Session(self.engine) as s, s.begin():
            return _affected(s.execute(delete(GateClaim).where(
                GateClaim.created_at < before, GateClaim.verdict.is_not(None),
                (GateClaim.verdict == "valid") | GateClaim.violation_id.is_not(None),
            )))

    def _send(self, now: datetime) -> int:
        with Session(self.engine) as s:
            rows = s.execute(
                select(GateClaim.tx_id, GateClaim.tx).where(
                    GateClaim.submitted_at.is_(None), GateClaim.verdict.is_(None),
                    GateClaim.send.is_(True) | (GateClaim.created_at < now - ORPHAN_AFTER),
                ).order_by(GateClaim.id).limit(BATCH)
            ).all()
        if not rows:
            return 0
        results = self.client.submit_many([json.loads(r.tx) for r in rows])
        rejected = {r["tx_id"]: str(r.get("reason") or "rejected") for r in results
                    if r.get("status") == "rejected" and r.get("tx_id")}
        with write_lock(self.engine), Session(self.engine) as s, s.begin():
            s.execute(update(GateClaim).where(GateClaim.tx_id.in_([r.tx_id for r in rows]),
                                              GateClaim.submitted_at.is_(None)).values(submitted_at=now))
        if rejected:  # refused at admission: never ordered, final at once
            self._decide({tx_id: (reason, None) for tx_id, reason in rejected.items()})
        return len(rows)

    def _settle(self, now: datetime) -> int:
        with Session(self.engine) as s:
            ids = list(s.scalars(
                select(GateClaim.tx_id).where(GateClaim.submitted_at.is_not(None), GateClaim.verdict.is_(None))
                .order_by(GateClaim.id).limit(BATCH)
            ))
        self._outstanding = len(ids)
        if not ids:
            return 0
        final = {i: st for i, st in self.client.tx_details(ids).items() if st.get("status") == "final"}
        self._outstanding = len(ids) - len(final)
        if final:
            self._decide({i: (str(st.get("code")), st.get("height")) for i, st in final.items()})
        return len(final)

    def _decide(self, verdicts: dict[str, tuple[str, int | None]]) -> None:
        """Record final verdicts, one database transaction for the batch.  Compare-and-set per claim: of
        several processes settling one claim, one records it."""
        refused = []
        with write_lock(self.engine), Session(self.engine) as s, s.begin():
            for tx_id, (verdict, height) in verdicts.items():
                won = _affected(s.execute(update(GateClaim).where(GateClaim.tx_id == tx_id,
                                                                  GateClaim.verdict.is_(None))
                                          .values(verdict=verdict, height=height)))
                if won and verdict != "valid":
                    refused.append((tx_id, verdict))
        for tx_id, verdict in refused:
            log.warning("gate claim %s refused by the ledger after the gate let it through: %s", tx_id[:16],
                        verdict)

    def _report_refused(self, now: datetime) -> int:
        """Hand each refused claim without a violation to ``on_refused``, once: a process takes a claim by
        marking it (compare-and-set, the mark names the process and the time); a failed report clears the
        mark for the next round, and a mark older than ``STALE_MARK`` (its process died) is taken over."""
        if self.on_refused is None:
            return 0
        with Session(self.engine) as s:
            rows = list(s.scalars(select(GateClaim).where(
                GateClaim.verdict.is_not(None), GateClaim.verdict != "valid",
                GateClaim.violation_id.is_(None) | GateClaim.violation_id.startswith(REPORTING),
            ).order_by(GateClaim.id).limit(50)))
        self._outstanding += len(rows)
        done = 0
        mark = f"{REPORTING}{os.getpid()}:{int(now.timestamp())}"
        for row in rows:
            if row.violation_id is not None and not _stale(row.violation_id, now):
                continue  # another process is reporting it right now
            with write_lock(self.engine), Session(self.engine) as s, s.begin():
                held = GateClaim.violation_id.is_(None) if row.violation_id is None else (
                    GateClaim.violation_id == row.violation_id)
                won = _affected(s.execute(update(GateClaim).where(GateClaim.id == row.id, held)
                                          .values(violation_id=mark)))
            if not won:
                continue
            try:
                vid = self.on_refused(_claim(row))
            except Exception:  # a node down, say: clear the mark, the next round tries again
                log.exception("gate claim %s: reporting the refusal failed", row.tx_id[:16])
                vid = None
            with write_lock(self.engine), Session(self.engine) as s, s.begin():
                s.execute(update(GateClaim).where(GateClaim.id == row.id, GateClaim.violation_id == mark)
                          .values(violation_id=vid))
            done += 1 if vid else 0
        return done
