"""Devices in bulk: an operator provisions, lists and revokes gates, GPS terminals and cameras.

``POST /api/v1/devices`` ``{"devices": [{"kind": "truck_terminal", "id": "渝A12345"}, ...]}`` answers 201
with every device's token, shown this once (``Cache-Control: no-store``; the store keeps SHA-256 only).
All or nothing: any bad item (an unknown plate or site on the chain, listed twice, already provisioned)
answers 422 ``invalid_request`` naming the items by index in ``fields.devices``.  Devices belong to the
operator's governance centre (its token's tenant): another centre's devices are unknown ones.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

from ledger.core.encoding import iso
from ledger.qrticket.gatecheck import normalise_plate
from ticket_api.auth import authenticate, ctx, require
from ticket_api.devices import DeviceInfo, DeviceRequest, DeviceStore, plan
from ticket_api.errors import InvalidRequest, NotFound
from ticket_api.jsonbody import Blueprint
from ticket_api.schemas.devices import (
    DeviceBatchSchema,
    DeviceListSchema,
    DeviceQuerySchema,
    DeviceRevokeSchema,
)

blp = Blueprint("devices", __name__, url_prefix="/api/v1/devices", description="Devices (operators)")
log = logging.getLogger("ticket_api.devices")
NO_STORE = {"Cache-Control": "no-store"}


def _store() -> DeviceStore:
    ext = current_app.extensions
    store: DeviceStore | None = ext.get("ticket_api_devices")
    if store is None:
        store = ext["ticket_api_devices"] = DeviceStore(ctx().engine)
    return store


def _time(t: Any) -> str | None:
    return None if t is None else iso(t, timespec="seconds")


def _view(d: DeviceInfo, now: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"token_id": d.token_id, "kind": d.kind, "id": d.id, "subject": d.subject,
                           "created_at": _time(d.created_at), "expires_at": _time(d.expires_at),
                           "revoked_at": _time(d.revoked_at), "active": d.revoked_at is None and d.expires_at > now}
    if d.token is not None:
        out["token"] = d.token
    return out


@blp.route("", methods=["POST"])
@require("operator")
@blp.arguments(DeviceBatchSchema)
@blp.response(201, DeviceListSchema)
def provision(data: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Provision up to 1000 devices in one transaction; each token is in this answer only (never again).

    422 ``invalid_request`` names every refused item (``fields.devices.<index>``) and provisions none.
    """
    p = authenticate()
    c = ctx()
    raw = [DeviceRequest(d["kind"], normalise_plate(d["id"]) if d["kind"] == "truck_terminal" else d["id"],
                         d.get("subject", "")) for d in data["devices"]]
    registry = c.services.devices
    known = registry.check(raw) if registry is not None else None
    store = _store()
    devices = plan(raw, known, store.active(p.tenant, [d.id for d in raw]))
    made = store.provision(p.tenant, p.subject, devices, expires_at=data.get("expires_at"))
    log.info("devices provisioned", extra={"count": len(made), "owner": p.tenant})
    now = c.now()
    return {"items": [_view(d, now) for d in made], "next": None}, 201, NO_STORE


@blp.route("", methods=["GET"])
@require("operator")
@blp.arguments(DeviceQuerySchema, location="query")
@blp.response(200, DeviceListSchema)
def list_devices(q: dict[str, Any]) -> dict[str, Any]:
    """This centre's devices in provisioning order (never a token), ``next`` is the following page's cursor."""
    p = authenticate()
    device_id = q.get("id")
    if device_id and q.get("kind") == "truck_terminal":
        device_id = normalise_plate(device_id)
    items, nxt = _store().page(p.tenant, kind=q.get("kind"), device_id=device_id, active=q.get("active"),
                               limit=q["limit"], cursor=q.get("cursor"))
    now = ctx().now()
    return {"items": [_view(d, now) for d in items], "next": nxt}


@blp.route("/revoke", methods=["POST"])
@require("operator")
@blp.arguments(DeviceRevokeSchema)
@blp.response(200, DeviceListSchema)
def revoke(data: dict[str, Any]) -> dict[str, Any]:
    """Revoke devices by token id, all or nothing (422 naming unknown ids); revoking twice is harmless."""
    p = authenticate()
    done = _store().revoke(p.tenant, data["ids"])
    log.info("devices revoked", extra={"count": len(done), "owner": p.tenant})
    now = ctx().now()
    return {"items": [_view(d, now) for d in done], "next": None}


@blp.route("/<token_id>", methods=["DELETE"])
@require("operator")
@blp.response(204)
def revoke_one(token_id: str) -> None:
    """Revoke one device by its token id (404 ``not_found`` when this centre has no such device)."""
    try:
        _store().revoke(authenticate().tenant, [token_id])
    except InvalidRequest:
        raise NotFound("no such device") from None
