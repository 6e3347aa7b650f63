"""The governance centre's screen (治理中心 一屏掌控): ``GET /dashboard`` and its data, ``GET /api/v1/dashboard``.

The page is static HTML, CSS and vanilla JavaScript (``ticket_api/static/dashboard/``, no build step, no external
resource: a strict Content-Security-Policy forbids any; Apache ECharts is served from ``static/dashboard/vendor/``,
put there by ``scripts/_setup.sh``'s ``setup_echarts``). It reads the bearer token from the URL fragment
``#token=...`` (kept in ``localStorage``) or asks for it, and follows ``GET /api/v1/dashboard/stream``.

The stream (``text/event-stream``) sends the snapshot (``event: dashboard``, ``data:`` the same JSON as
``GET /api/v1/dashboard``) at once and then whenever it changed: the server computes it every
``DASHBOARD_STREAM_POLL_SECONDS`` and compares a digest of it without the parts that move by themselves
(``generated_at``, the events' ``age_seconds``).  A comment line every few quiet seconds keeps proxies from
closing it; it ends after ``DASHBOARD_STREAM_SECONDS`` (``retry:`` asks the browser to come back) so a gunicorn
thread is held only for a while.  ``EventSource`` cannot send headers: the token may come as ``?access_token=``
(gunicorn's access log and ours write the path without its query string).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from flask import Response, g, request, stream_with_context

from ticket_api.auth import authenticate, ctx, require
from ticket_api.jsonbody import Blueprint
from ticket_api.schemas import DashboardSchema
from ticket_api.service_data import Dashboard

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("ticket_api.dashboard")

STATIC = Path(__file__).resolve().parent.parent / "static" / "dashboard"

#: Nothing from anywhere but this origin; no inline script or style; no framing (images: blob: for the evidence
#: photos the page fetches with its token and shows from object URLs).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

page_blp = Blueprint("dashboard_page", __name__, description="The governance centre's screen (HTML)",
                     static_folder=str(STATIC), static_url_path="/dashboard/static")
blp = Blueprint("dashboard", __name__, url_prefix="/api/v1", description="The governance centre's screen (data)")


def _secure(resp: Response, *, cache: str) -> Response:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Cache-Control"] = cache
    return resp


@page_blp.route("/dashboard")
@page_blp.doc(responses={"200": {
    "description": "The dashboard page; its token comes from #token=... or a sign-in box",
    "content": {"text/html": {"schema": {"type": "string"}}}}})
def dashboard_page() -> Response:
    """The governance centre's screen: counters, disposal-site load and alarms, violations, trips map, chain health."""
    resp = Response((STATIC / "index.html").read_bytes(), mimetype="text/html")
    return _secure(resp, cache="no-cache")


@page_blp.after_app_request
def _static_headers(resp: Response) -> Response:
    """The page's own CSS and JS carry the same headers (revalidated, so a deploy shows at once)."""
    if request.endpoint == "dashboard_page.static":
        _secure(resp, cache="no-cache")
    return resp


@blp.route("/dashboard")
@require("operator", "enforcement", "regulator")
@blp.response(200, DashboardSchema)
def dashboard_data() -> Dashboard:
    """Everything the screen shows, in one answer: counters, sites with load rate, alarm and alternatives, the
    newest 100 violations with state and age, trucks on the road with their last position, the map's sites and
    projects, and each node's height, head, final (certified) height and divergence. Times in +08:00."""
    return ctx().services.staff.dashboard(authenticate())


#: what changes by itself between two identical states: left out of the stream's digest
_MOVING = ("generated_at",)
KEEPALIVE_S = 10.0


def snapshot_digest(doc: dict[str, Any]) -> str:
    """SHA-256 of a dashboard snapshot without its clock-driven parts (``generated_at``, ``age_seconds``)."""
    still = {k: v for k, v in doc.items() if k not in _MOVING}
    still["violations"] = [{k: v for k, v in e.items() if k != "age_seconds"} for e in doc.get("violations") or []]
    return hashlib.sha256(json.dumps(still, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def frames(snapshot: Callable[[], dict[str, Any]], *, seconds: float, poll: float,
           keepalive: float = KEEPALIVE_S, clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """The stream's frames: ``retry``, the snapshot now, then each changed one; a comment when quiet."""
    yield "retry: 1000\n\n"
    end = clock() + seconds
    last = ""
    quiet_since = clock()
    while True:
        try:
            doc = snapshot()
        except Exception:  # the nodes or the database failed this time: end here, the client comes back
            log.exception("dashboard stream: the snapshot failed; ending the stream")
            return
        digest = snapshot_digest(doc)
        if digest != last:
            last = digest
            quiet_since = clock()
            yield f"id: {digest[:16]}\nevent: dashboard\ndata: {json.dumps(doc, ensure_ascii=False)}\n\n"
        elif clock() - quiet_since >= keepalive:
            quiet_since = clock()
            yield ": keepalive\n\n"
        if clock() + poll >= end:
            return
        sleep(poll)


def _token_from_query(view: F) -> F:
    """``?access_token=`` stands in for ``Authorization: Bearer`` (EventSource sends no headers)."""
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = request.args.get("access_token", "")
        if token and not request.headers.get("Authorization"):
            g.principal = ctx().tokens.authenticate(token.strip())
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@blp.route("/dashboard/stream")
@_token_from_query
@require("operator", "enforcement", "regulator")
@blp.doc(responses={"200": {"description": "server-sent events: `event: dashboard`, `data:` the dashboard "
                                           "snapshot (as GET /api/v1/dashboard) at once and on every change",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
         parameters=[{"in": "query", "name": "access_token", "required": False, "schema": {"type": "string"},
                      "description": "the bearer token, for clients that cannot send headers (EventSource)"}])
def dashboard_stream() -> Response:
    """The dashboard snapshot as server-sent events: now, then whenever it changes (checked every second)."""
    principal = authenticate()
    staff = ctx().services.staff
    schema = DashboardSchema()
    config = ctx().config

    def snapshot() -> dict[str, Any]:
        return dict(schema.dump(staff.dashboard(principal)))

    body = frames(snapshot, seconds=float(config.get("DASHBOARD_STREAM_SECONDS") or 60.0),
                  poll=float(config.get("DASHBOARD_STREAM_POLL_SECONDS") or 1.0))
    resp = Response(stream_with_context(body), mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp
