"""Devices in bulk in-process: one call provisions many, tokens shown once and usable, per-item errors,
tenant scoping, cursor pagination and revocation (the registry on the chain faked by a fixed answer)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from ticket_api.app import create_app
from ticket_api.auth import ctx
from ticket_api.db import ApiToken
from ticket_api.devices import DeviceRequest, Known
from ticket_api.services import Services
from ticket_api.testing import app_config
from ticket_api.tokens import hash_token

PLATES = {"渝A12345": "GPS-9900", "渝B00001": None}
SITES = {"S-003"}
PROJECTS = {"P-001"}


class FakeRegistry:
    def __init__(self) -> None:
        self.calls = 0

    def check(self, devices: Sequence[DeviceRequest]) -> list[Known]:
        self.calls += 1
        out = []
        for d in devices:
            if d.kind == "truck_terminal":
                out.append(Known(None, PLATES[d.id]) if d.id in PLATES else Known("Unknown truck plate."))
            elif d.kind == "disposal_gate":
                out.append(Known(None if d.id in SITES else "Unknown disposal site."))
            elif d.kind == "exit_gate":
                out.append(Known(None if d.id in PROJECTS else "Unknown project."))
            else:
                out.append(Known(None))
        return out


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    services = Services.unavailable()
    services.devices = FakeRegistry()
    return create_app(app_config(f"sqlite:///{tmp_path}/api.sqlite", SERVICES=services))


def bearer(app: Flask, role: str, tenant: str) -> dict[str, str]:
    with app.app_context():
        token = ctx().tokens.issue(role=role, tenant=tenant, subject="op-1").token
    return {"Authorization": f"Bearer {token}"}


def test_one_call_provisions_many_each_token_once_and_usable(app: Flask) -> None:
    """201 with a token per device (hashed in the store), each authenticates as its role and tenant; a truck
    terminal's subject defaults to the terminal its truck registered; the listing never shows a token."""
    client: FlaskClient = app.test_client()
    op = bearer(app, "operator", "GC-1")
    body = {"devices": [{"kind": "truck_terminal", "id": "渝a·12345"}, {"kind": "disposal_gate", "id": "S-003"},
                        {"kind": "exit_gate", "id": "P-001", "subject": "P-001-G2"},
                        {"kind": "camera", "id": "ROAD-G75"}]}
    r = client.post("/api/v1/devices", json=body, headers=op)
    assert r.status_code == 201, r.get_json()
    assert r.headers["Cache-Control"] == "no-store"
    items = r.get_json()["items"]
    assert [(i["kind"], i["id"], i["subject"]) for i in items] == [
        ("truck_terminal", "渝A12345", "GPS-9900"), ("disposal_gate", "S-003", "disposal_gate-S-003"),
        ("exit_gate", "P-001", "P-001-G2"), ("camera", "ROAD-G75", "camera-ROAD-G75")]
    assert all(i["expires_at"].endswith("+08:00") for i in items)
    for item in items:
        me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {item['token']}"}).get_json()
        assert (me["role"], me["tenant"]) == (item["kind"], item["id"])
    with app.app_context(), ctx().sessionmaker() as s:
        hashes = set(s.scalars(select(ApiToken.token_hash)))
    assert {hash_token(i["token"]) for i in items} <= hashes
    listed = client.get("/api/v1/devices", headers=op).get_json()
    assert [i["token_id"] for i in listed["items"]] == [i["token_id"] for i in items]
    assert all("token" not in i for i in listed["items"]) and listed["next"] is None


def test_bad_items_refuse_the_whole_batch_naming_each(app: Flask) -> None:
    """Unknown plate or site, a duplicate, a wrong terminal id, a device already provisioned: 422 naming each
    item by index, and nothing provisioned."""
    client = app.test_client()
    op = bearer(app, "operator", "GC-1")
    assert client.post("/api/v1/devices", json={"devices": [{"kind": "camera", "id": "S-003"}]},
                       headers=op).status_code == 201
    body = {"devices": [{"kind": "truck_terminal", "id": "渝Z99999"}, {"kind": "disposal_gate", "id": "S-404"},
                        {"kind": "exit_gate", "id": "P-001"}, {"kind": "exit_gate", "id": "P-001"},
                        {"kind": "truck_terminal", "id": "渝A12345", "subject": "GPS-0000"},
                        {"kind": "camera", "id": "S-003"}, {"kind": "truck_terminal", "id": "渝B00001"}]}
    r = client.post("/api/v1/devices", json=body, headers={**op, "Accept-Language": "en"})
    assert r.status_code == 422
    assert r.get_json()["reason"] == "invalid_request"
    assert sorted(r.get_json()["error"]["fields"]["devices"]) == ["0", "1", "3", "4", "5"]
    assert len(client.get("/api/v1/devices", headers=op).get_json()["items"]) == 1
    too_many = {"devices": [{"kind": "camera", "id": f"R-{i}"} for i in range(1001)]}
    assert client.post("/api/v1/devices", json=too_many, headers=op).status_code == 422


def test_only_operators_and_only_their_own_centre(app: Flask) -> None:
    """Other roles get 403; another centre's devices are neither listed nor revocable (unknown)."""
    client = app.test_client()
    op1, op2 = bearer(app, "operator", "GC-1"), bearer(app, "operator", "GC-2")
    assert client.post("/api/v1/devices", json={"devices": [{"kind": "camera", "id": "R-1"}]},
                       headers=bearer(app, "enforcement", "E-1")).status_code == 403
    made = client.post("/api/v1/devices", json={"devices": [{"kind": "camera", "id": "R-1"}]}, headers=op1)
    tid = made.get_json()["items"][0]["token_id"]
    assert client.get("/api/v1/devices", headers=op2).get_json()["items"] == []
    r = client.post("/api/v1/devices/revoke", json={"ids": [tid]}, headers=op2)
    assert r.status_code == 422 and r.get_json()["error"]["fields"] == {"ids": {"0": ["未知设备"]}}
    assert client.delete(f"/api/v1/devices/{tid}", headers=op2).status_code == 404


def test_pages_follow_the_cursor_and_revocation_stops_the_token(app: Flask) -> None:
    """Cursor pages cover every device once; revoked tokens answer 401 token_revoked and list inactive."""
    client = app.test_client()
    op = bearer(app, "operator", "GC-1")
    made = client.post("/api/v1/devices", json={"devices": [{"kind": "camera", "id": f"R-{i}"} for i in range(7)]},
                       headers=op).get_json()["items"]
    seen, cursor = [], None
    while True:
        page = client.get("/api/v1/devices", query_string={"limit": 3, **({"cursor": cursor} if cursor else {})},
                          headers=op).get_json()
        seen += [i["token_id"] for i in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [m["token_id"] for m in made]
    r = client.post("/api/v1/devices/revoke", json={"ids": [made[0]["token_id"], made[1]["token_id"]]}, headers=op)
    assert r.status_code == 200 and [i["active"] for i in r.get_json()["items"]] == [False, False]
    assert client.delete(f"/api/v1/devices/{made[2]['token_id']}", headers=op).status_code == 204
    who = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {made[0]['token']}"})
    assert who.status_code == 401 and who.get_json()["reason"] == "token_revoked"
    inactive = client.get("/api/v1/devices", query_string={"active": "false"}, headers=op).get_json()["items"]
    assert len(inactive) == 3
    assert client.get("/api/v1/devices", query_string={"cursor": "!!"}, headers=op).status_code == 422
