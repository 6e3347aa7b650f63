"""Gate scanners (site exit, disposal site) and truck terminals.

Gate refusals answer ``{"accepted": false, "reason", "message"}`` (4xx).
Before anything reaches the ledger the API verifies the QR exactly as an
offline gate does (``ledger.qrticket.gatecheck``): signature with the published
keys, validity window, plate, and the gate's own site (its token's tenant).

``POST /api/v1/gate/sync`` takes the scans an offline gate queued::

    {"gate_id": "P-001-G1",
     "scans": [{"scan_id": "g1-000042", "kind": "exit", "qr": "MT1:...",
                "plate": "渝A12345", "scanned_at": "2026-11-23T22:10:05+08:00",
                "covered": true, "volume_m3": null,
                "offline_verdict": {"accepted": true, "reason": null}}]}

and answers 200 with one result per scan, in order::

    {"results": [{"scan_id": "g1-000042", "accepted": true, "ticket_id": "ET...",
                  "reason": null, "duplicate": false, "violation_id": null, "tx_id": "..."}],
     "accepted": 1, "refused": 0}

An online scan sent with ``Prefer: respond-async`` is answered 202 before the
block: the QR checked offline, the ledger's rules previewed on a node's current
state, and the ticket claimed for this gate (of two gates racing, one claim
commits); the signed transaction goes to the consortium from the API's outbox
(``ticket_api.adapter.outbox``).  ``GET /api/v1/gate/scans/<tx_id>`` then shows
the ledger's verdict.  Without the header the answer waits for finality (200).

``scan_id`` makes each scan idempotent (a re-sent scan gets its first result
with ``duplicate: true``).  A scan the gate let through offline that the
ledger refuses (the same ticket used twice while offline: ``already_departed``
/ ``already_received``) comes back ``accepted: false`` with the
``violation_id`` the service reported for it.
"""

from __future__ import annotations

from typing import Any

from flask import request

from ledger.qrticket.gatecheck import DISPOSAL, EXIT, GateRefusal, check_scan
from ledger.qrticket.ticket import TicketClaims
from ticket_api.auth import answer, authenticate, ctx, require, submission
from ticket_api.errors import Refused
from ticket_api.i18n import message, pick_language
from ticket_api.idempotency import idempotent
from ticket_api.jsonbody import Blueprint
from ticket_api.schemas import (
    GateDisposalSchema,
    GateExitSchema,
    GateRefusalSchema,
    GateResultSchema,
    GateScanSchema,
    GateSyncResultSchema,
    GateSyncSchema,
    PositionBatchSchema,
    PositionsResultSchema,
)
from ticket_api.schemas.revocations import RevocationListSchema, RevocationQuerySchema
from ticket_api.service_data import GateDisposal, GateExit, GateSync, PositionBatch, ScanView, SyncReport

blp = Blueprint("gates", __name__, url_prefix="/api/v1/gate", description="Gate scanners")

# Every error of the gate blueprint has the refusal shape (ticket_api.errors.GATE_BLUEPRINTS), the invalid
# request (422) and the default error included: document them so instead of flask-smorest's ``Error``.
_REFUSAL = {"content": {"application/json": {"schema": GateRefusalSchema}}}
GATE_ERRORS = {
    422: {"description": "invalid request (reason invalid_request, per-field problems in fields)", **_REFUSAL},
    "default": {"description": "refused: 401/403 token or role, 403/404/409/422 ticket (reason code)",
                **_REFUSAL},
}
ASYNC_DOC = ("Prefer: respond-async: accepted on the offline check, the ledger's preview and the ticket's claim; "
             "final is false, the verdict is at GET /api/v1/gate/scans/{tx_id}")
trips_blp = Blueprint("trips", __name__, url_prefix="/api/v1/trips", description="Truck terminals")


def _checked(data: GateExit | GateDisposal, kind: str) -> TicketClaims:
    """The offline checks of the QR at the scan's time, and that time itself: a gate's own ``time`` must be
    within the configured leeway of the server's clock (a late or early ``time`` would let an expired or
    not yet valid ticket through: the ledger only refuses an event time after its block's)."""
    c = ctx()
    principal = authenticate()
    now = c.now()
    when = data.get("time") or now
    try:
        claims = check_scan(
            data["qr"],
            c.keyring.mapping(),
            kind=kind,
            plate=data["plate"],
            site_id=principal.tenant,
            at=when,
            leeway=c.gate_leeway,
        )
    except GateRefusal as exc:
        raise Refused(exc.message, reason=exc.reason) from None
    if abs(when - now) > c.gate_leeway:
        raise Refused(f"gate time {when.isoformat()} is off the server's clock by more than {c.gate_leeway}",
                      reason="clock_skew", fields={"time": [f"within {int(c.gate_leeway.total_seconds())} s of now"]})
    return claims


