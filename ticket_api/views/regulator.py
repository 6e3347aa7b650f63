"""Regulator (and owners): verifiable history and the audit."""

from __future__ import annotations

from ledger.wire import ProvenanceExport
from ticket_api.auth import authenticate, ctx, require
from ticket_api.jsonbody import Blueprint
from ticket_api.schemas import URI_TOO_LONG, AuditQuerySchema, AuditSchema, HistorySchema, ProvenanceSchema
from ticket_api.service_data import AuditParams, History, Json

blp = Blueprint("regulator", __name__, url_prefix="/api/v1", description="Regulator: history and audit")


@blp.route("/tickets/<ticket_id>/history")
@require("regulator", "contractor")
@blp.response(200, HistorySchema)
def ticket_history(ticket_id: str) -> History:
    """Every record of a ticket with RFC 9162 inclusion proofs and a signed checkpoint."""
    return ctx().services.tickets.history(authenticate(), ticket_id)


@blp.route("/audit")
@require("regulator")
@blp.arguments(AuditQuerySchema, location="query")
@blp.doc(responses={414: URI_TOO_LONG})
@blp.response(200, AuditSchema)
def audit(params: AuditParams) -> Json:
    """Verify the chain (signatures, links, roots, state); regulator only."""
    return ctx().services.audit.audit(authenticate(), params)


@blp.route("/provenance/<any(ticket, permit, truck, project, violation, site, company):kind>/<key>")
@require("regulator")
@blp.response(200, ProvenanceSchema)
def provenance(kind: str, key: str) -> ProvenanceExport:
    """A provenance export of one object: every record with its RFC 9162 proof to a co-signed checkpoint.

    Save it and check it anywhere with ``scripts/verify-export EXPORT.json --consortium TRUSTED.json``.
    """
    return ctx().services.tickets.provenance(authenticate(), kind, key)
