"""The mini-program's endpoints (contractors): permits, tickets and their QR codes."""

from __future__ import annotations

from typing import Any

from flask import Response

from ticket_api.auth import answer, authenticate, ctx, require, submission
from ticket_api.idempotency import idempotent
from ticket_api.issuer import render_png, render_svg
from ticket_api.jsonbody import Blueprint
from ticket_api.schemas import PermitCreateSchema, PermitSchema, RevokeSchema, TicketCreateSchema, TicketSchema
from ticket_api.service_data import PermitApplication, PermitView, Revocation, TicketRequest, TicketView
from ticket_api.tokens import STAFF_ROLES

blp = Blueprint("miniprogram", __name__, url_prefix="/api/v1", description="Mini-program (contractors)")
READERS = ("contractor", *sorted(STAFF_ROLES))


@blp.route("/permits", methods=["POST"])
@require("contractor")
@idempotent
@blp.arguments(PermitCreateSchema)
@blp.response(201, PermitSchema)
def create_permit(data: PermitApplication) -> tuple[Any, int]:
    """Apply for a disposal permit; the departments then decide in parallel."""
    return answer(ctx().services.permits.create_permit(authenticate(), data, submission()), 201)


@blp.route("/permits/<permit_id>")
@require(*READERS)
@blp.response(200, PermitSchema)
def get_permit(permit_id: str) -> PermitView:
    """A permit with each department's decision (its contractor and staff only)."""
    return ctx().services.permits.get_permit(authenticate(), permit_id)


@blp.route("/tickets", methods=["POST"])
@require("contractor")
@idempotent
@blp.arguments(TicketCreateSchema)
@blp.response(201, TicketSchema)
def issue_ticket(data: TicketRequest) -> tuple[Any, int]:
    """Issue an e-ticket under an approved permit; the answer carries the signed ``qr``."""
    return answer(ctx().services.tickets.issue_ticket(authenticate(), data, submission()), 201)


@blp.route("/tickets/<ticket_id>")
@require(*READERS, "driver")
@blp.response(200, TicketSchema)
def get_ticket(ticket_id: str) -> TicketView:
    """A ticket (with its ``qr`` for its contractor and the driver of its truck); others get 404."""
    return ctx().services.tickets.get_ticket(authenticate(), ticket_id)


@blp.route("/tickets/<ticket_id>/void", methods=["POST"])
@require("contractor")
@idempotent
@blp.arguments(RevokeSchema)
@blp.response(200, TicketSchema)
def void_ticket(data: Revocation, ticket_id: str) -> tuple[Any, int]:
    """Void an unused ticket (e.g. the truck broke down); its volume returns to the quota."""
    return answer(ctx().services.tickets.void(authenticate(), ticket_id, data, submission()))


def _qr(ticket_id: str, render: Any, mimetype: str) -> Response:
    text = ctx().services.tickets.ticket_qr(authenticate(), ticket_id)
    resp = Response(render(text), mimetype=mimetype)
    resp.headers["Cache-Control"] = "private, max-age=300"
    return resp


@blp.route("/tickets/<ticket_id>/qr.png")
@require("contractor", "driver")
@blp.response(200, content_type="image/png", description="QR code (alphanumeric mode, level Q)")
def ticket_qr_png(ticket_id: str) -> Response:
    """The ticket's QR code as PNG (its contractor and the driver of its truck only)."""
    return _qr(ticket_id, render_png, "image/png")


@blp.route("/tickets/<ticket_id>/qr.svg")
@require("contractor", "driver")
@blp.response(200, content_type="image/svg+xml", description="QR code as SVG")
def ticket_qr_svg(ticket_id: str) -> Response:
    """The ticket's QR code as SVG (its contractor and the driver of its truck only)."""
    return _qr(ticket_id, render_svg, "image/svg+xml")
