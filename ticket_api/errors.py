"""API errors and the one place that turns any exception into a JSON answer.

Every refusal has a stable ``reason`` code.  Ordinary endpoints answer::

    {"error": {"code": <reason>, "message": <localised>, "fields": {...}}, "reason": <reason>}

and the gate endpoints (blueprints listed in ``GATE_BLUEPRINTS``) answer::

    {"accepted": false, "reason": <reason>, "message": <localised>}

Ledger errors (:class:`ledger.errors.LedgerError`, the QR ticket errors of
``ledger.qrticket`` included) and business-rule errors from other packages are mapped
by their ``reason`` attribute through the registry of reason codes (:mod:`ledger.reasons`:
status and messages; ``REASON_STATUS`` is its status view).
Anything unexpected is a 500 ``internal`` whose traceback goes to the log with
the request id, never to the client.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, jsonify, request
from marshmallow import ValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from ledger import reasons
from ledger.errors import LedgerError
from ticket_api import field_messages, i18n

log = logging.getLogger("ticket_api.errors")

GATE_BLUEPRINTS = frozenset({"gates"})

#: HTTP status of each reason code: a view of the one registry (:mod:`ledger.reasons`).
REASON_STATUS: Mapping[str, int] = reasons.STATUS

_HTTP_REASON = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    501: "not_implemented",
    503: "ledger_unavailable",
}


class ApiError(Exception):
    """Base of the API's own errors: ``reason`` code, HTTP ``status``, ``fields``.

    ``message_key`` selects the localised message (defaults to the reason);
    ``detail`` is an optional developer-facing English sentence, only logged.
    """

    reason: str = "bad_request"
    status: int | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        reason: str | None = None,
        status: int | None = None,
        fields: Mapping[str, Any] | None = None,
        message_key: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or reason or self.reason)
        if reason is not None:
            self.reason = reason
        if status is not None:
            self.status = status
        self.fields: dict[str, Any] = dict(fields or {})
        self.message_key = message_key or self.reason
        self.detail = detail
        #: members added to the error body beside ``error`` and ``reason`` (``recommended_sites`` of ``site_alarm``)
        self.extra: dict[str, Any] = dict(extra or {})

    @property
    def http_status(self) -> int:
        return self.status or reasons.status_of(self.reason, 400)


class BadRequest(ApiError):
    reason = "bad_request"


class InvalidRequest(ApiError):
    reason = "invalid_request"


class NotFound(ApiError):
    reason = "not_found"


class Unauthenticated(ApiError):
    """No, an unknown, an expired or a revoked bearer token (always 401)."""

    reason = "unauthenticated"
    status = 401


class Forbidden(ApiError):
    reason = "forbidden"
    status = 403


class Conflict(ApiError):
    reason = "conflict"


class Refused(ApiError):
    """A business-rule refusal (gate reason codes and the like)."""

    reason = "forbidden"


class ServiceUnavailable(ApiError):
    """The ledger (or another back end) is not configured or not reachable."""

    reason = "ledger_unavailable"
    status = 503


class UpstreamError(ApiError):
    reason = "wechat_unavailable"
    status = 502


def status_for(reason: str, default: int = 422) -> int:
    """HTTP status of a reason code (the registry's; ``default`` for a code it does not know)."""
    return reasons.status_of(reason, default)


def _language() -> str:
    return i18n.pick_language(request.headers.get("Accept-Language"))


def error_response(
    reason: str,
    status: int,
    *,
    fields: Mapping[str, Any] | None = None,
    message_key: str | None = None,
    fallback: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """Build the JSON error answer (gate style inside gate blueprints)."""
    language = _language()
    text = i18n.message(message_key or reason, language, default=fallback)
    fields = field_messages.localise(fields, language) if fields else fields
    if request.blueprint in GATE_BLUEPRINTS:
        body: dict[str, Any] = {"accepted": False, "reason": reason, "message": text}
        if fields:
            body["fields"] = dict(fields)
    else:
        body = {"error": {"code": reason, "message": text, "fields": dict(fields or {})}, "reason": reason}
    for key, value in (extra or {}).items():
        body.setdefault(key, value)
    resp = jsonify(body)
    resp.status_code = status
    return resp


def _request_id() -> str:
    return str(getattr(g, "request_id", "-"))


def _flatten_webargs(messages: Any) -> dict[str, Any]:
    # webargs nests messages by location: {"json": {...}, "query": {...}}
    if isinstance(messages, Mapping):
        if set(messages) <= {"json", "query", "form", "headers", "files", "path", "view_args", "cookies"}:
            out: dict[str, Any] = {}
            for value in messages.values():
                if isinstance(value, Mapping):
                    out.update(value)
                else:
                    out["_schema"] = value
            return out
        return dict(messages)
    return {"_schema": messages}


def handle_api_error(exc: ApiError) -> Response:
    if exc.detail:
        log.info("refused", extra={"reason": exc.reason, "detail": exc.detail})
    return error_response(exc.reason, exc.http_status, fields=exc.fields, message_key=exc.message_key,
                          extra=exc.extra)


def handle_reasoned(exc: LedgerError) -> Response:
    """Typed errors of the ledger package (core, eticket, qrticket) by ``reason``."""
    reason = str(exc.reason)
    status = status_for(reason)
    if status >= 500:
        log.error("ledger error", extra={"reason": reason, "detail": str(exc)})
    else:
        log.info("refused", extra={"reason": reason, "detail": str(exc)})
    fallback = exc.message or reason
    fields = getattr(exc, "fields", None)  # e.g. PersonalData: the field's path, never its value
    return error_response(reason, status, fields=fields if isinstance(fields, Mapping) else None,
                          fallback=str(fallback))


def handle_validation(exc: ValidationError) -> Response:
    return error_response("invalid_request", 422, fields=_flatten_webargs(exc.messages))


def handle_http(exc: HTTPException) -> Response:
    code = exc.code or 500
    data = getattr(exc, "data", None)
    if isinstance(data, Mapping) and "messages" in data:
        return error_response("invalid_request", 422, fields=_flatten_webargs(data["messages"]))
    if code >= 500:
        log.error("http error", extra={"status": code})
        reason = _HTTP_REASON.get(code, "internal")
    else:
        reason = _HTTP_REASON.get(code, "bad_request")
    resp = error_response(reason, code)
    if code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
        resp.headers["Allow"] = ", ".join(exc.valid_methods)
    return resp


#: SQLite's primary result codes for a database another connection holds (the extended codes keep them in the
#: low byte: ``SQLITE_BUSY_SNAPSHOT`` is 517).
_SQLITE_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def database_busy(exc: OperationalError) -> bool:
    """Did the database driver give up waiting for a lock (SQLite ``SQLITE_BUSY``/``SQLITE_LOCKED``)?"""
    orig = getattr(exc, "orig", None)
    return isinstance(orig, sqlite3.Error) and (orig.sqlite_errorcode & 0xFF) in _SQLITE_BUSY_CODES


def handle_database(exc: OperationalError) -> Response:
    """The API's SQLite database stayed locked past the busy timeout: retryable 503, not a 500."""
    if not database_busy(exc):
        return handle_unexpected(exc)
    text = str(exc.orig if getattr(exc, "orig", None) is not None else exc).lower()
    log.error("database busy", extra={"detail": text[:200], "request_id": _request_id()})
    resp = error_response("database_busy", 503)
    resp.headers["Retry-After"] = "1"
    return resp


def handle_unexpected(exc: Exception) -> Response:
    log.error(
        "unhandled exception",
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"error_type": type(exc).__name__, "request_id": _request_id()},
    )
    return error_response("internal", 500)


def register_error_handlers(app: Flask) -> None:
    """Install the mapping on ``app`` (after flask-smorest installed its own)."""
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(LedgerError, handle_reasoned)  # the QR ticket errors too (ledger.qrticket.errors)
    app.register_error_handler(ValidationError, handle_validation)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(OperationalError, handle_database)
    app.register_error_handler(Exception, handle_unexpected)


class BadPhoto(ApiError):
    """A camera photo that is not a JPEG or PNG image (magic bytes and end marker checked), or not base64."""

    reason = "bad_photo"


class PhotoTooLarge(ApiError):
    reason = "photo_too_large"


class EvidenceNotFound(ApiError):
    """No photo under that digest (never stored, or past the retention period)."""

    reason = "evidence_not_found"


class EvidenceCorrupt(ApiError):
    """The stored bytes do not hash to the digest they are filed under: never served."""

    reason = "evidence_corrupt"
