"""Department staff, operators and enforcement: decisions, registry, violations, penalties, site load, statistics."""

from __future__ import annotations

from typing import Any

from flask import request

from ticket_api.auth import answer, authenticate, ctx, require, submission
from ticket_api.errors import InvalidRequest
from ticket_api.idempotency import idempotent
from ticket_api.jsonbody import Blueprint
from ticket_api.schemas import (
    URI_TOO_LONG,
    ChainStatusSchema,
    DecisionCreateSchema,
    ObjectSchema,
    PenaltyCreateSchema,
    PermitSchema,
    RecommendQuerySchema,
    RecommendSchema,
    RevokeSchema,
    SiteListSchema,
    SiteSchema,
    ViolationReportSchema,
    ViolationSchema,
    ViolationStepSchema,
)
from ticket_api.service_data import (
    ChainStatus,
    Json,
    PenaltyRecord,
    PermitDecision,
    Recommendation,
    RecommendParams,
    Revocation,
    SiteList,
    ViolationReport,
    ViolationStep,
)
from ticket_api.services import StaffService

blp = Blueprint("staff", __name__, url_prefix="/api/v1", description="Departments, operators, enforcement")
STAFF = ("approver", "operator", "enforcement", "regulator")
HANDLERS = ("operator", "enforcement")


def _staff() -> StaffService:
    return ctx().services.staff


@blp.route("/permits/<permit_id>/decisions", methods=["POST"])
@require("approver")
@idempotent
@blp.arguments(DecisionCreateSchema)
@blp.response(200, PermitSchema)
def decide_permit(data: PermitDecision, permit_id: str) -> tuple[Any, int]:
    """One department's decision (its tenant is the department); answers the permit."""
    return answer(ctx().services.permits.decide(authenticate(), permit_id, data, submission()))


@blp.route("/permits/<permit_id>/revoke", methods=["POST"])
@require("approver", "operator", "enforcement")
@idempotent
@blp.arguments(RevokeSchema)
@blp.response(200, PermitSchema)
def revoke_permit(data: Revocation, permit_id: str) -> tuple[Any, int]:
    """Revoke a pending or approved permit; its issued tickets can no longer leave the site."""
    return answer(ctx().services.permits.revoke(authenticate(), permit_id, data, submission()))


@blp.route("/registry/<kind>", methods=["POST"])
@require("operator")
@idempotent
@blp.response(201, ObjectSchema)
@blp.doc(requestBody={"required": True, "description": "the ledger's registry payload (docs/ETICKET.md)",
                      "content": {"application/json": {"schema": {"type": "object"}}}})
def register(kind: str) -> tuple[Any, int]:
    """Register (or, with ``"update": true``, change) an org, project, site, company, truck or driver.

    The body is the ledger's own payload (docs/ETICKET.md "Registry"); drivers only by ``person_hash``.
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", reason="malformed")
    return answer(_staff().register(authenticate(), kind, body, submission()), 201)


@blp.route("/violations", methods=["POST"])
@require(*HANDLERS)
@idempotent
@blp.arguments(ViolationReportSchema)
@blp.response(201, ViolationSchema)
def report_violation(data: ViolationReport) -> tuple[Any, int]:
    """Report a violation (camera capture, patrol, public report); numbered like LZZTC2025060716103xxxxx."""
    return answer(_staff().report_violation(authenticate(), data, submission()), 201)


@blp.route("/violations/<violation_id>")
@require(*STAFF)
@blp.response(200, ViolationSchema)
def get_violation(violation_id: str) -> Json:
    """One violation with its evidence, states and handling time."""
    return _staff().violation(authenticate(), violation_id)


@blp.route("/violations/<violation_id>/<any(confirm, dismiss, dispatch, resolve):step>", methods=["POST"])
@require(*HANDLERS)
@idempotent
@blp.arguments(ViolationStepSchema)
@blp.response(200, ViolationSchema)
def violation_step(data: ViolationStep, violation_id: str, step: str) -> tuple[Any, int]:
    """Confirm ("not a false capture") or dismiss, dispatch to a town centre, resolve."""
    return answer(_staff().violation_step(authenticate(), violation_id, step, data, submission()))


@blp.route("/penalties", methods=["POST"])
@require("enforcement")
@idempotent
@blp.arguments(PenaltyCreateSchema)
@blp.response(201, ObjectSchema)
def record_penalty(data: PenaltyRecord) -> tuple[Any, int]:
    """Record a penalty (处罚) with an amount and measures such as suspending a truck for N days."""
    return answer(_staff().record_penalty(authenticate(), data, submission()), 201)


@blp.route("/sites")
@require(*STAFF, "contractor")
@blp.response(200, SiteListSchema)
def list_sites() -> SiteList:
    """Every disposal site with its load rate (负荷率) and alarm."""
    return _staff().sites(authenticate())


@blp.route("/sites/recommend")
@require(*STAFF, "contractor")
@blp.arguments(RecommendQuerySchema, location="query")
@blp.doc(responses={414: URI_TOO_LONG})
@blp.response(200, RecommendSchema)
def recommend_sites(params: RecommendParams) -> Recommendation:
    """Sites with room for a volume that stay under their alarm, nearest to the project first."""
    return _staff().recommend(authenticate(), params)


@blp.route("/sites/<site_id>")
@require(*STAFF, "contractor")
@blp.response(200, SiteSchema)
def get_site(site_id: str) -> Json:
    """One disposal site's capacity, load, room and alarm."""
    return _staff().site(authenticate(), site_id)


@blp.route("/statistics")
@require(*STAFF)
@blp.response(200, ObjectSchema)
def statistics() -> Json:
    """Tickets, coverage, utilisation rate (综合利用率), violations by type, median approval and handling."""
    return _staff().statistics(authenticate())


@blp.route("/chain/status")
@require(*STAFF)
@blp.response(200, ChainStatusSchema)
def chain_status() -> ChainStatus:
    """Each node's height, head, final height and divergences."""
    return _staff().chain_status(authenticate())
