"""Structured JSON logs with a request id (never tokens, secrets or query strings)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
_STD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_SECRET_WORDS = ("token", "secret", "authorization", "password", "session_key", "openid")
#: a WeChat subject inside a text (openids are URL-safe base64-like strings)
_WX_SUBJECT = re.compile(r"wx:[A-Za-z0-9_-]+")


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record made inside a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = getattr(g, "request_id", None) if has_request_context() else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields whose names look secret are dropped."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _scrub(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key in _STD_ATTRS or key.startswith("_"):
                continue
            if any(word in key.lower() for word in _SECRET_WORDS):
                continue
            if not isinstance(value, int | float | bool | type(None)):
                value = _scrub(str(value))
            out[key] = value
        if record.exc_info:
            out["exc"] = _scrub(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "INFO", json_lines: bool = True) -> None:
    """Configure the ``ticket_api`` logger (idempotent)."""
    logger = logging.getLogger("ticket_api")
    logger.setLevel(level.upper())
    logger.propagate = False
    for handler in list(logger.handlers):
        if getattr(handler, "_ticket_api", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._ticket_api = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    logger.addHandler(handler)


access_log = logging.getLogger("ticket_api.access")


def install_request_id(app: Flask) -> None:
    """Give each request an id (from a sane ``X-Request-Id`` or new), echo it, log the request."""

    @app.before_request
    def _start() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(resp: Response) -> Response:
        rid = getattr(g, "request_id", None)
        if rid:
            resp.headers[REQUEST_ID_HEADER] = rid
        principal = getattr(g, "principal", None)
        access_log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": resp.status_code,
                "duration_ms": round(
                    (time.perf_counter() - getattr(g, "started", time.perf_counter())) * 1000, 2
                ),
                "role": getattr(principal, "role", None),
                "subject": log_subject(getattr(principal, "subject", None)),
                "reason": _reason(resp),
            },
        )
        return resp


def log_subject(subject: str | None) -> str | None:
    """A subject as logs may show it: a WeChat user (``wx:<openid>``) as ``wx#`` and 16 hex digits of the
    openid's SHA-256 (one user's requests still correlate; the openid itself is personal data)."""
    if subject is None or not subject.startswith("wx:"):
        return subject
    return "wx#" + hashlib.sha256(subject[3:].encode("utf-8")).hexdigest()[:16]


def _scrub(value: str) -> str:
    """Any ``wx:<openid>`` in a logged text, hashed as :func:`log_subject` does."""
    return _WX_SUBJECT.sub(lambda m: str(log_subject(m.group(0))), value) if "wx:" in value else value


def _reason(resp: Response) -> str | None:
    if resp.status_code < 400 or not resp.is_json:
        return None
    body = resp.get_json(silent=True)
    return body.get("reason") if isinstance(body, dict) else None
