"""Department staff: permit decisions (more staff endpoints join here)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..auth import authenticate, require
from ..context import answer, ctx, submission
from ..idempotency import idempotent
from ..schemas import DecisionCreateSchema, PermitSchema

blp = Blueprint("staff", __name__, url_prefix="/api/v1", description="Departments, operators, enforcement")


@blp.route("/permits/<permit_id>/decisions", methods=["POST"])
@require("approver")
@idempotent
@blp.arguments(DecisionCreateSchema)
@blp.response(200, PermitSchema)
def decide_permit(data: dict[str, Any], permit_id: str) -> Any:
    """One department's decision (its tenant is the department); answers the permit."""
    return answer(ctx().services.permits.decide(authenticate(), permit_id, data, submission()))
