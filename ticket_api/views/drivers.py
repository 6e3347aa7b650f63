"""Drivers: a transport company binds a driver's WeChat login to one of its trucks; the driver then signs in
with ``POST /api/v1/auth/wechat`` (role ``driver``, tenant the truck id) and reads that truck's tickets and
their QR codes (``GET /api/v1/tickets``, ``/tickets/{id}``, ``/qr.png``, ``/qr.svg``).

The binding lives in the API's database (an openid is personal data: never on the ledger).  Binding again
moves the driver to another truck of the same company; tokens already issued keep their truck until they
expire (``LOGIN_TOKEN_TTL_HOURS``).  An openid bound to anything but a driver of the caller's company is
refused ``409 openid_taken``: a company cannot take over a contractor's or another company's login.
``POST /api/v1/drivers/unbind`` removes a driver of the company (one who left) and revokes the driver's live
logins at once.
"""

from __future__ import annotations

from typing import Any

from ticket_api.auth import authenticate, ctx, require
from ticket_api.errors import ApiError, NotFound
from ticket_api.jsonbody import Blueprint
from ticket_api.schemas.lists import DriverBindingSchema, DriverBindSchema, DriverUnbindSchema, DriverUnboundSchema
from ticket_api.tokens import Principal

blp = Blueprint("drivers", __name__, url_prefix="/api/v1", description="Drivers bound by their transport company")


class OpenidTaken(ApiError):
    reason = "openid_taken"


@blp.route("/drivers/bind", methods=["POST"])
@require("company")
@blp.arguments(DriverBindSchema)
@blp.response(201, DriverBindingSchema)
def bind_driver(data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Bind a driver's WeChat openid to a truck of the calling company (another company's truck: 404
    ``unknown_truck``, as an unregistered plate)."""
    principal = authenticate()
    c = ctx()
    truck_id = c.services.lists.company_truck(principal, data["truck_plate"])
    current = c.tokens.wechat_user(data["openid"])
    if current is not None and not (current.role == "driver" and _same_company(principal, current.tenant)):
        raise OpenidTaken("openid bound to another role or company")
    c.tokens.bind_wechat(data["openid"], role="driver", tenant=truck_id, name=data.get("name") or "")
    return {"role": "driver", "truck_id": truck_id, "truck_plate": data["truck_plate"]}, 201


@blp.route("/drivers/unbind", methods=["POST"])
@require("company")
@blp.arguments(DriverUnbindSchema)
@blp.response(200, DriverUnboundSchema)
def unbind_driver(data: dict[str, Any]) -> dict[str, Any]:
    """Remove a driver of the calling company and revoke the driver's live logins; an openid that is not a
    driver of this company answers 404 ``unknown_driver`` (whether it exists elsewhere is not told)."""
    principal = authenticate()
    c = ctx()
    current = c.tokens.wechat_user(data["openid"])
    if current is None or current.role != "driver" or not _same_company(principal, current.tenant):
        raise NotFound("no such driver of this company", reason="unknown_driver")
    c.tokens.unbind_wechat(data["openid"])
    return {"unbound": True, "tokens_revoked": c.tokens.revoke_subject(f"wx:{data['openid']}")}


def _same_company(principal: Principal, truck_id: str) -> bool:
    """Is the truck a driver is bound to one of the caller's (its credit is readable only then)?"""
    try:
        return ctx().services.lists.credit(principal, "truck", truck_id)["company_id"] == principal.tenant
    except NotFound:
        return False
