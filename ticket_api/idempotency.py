"""``Idempotency-Key``: a retried state-changing request gets the first answer again.

Records are per principal (``Principal.key``) and key.  The same key with a
different request (method, path or body) is refused 422
``idempotency_key_reused``; a retry while the first is still running gets 409
``idempotency_in_progress``.  5xx answers are not stored (the retry runs again).
Replays carry ``Idempotent-Replayed: true``.

The ledger transaction a request submits is recorded in its row *before* it is submitted
(:class:`RowJournal`, handed to the services in ``Submission.journal``).  A worker that dies after the
ledger committed but before the answer was stored leaves that row without an answer but with the
transaction: a retry does not wait for the row to go stale and act again (a second ticket), it runs the
request at once with the recorded transaction, which the consortium knows by its tx id (submission is
idempotent), and answers what the first attempt would have.  A 5xx after the transaction was recorded (a
ledger timeout) keeps the row for the same reason.

Use it under the route and ``require`` and above the flask-smorest decorators::

    @blp.route("/permits", methods=["POST"])
    @require("contractor")
    @idempotent
    @blp.arguments(PermitIn)
    @blp.response(201, PermitOut)
    def create(data): ...
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from flask import Response, current_app, g, make_response, request
from sqlalchemy import CursorResult, Engine, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ledger.core.transaction import Transaction
from ticket_api.db import IdempotencyRecord, write_lock
from ticket_api.errors import ApiError, Conflict, InvalidRequest

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
STALE_AFTER = timedelta(minutes=5)
_KEPT_HEADERS = ("Location", "Content-Type")

F = TypeVar("F", bound=Callable[..., Any])


def fingerprint() -> str:
    h = hashlib.sha256()
    h.update(request.method.encode())
    h.update(b"\0")
    h.update(request.path.encode())
    h.update(b"\0")
    h.update(request.get_data(cache=True))
    return h.hexdigest()


def current_key() -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 200 or not key.isprintable() or not key.isascii():
        raise InvalidRequest("bad Idempotency-Key", fields={HEADER: ["1 to 200 printable ASCII characters"]})
    return key


def _replay(row: IdempotencyRecord) -> Response:
    resp = Response(row.body or b"", status=row.status or 200, content_type=row.content_type)
    for name, value in json.loads(row.headers or "{}").items():
        resp.headers[name] = value
    resp.headers[REPLAY_HEADER] = "true"
    return resp


class RowJournal:
    """``TxJournal`` over one idempotency row (see the module doc).

    The first transaction an attempt submits is recorded if the row holds none (compare-and-set: of two
    attempts running at once, both submit the one recorded first); if the row holds one, that one is
    submitted instead.  A later transaction of the same attempt (a fresh id drawn after ``duplicate_id``)
    replaces the record.
    """

    def __init__(self, engine: Engine, session: sessionmaker[Session], row_id: int) -> None:
        self.engine = engine
        self.session = session
        self.row_id = row_id
        self.adopted = False
        self.recorded = False

    def adopt(self, tx: Transaction) -> Transaction:
        values = {"tx_id": tx.tx_id, "tx": json.dumps(tx.to_dict(), ensure_ascii=False)}
        row = IdempotencyRecord.id == self.row_id
        with write_lock(self.engine), self.session.begin() as s:
            if self.adopted:
                s.execute(update(IdempotencyRecord).where(row).values(**values))
                return tx
            self.adopted = True
            won = s.execute(update(IdempotencyRecord).where(row, IdempotencyRecord.tx.is_(None)).values(**values))
            if cast(CursorResult[Any], won).rowcount:
                self.recorded = True
                return tx
            kept = s.scalar(select(IdempotencyRecord.tx).where(row))
        if kept is None:  # the row is gone (a stale-row clean-up): nothing to follow
            return tx
        self.recorded = True
        return Transaction.from_dict(json.loads(kept))


def _store(engine: Engine, session: sessionmaker[Session], row_id: int, resp: Response) -> None:
    """Store the answer in the row (the first attempt to answer wins)."""
    headers = {h: resp.headers[h] for h in _KEPT_HEADERS if h in resp.headers}
    with write_lock(engine), session.begin() as s:
        s.execute(update(IdempotencyRecord).where(IdempotencyRecord.id == row_id, IdempotencyRecord.status.is_(None))
                  .values(status=resp.status_code, body=resp.get_data(),
                          content_type=resp.content_type or "application/json", headers=json.dumps(headers)))


def idempotent(view: F) -> F:
    """Make a state-changing view safe to retry with ``Idempotency-Key``."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = current_key()
        if key is None:
            return view(*args, **kwargs)
        principal = g.principal.key
        fp = fingerprint()
        ext = current_app.extensions["ticket_api"]
        session = ext.sessionmaker
        now = datetime.now(UTC)
        try:
            with write_lock(ext.engine), session.begin() as s:
                record = IdempotencyRecord(principal=principal, key=key, fingerprint=fp, created_at=now)
                s.add(record)
                s.flush()
                row_id = record.id
        except IntegrityError:
            with session() as s:
                row = s.scalar(
                    select(IdempotencyRecord).where(
                        IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
                    )
                )
            if row is None:  # deleted meanwhile: let the client retry
                raise Conflict(reason="idempotency_in_progress") from None
            if row.fingerprint != fp:
                raise ApiError("Idempotency-Key reused", reason="idempotency_key_reused") from None
            if row.status is not None:
                return _replay(row)
            if row.tx is None:  # nothing handed to the ledger yet: the first attempt is still at work
                if now - row.created_at < STALE_AFTER:
                    raise Conflict(reason="idempotency_in_progress") from None
                with write_lock(ext.engine), session.begin() as s:
                    s.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == row.id))
                return wrapper(*args, **kwargs)
            # The first attempt recorded its transaction and did not answer (it died, or still waits for
            # finality): run again on that same transaction.
            row_id = row.id
        g.idempotency_key = key
        journal = RowJournal(ext.engine, session, row_id)
        g.idempotency_journal = journal

        try:
            resp = make_response(view(*args, **kwargs))
        except Exception as exc:  # mapped like any error, then stored unless 5xx
            resp = make_response(current_app.handle_user_exception(exc))
        if resp.status_code >= 500:
            if not journal.recorded:  # nothing reached the ledger: the retry runs afresh
                with write_lock(ext.engine), session.begin() as s:
                    s.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == row_id,
                                                              IdempotencyRecord.status.is_(None)))
            return resp
        _store(ext.engine, session, row_id, resp)
        return resp

    return cast(F, wrapper)
