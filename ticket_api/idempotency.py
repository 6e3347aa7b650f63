"""``Idempotency-Key``: a retried state-changing request gets the first answer again.

Records are per principal (``Principal.key``) and key.  The same key with a
different request (method, path or body) is refused 422
``idempotency_key_reused``; a retry while the first is still running gets 409
``idempotency_in_progress``.  5xx answers are not stored (the retry runs again).
Replays carry ``Idempotent-Replayed: true``.

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
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

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
                s.add(IdempotencyRecord(principal=principal, key=key, fingerprint=fp, created_at=now))
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
            if row.status is None:
                if now - row.created_at < STALE_AFTER:
                    raise Conflict(reason="idempotency_in_progress") from None
                with write_lock(ext.engine), session.begin() as s:
                    s.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == row.id))
                return wrapper(*args, **kwargs)
            return _replay(row)
        g.idempotency_key = key

        def forget() -> None:
            with write_lock(ext.engine), session.begin() as s:
                s.execute(
                    delete(IdempotencyRecord).where(
                        IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
                    )
                )

        try:
            resp = make_response(view(*args, **kwargs))
        except Exception as exc:  # mapped like any error, then stored unless 5xx
            resp = make_response(current_app.handle_user_exception(exc))
        if resp.status_code >= 500:
            forget()
            return resp
        headers = {h: resp.headers[h] for h in _KEPT_HEADERS if h in resp.headers}
        with write_lock(ext.engine), session.begin() as s:
            row = s.scalar(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
                )
            )
            if row is not None:
                row.status = resp.status_code
                row.body = resp.get_data()
                row.content_type = resp.content_type or "application/json"
                row.headers = json.dumps(headers)
        return resp

    return cast(F, wrapper)