@blp.route("/exit", methods=["POST"])
@require("exit_gate")
@idempotent
@blp.arguments(GateExitSchema)
@blp.response(200, GateResultSchema)
@blp.alt_response(202, schema=GateResultSchema, description=ASYNC_DOC)
@blp.alt_response(400, schema=GateRefusalSchema, description="refused (reason code)")
@blp.doc(responses=GATE_ERRORS)
def gate_exit(data: GateExit) -> tuple[Any, int]:
    """A truck leaves a construction site with a ticket (exit gate of that project)."""
    claims = _checked(data, EXIT)
    return answer(ctx().services.gates.record_exit(authenticate(), claims, data, submission()))


@blp.route("/disposal", methods=["POST"])
@require("disposal_gate")
@idempotent
@blp.arguments(GateDisposalSchema)
@blp.response(200, GateResultSchema)
@blp.alt_response(202, schema=GateResultSchema, description=ASYNC_DOC)
@blp.alt_response(400, schema=GateRefusalSchema, description="refused (reason code)")
@blp.doc(responses=GATE_ERRORS)
def gate_disposal(data: GateDisposal) -> tuple[Any, int]:
    """A disposal site receives a load (disposal gate of that site)."""
    claims = _checked(data, DISPOSAL)
    return answer(ctx().services.gates.record_disposal(authenticate(), claims, data, submission()))


@blp.route("/sync", methods=["POST"])
@require("exit_gate", "disposal_gate")
@idempotent
@blp.arguments(GateSyncSchema)
@blp.response(200, GateSyncResultSchema)
@blp.doc(responses=GATE_ERRORS)
def gate_sync(data: GateSync) -> SyncReport:
    """Upload scans made offline (see the module doc for the contract); each refusal's ``message`` is in
    the caller's language (Chinese by default, English with ``Accept-Language: en``)."""
    return localised(ctx().services.gates.sync(authenticate(), data["scans"], submission()))


def localised(report: SyncReport) -> SyncReport:
    """The report with every result's ``message`` from the registry of its ``reason`` in the request's
    language (the stored first result of a re-sent scan included)."""
    language = pick_language(request.headers.get("Accept-Language"))
    results = [{**r, "message": message(str(r["reason"]), language, default=r.get("message"))}
               if r.get("reason") else r for r in report["results"]]
    return {**report, "results": results}  # type: ignore[typeddict-item]


@blp.route("/revocations")
@require("exit_gate", "disposal_gate")
@blp.arguments(RevocationQuerySchema, location="query")
@blp.response(200, RevocationListSchema)
@blp.doc(responses=GATE_ERRORS)
def gate_revocations(args: dict[str, Any]) -> dict[str, Any]:
    """The revocation list an offline gate caches: voided tickets, suspended trucks and companies, revoked
    permits, signed by the QR issuer key (verify with ``/api/v1/keys``); ``?since=<version or time>`` gives
    only the newer entries."""
    return ctx().services.gates.revocations(authenticate(), args.get("since"))


@blp.route("/scans/<tx_id>")
@require("exit_gate", "disposal_gate", "operator", "enforcement", "regulator")
@blp.response(200, GateScanSchema)
@blp.doc(responses=GATE_ERRORS)
def gate_scan(tx_id: str) -> ScanView:
    """A scan this gate made (staff: any gate's) and the ledger's verdict on it."""
    return ctx().services.gates.scan(authenticate(), tx_id)


@trips_blp.route("/<ticket_id>/positions", methods=["POST"])
@require("truck_terminal")
@idempotent
@trips_blp.arguments(PositionBatchSchema)
@trips_blp.response(200, PositionsResultSchema)
def report_positions(batch: PositionBatch, ticket_id: str) -> tuple[Any, int]:
    """GPS points of a departed ticket's trip (a list of points, or ``{"positions", "time", "act_sig"}``
    signed by the terminal's registered key); answers with any violations raised."""
    return answer(ctx().services.trips.report_positions(authenticate(), ticket_id, batch, submission()))
