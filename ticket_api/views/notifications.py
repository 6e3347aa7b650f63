"""``GET /api/v1/notifications`` (a user's own notifications) and its server-sent event stream.

Every authenticated user reads the rows of its audiences (``tenant:<role>:<tenant>`` and ``role:<role>``,
``ticket_api.notify.outbox.principal_keys``): a contractor its organisation's, an enforcement officer
every enforcement notice.  Texts follow ``Accept-Language`` (Chinese by default), times +08:00.

The stream (``text/event-stream``) sends each row as ``id: <row id>``, ``event: <kind>``, ``data: <item
JSON>``; a client reconnecting with ``Last-Event-ID`` gets every row after that id, none twice.  A stream
ends after ``NOTIFY_STREAM_SECONDS`` (``retry: 1000`` asks the client to come back), so it holds a gunicorn
thread only for a while; a comment line every few seconds keeps proxies from closing it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Response, request
from marshmallow import Schema, fields, validate

from ticket_api.auth import authenticate, ctx, require
from ticket_api.errors import ApiError
from ticket_api.i18n import pick_language
from ticket_api.jsonbody import Blueprint
from ticket_api.notify import messages
from ticket_api.notify.outbox import Outbox, principal_keys

blp = Blueprint("notifications", __name__, url_prefix="/api/v1", description="Notifications (站内通知)")

POLL_S = 0.5
KEEPALIVE_S = 10.0


class NotificationListArgs(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    cursor = fields.String(load_default=None, validate=validate.Length(max=20))


class NotificationSchema(Schema):
    id = fields.Integer(required=True)
    event_id = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "permit_approved, permit_rejected, gate_held, "
                                                  "violation_raised, penalty_recorded, site_alarm"})
    time = fields.String(required=True, metadata={"description": "when it happened, ISO 8601 +08:00"})
    created_at = fields.String(required=True)
    title = fields.String(required=True)
    body = fields.String(required=True)
    subject_id = fields.String(required=True)
    facts = fields.Dict(required=True)
    block_height = fields.Integer(required=True)


class NotificationListSchema(Schema):
    items = fields.List(fields.Nested(NotificationSchema), required=True)
    next = fields.String(allow_none=True, required=True, metadata={"description": "cursor of the next page"})


class BadCursor(ApiError):
    reason = "invalid_request"


def _outbox() -> Outbox:
    return Outbox(ctx().engine)


def _int(raw: str | None, name: str) -> int | None:
    if raw in (None, ""):
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise BadCursor(f"{name} must be a notification id", fields={name: ["not a notification id"]})
    return int(raw)


@blp.route("/notifications")
@require()
@blp.arguments(NotificationListArgs, location="query")
@blp.response(200, NotificationListSchema)
def list_notifications(args: dict[str, Any]) -> dict[str, Any]:
    """The caller's notifications, newest first; ``next`` continues below the last item."""
    p = authenticate()
    lang = pick_language(request.headers.get("Accept-Language"))
    limit = int(args["limit"])
    rows = _outbox().for_reader(principal_keys(p.role, p.tenant), before=_int(args["cursor"], "cursor"),
                                limit=limit + 1)
    items = [messages.item(i, e, lang, created_at=c) for i, e, c in rows[:limit]]
    return {"items": items, "next": str(items[-1]["id"]) if len(rows) > limit else None}


def _frames(outbox: Outbox, keys: list[str], after: int, lang: str, seconds: float) -> Iterator[str]:
    yield "retry: 1000\n\n"
    end = time.monotonic() + seconds
    quiet_since = time.monotonic()
    while time.monotonic() < end:
        rows = outbox.for_reader(keys, after=after, limit=100, newest_first=False)
        for row_id, event, created in rows:
            doc = json.dumps(messages.item(row_id, event, lang, created_at=created), ensure_ascii=False)
            yield f"id: {row_id}\nevent: {event.kind}\ndata: {doc}\n\n"
            after = row_id
        if rows:
            quiet_since = time.monotonic()
            continue
        if time.monotonic() - quiet_since > KEEPALIVE_S:
            yield ": keepalive\n\n"
            quiet_since = time.monotonic()
        time.sleep(POLL_S)


@blp.route("/notifications/stream")
@require()
@blp.doc(responses={"200": {"description": "server-sent events: `id` (row id), `event` (kind), `data` "
                                           "(a Notification as JSON); resume with Last-Event-ID",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
         parameters=[{"in": "header", "name": "Last-Event-ID", "required": False, "schema": {"type": "string"},
                      "description": "the last row id received: the stream starts after it (default: now)"}])
def stream() -> Response:
    """The caller's notifications as server-sent events, from ``Last-Event-ID`` on (default: from now)."""
    p = authenticate()
    lang = pick_language(request.headers.get("Accept-Language"))
    outbox = _outbox()
    keys = principal_keys(p.role, p.tenant)
    after = _int(request.headers.get("Last-Event-ID"), "Last-Event-ID")
    if after is None:
        newest = outbox.for_reader(keys, limit=1)
        after = newest[0][0] if newest else 0
    seconds = float(ctx().config.get("NOTIFY_STREAM_SECONDS") or 25.0)
    resp = Response(_frames(outbox, keys, after, lang, seconds), mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp


class NotifierStatusSchema(Schema):
    cursor_height = fields.Integer(allow_none=True, required=True,
                                   metadata={"description": "last block whose notifications are written"})
    chain_final_height = fields.Integer(allow_none=True, required=True,
                                        metadata={"description": "the chain's final height the notifier last saw"})
    lag_blocks = fields.Integer(allow_none=True, required=True)
    updated_at = fields.String(allow_none=True, required=True)
    pid = fields.Integer(allow_none=True, required=True)
    error = fields.String(allow_none=True, required=True, metadata={"description": "why following last failed"})
    wechat = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                         metadata={"description": "WeChat messages by status: pending, sent, failed"})
    last_send_error = fields.Dict(allow_none=True, required=True)


@blp.route("/notifications/status")
@require("operator", "regulator")
@blp.response(200, NotifierStatusSchema)
def notifier_status() -> dict[str, Any]:
    """The notifier's health: how far it has followed the chain (and the chain's final height when it
    last looked), WeChat messages pending, sent and failed, and the newest failure; read from the API
    database only."""
    return _outbox().summary()
