"""``GET /api/health``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text

from ledger.core.encoding import CHINA_TZ
from ticket_api import __version__
from ticket_api.auth import ctx
from ticket_api.jsonbody import Blueprint
from ticket_api.schemas import HealthSchema

blp = Blueprint("system", __name__, url_prefix="/api", description="Service health")


@blp.route("/health")
@blp.response(200, HealthSchema)
def health() -> dict[str, Any]:
    """Liveness and readiness: the API database answers; whether a ledger service is configured."""
    c = ctx()
    with c.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {
        "status": "ok",
        "version": __version__,
        "time": datetime.now(CHINA_TZ).isoformat(timespec="seconds"),
        "database": "ok",
        "ledger": "configured" if c.services_configured else "unavailable",
    }
