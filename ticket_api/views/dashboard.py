"""The governance centre's screen (治理中心 一屏掌控): ``GET /dashboard`` and its data, ``GET /api/v1/dashboard``.

The page is static HTML, CSS and vanilla JavaScript (``ticket_api/static/dashboard/``, no build step, no external
resource: a strict Content-Security-Policy forbids any). It reads the bearer token from the URL fragment
``#token=...`` (kept in ``localStorage``) or asks for it, and polls the JSON endpoint every few seconds.
"""

from __future__ import annotations

from pathlib import Path

from flask import Response, request

from ticket_api.auth import authenticate, ctx, require
from ticket_api.jsonbody import Blueprint
from ticket_api.schemas import DashboardSchema
from ticket_api.service_data import Dashboard

STATIC = Path(__file__).resolve().parent.parent / "static" / "dashboard"

#: Nothing from anywhere but this origin; no inline script or style; no framing.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
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
    newest 20 violations with state and age, trucks on the road with their last position, the map's sites and
    projects, and each node's height, head, final (certified) height and divergence. Times in +08:00."""
    return ctx().services.staff.dashboard(authenticate())
