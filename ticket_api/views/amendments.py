"""Permit amendments: the contractor asks to add disposal sites or trucks to an approved permit, the departments
concerned decide (their queue: ``GET /api/v1/amendments?awaiting=me``), the permit grows at the last approval."""

from __future__ import annotations

from typing import Any

from ticket_api.auth import answer, authenticate, ctx, require, submission
from ticket_api.idempotency import idempotent
from ticket_api.jsonbody import Blueprint
from ticket_api.schemas import DecisionCreateSchema
from ticket_api.schemas.amendments import (
    AmendmentCreateSchema,
    AmendmentListQuerySchema,
    AmendmentListSchema,
    AmendmentSchema,
)
from ticket_api.service_data import AmendmentRequest, PermitDecision
from ticket_api.tokens import STAFF_ROLES

blp = Blueprint("amendments", __name__, url_prefix="/api/v1", description="Permit amendments")
READERS = ("contractor", *sorted(STAFF_ROLES))


@blp.route("/permits/<permit_id>/amendments", methods=["POST"])
@require("contractor")
@idempotent
@blp.arguments(AmendmentCreateSchema)
@blp.response(201, AmendmentSchema)
def request_amendment(data: AmendmentRequest, permit_id: str) -> tuple[Any, int]:
    """Ask for disposal sites, trucks or companies to be added to an approved permit (its contractor)."""
    return answer(ctx().services.amendments.request(authenticate(), permit_id, data, submission()), 201)


@blp.route("/amendments")
@require(*READERS)
@blp.arguments(AmendmentListQuerySchema, location="query")
@blp.response(200, AmendmentListSchema)
def list_amendments(query: dict[str, Any]) -> Any:
    """Amendments oldest first: a contractor's own, an approver's queue (``awaiting=me``), any for staff."""
    return ctx().services.amendments.list(authenticate(), awaiting=query.get("awaiting"),
                                          permit_id=query.get("permit_id"))


@blp.route("/amendments/<amendment_id>")
@require(*READERS)
@blp.response(200, AmendmentSchema)
def get_amendment(amendment_id: str) -> Any:
    """An amendment with each concerned department's decision."""
    return ctx().services.amendments.get(authenticate(), amendment_id)


@blp.route("/amendments/<amendment_id>/decisions", methods=["POST"])
@require("approver")
@idempotent
@blp.arguments(DecisionCreateSchema)
@blp.response(200, AmendmentSchema)
def decide_amendment(data: PermitDecision, amendment_id: str) -> tuple[Any, int]:
    """One concerned department's decision (its tenant is the department); answers the amendment."""
    return answer(ctx().services.amendments.decide(authenticate(), amendment_id, data, submission()))
