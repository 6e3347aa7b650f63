"""Weighbridges, routes, hours and zones through HTTP against the real stack (4 ledger nodes, gunicorn), whose
consortium restricts 渝北区's transport hours to a window that excludes now, forbids a zone on the straight
line P-001 -> S-003 and refuses tickets to a site in alarm (issue 14 part 6)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.eticket.schema import VIOLATION_TYPES
from miniprogram_stub.client import ApiClient
from miniprogram_stub.photos import tiny_png

from .serve_fixtures import Stack, serve

pytestmark = [pytest.mark.slow]
PLATE = "渝A12345"  # the demo truck terminal's truck
WAYPOINT = {"lat": 29.76, "lon": 106.42}  # north-west of the straight line P-001 -> S-003
ON_ROUTE = [(29.736, 106.475), (29.758, 106.425), (29.685, 106.413)]
OFF_ROUTE = (29.661, 106.468)  # the straight line's middle, about 5 km from the route
ZONE = {"zone_id": "Z-JB", "name": "测试禁行区", "polygon": [
    {"lat": 29.651, "lon": 106.458}, {"lat": 29.651, "lon": 106.478},
    {"lat": 29.671, "lon": 106.478}, {"lat": 29.671, "lon": 106.458}]}


def now() -> datetime:
    return datetime.now(CHINA_TZ).replace(microsecond=0)


def _closed_window() -> str:
    """A one-hour window starting two hours from now (local time): now is outside it."""
    start = now() + timedelta(hours=2)
    return f"{start:%H}:00-{start + timedelta(hours=1):%H}:00"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from serve(tmp_path_factory, eticket={
        "transport_hours": {"渝北区": _closed_window()}, "forbidden_zones": [ZONE], "site_alarm_policy": "refuse"})


def call(s: Stack, method: str, path: str, role: str, body: Any = None) -> requests.Response:
    return requests.request(method, s.api + path, json=body, headers=s.headers(role), timeout=60)


@pytest.fixture(scope="module")
def permit(stack: Stack) -> dict[str, Any]:
    """A site at its alarm (S-ALARM, 95 % of 1000 m³) and an approved permit for P-001 with a route through a
    waypoint, to S-003 and S-ALARM, for the demo company's trucks."""
    r = call(stack, "POST", "/api/v1/registry/site", "operator", {
        "site_id": "S-ALARM", "name": "测试满载消纳场", "kind": "landfill", "capacity_m3": "1000",
        "initial_load_m3": "950", "alarm_threshold_pct": 85, "location": {"lat": 29.70, "lon": 106.55}})
    assert r.status_code == 201, r.text
    r = call(stack, "POST", "/api/v1/permits", "contractor", {
        "project_id": "P-001", "volume_m3": "2000", "disposal_site_ids": ["S-003", "S-ALARM"],
        "company_ids": ["C-01"], "route": [WAYPOINT], "valid_from": (now() - timedelta(hours=1)).isoformat(),
        "valid_to": (now() + timedelta(days=5)).isoformat()})
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["route"] == [{"lat": "29.760000", "lon": "106.420000"}]
    for dept in stack.demo["tokens"]["approvers"]:
        assert call(stack, "POST", f"/api/v1/permits/{p['id']}/decisions", f"approvers.{dept}",
                    stack.decision(dept, p["id"])).status_code == 200
    return dict(call(stack, "GET", f"/api/v1/permits/{p['id']}", "contractor").json())


def _trip(s: Stack, permit: dict[str, Any], points: list[tuple[float, float]]) -> tuple[dict[str, Any], list[str]]:
    """Issue a ticket for the demo truck, leave the site, report ``points``; the ticket and the violation types
    the positions raised."""
    r = call(s, "POST", "/api/v1/tickets", "contractor", {"permit_id": permit["id"], "truck_plate": PLATE,
                                                          "disposal_site_id": "S-003", "volume_m3": "15"})
    assert r.status_code == 201, r.text
    t = r.json()
    ex = call(s, "POST", "/api/v1/gate/exit", "exit_gate", s.exit(t["qr"], PLATE))
    assert ex.status_code == 200 and ex.json()["accepted"], ex.text
    at = now()
    pts = [{"at": (at + timedelta(seconds=i)).isoformat(), "lat": lat, "lon": lon, "speed_kmh": 40}
           for i, (lat, lon) in enumerate(points)]
    pos = call(s, "POST", f"/api/v1/trips/{t['id']}/positions", "truck_terminal", s.positions(t["id"], pts))
    assert pos.status_code == 200, pos.text
    return t, [v["type"] for v in pos.json()["violations"]]


def _types(s: Stack, ticket_id: str) -> set[str]:
    """The types of a ticket's violations, by their id prefixes."""
    by_prefix = {prefix: vtype for vtype, prefix in VIOLATION_TYPES.items()}
    ids = call(s, "GET", f"/api/v1/tickets/{ticket_id}", "contractor").json()["violations"]
    return {by_prefix[vid.rstrip("0123456789")] for vid in ids}


def test_on_route_trip_outside_hours_and_a_gross_tare_receipt(stack: Stack, permit: dict[str, Any]) -> None:
    """A truck following its permit's route raises no off_route; leaving outside 渝北区's transport hours raises
    outside_hours; the weighbridge's gross and tare alone are a receipt (27 t net at 1.8 t/m³ = 15 m³)."""
    t, raised = _trip(stack, permit, ON_ROUTE)
    assert "off_route" not in raised and "forbidden_zone" not in raised
    assert "outside_hours" in _types(stack, t["id"])
    rc = call(stack, "POST", "/api/v1/gate/disposal", "disposal_gate",
              stack.disposal(t["qr"], PLATE, gross_t="45.2", tare_t="18.2"))
    assert rc.status_code == 200 and rc.json()["accepted"], rc.text
    assert rc.json()["measured_m3"] == "15" and rc.json()["weight_t"] == "27" and not rc.json()["discrepancy"]


def test_off_route_trip_in_a_forbidden_zone_and_a_weight_only_receipt(stack: Stack, permit: dict[str, Any]) -> None:
    """A truck on the straight line, away from its route and inside a forbidden zone, raises off_route and
    forbidden_zone; a bad weighing is refused bad_weighing naming the field; a net weight alone is a receipt."""
    t, raised = _trip(stack, permit, [OFF_ROUTE])
    assert {"off_route", "forbidden_zone"} <= set(raised)
    bad_weighings = (({"gross_t": "18", "tare_t": "18.2"}, "tare_t"), ({"gross_t": "45"}, "tare_t"), ({}, "volume_m3"))
    for bad, field in bad_weighings:
        r = call(stack, "POST", "/api/v1/gate/disposal", "disposal_gate", {"qr": t["qr"], "plate": PLATE, **bad})
        assert r.status_code == 422 and r.json()["reason"] == "bad_weighing" and field in r.json()["fields"], r.text
    r = call(stack, "POST", "/api/v1/gate/disposal", "disposal_gate",
             {"qr": t["qr"], "plate": PLATE, "gross_t": "300", "tare_t": "18"})
    assert r.status_code == 422 and r.json()["reason"] == "invalid_request", r.text
    gate = ApiClient(stack.api, stack.demo["tokens"]["disposal_gate"])  # the gate client library, signing
    rc = gate.gate_disposal(qr=t["qr"], plate=PLATE, weight_t="27", signing_key=stack.device_key("gate:disposal:S-003"),
                            gate_id="S-003-G1", site_id="S-003")
    assert rc["accepted"] and rc["measured_m3"] == "15", rc


def test_site_in_alarm_refuses_a_ticket_naming_recommended_sites(stack: Stack, permit: dict[str, Any]) -> None:
    """A ticket to a site at its alarm threshold is refused 422 site_alarm; the answer lists the recommended
    sites (room for the load, under their alarm), nearest to the project first, S-003 marked on_permit."""
    r = call(stack, "POST", "/api/v1/tickets", "contractor", {"permit_id": permit["id"], "truck_plate": "渝A23456",
                                                               "disposal_site_id": "S-ALARM", "volume_m3": "10"})
    assert r.status_code == 422 and r.json()["reason"] == "site_alarm", r.text
    recommended = r.json()["recommended_sites"]
    ids = [x["site_id"] for x in recommended]
    assert "S-ALARM" not in ids and "S-003" in ids
    assert [x["distance_m"] for x in recommended] == sorted(x["distance_m"] for x in recommended)
    assert {x["site_id"]: x["on_permit"] for x in recommended}["S-003"] is True
    zh = requests.post(stack.api + "/api/v1/tickets", timeout=60, headers={**stack.headers("contractor", lang="zh")},
                       json={"permit_id": permit["id"], "truck_plate": "渝A23456", "disposal_site_id": "S-ALARM",
                             "volume_m3": "10"})
    assert zh.status_code == 422 and "推荐" in zh.json()["error"]["message"]


def test_permit_amended_by_the_departments_concerned(stack: Stack, permit: dict[str, Any]) -> None:
    """The contractor asks to add S-001 to its permit; only 城管 and 生态环境 see it in their queue
    (awaiting=me), 住建 may not decide it; at the second approval the permit lists S-001."""
    a = ApiClient(stack.api, stack.demo["tokens"]["contractor"]).request_amendment(
        permit["id"], add_disposal_site_ids=["S-001"], reason="新增消纳场")
    assert a["status"] == "pending" and a["required_approvals"] == ["chengguan", "shengtai"]
    for dept, queued in (("chengguan", True), ("shengtai", True), ("zhujian", False)):
        q = call(stack, "GET", "/api/v1/amendments?awaiting=me", f"approvers.{dept}")
        assert q.status_code == 200 and (a["id"] in [x["id"] for x in q.json()["items"]]) is queued, q.text
    no = call(stack, "POST", f"/api/v1/amendments/{a['id']}/decisions", "approvers.zhujian",
              stack.decision("zhujian", a["id"], amendment=True))
    assert no.status_code == 403 and no.json()["reason"] == "unknown_department", no.text
    assert call(stack, "POST", f"/api/v1/amendments/{a['id']}/decisions", "approvers.chengguan",
                stack.decision("chengguan", a["id"], amendment=True)).json()["status"] == "pending"
    done = call(stack, "POST", f"/api/v1/amendments/{a['id']}/decisions", "approvers.shengtai",
                stack.decision("shengtai", a["id"], amendment=True))
    assert done.status_code == 200 and done.json()["status"] == "applied", done.text
    got = call(stack, "GET", f"/api/v1/permits/{permit['id']}", "contractor").json()
    assert "S-001" in got["disposal_site_ids"]
    mine = call(stack, "GET", "/api/v1/amendments", "contractor").json()["items"]
    assert [x["id"] for x in mine] == [a["id"]]


def test_a_road_camera_inside_a_forbidden_zone_raises_forbidden_zone_with_its_photo(
        stack: Stack, permit: dict[str, Any]) -> None:
    """An operator places a road camera inside the forbidden zone, provisions its credentials and registers
    its key; it sees a truck on an open trip (no GPS point sent) and signs the sighting: the answer holds a
    forbidden_zone event (and off_route: the camera is away from the route) at the camera's coordinates,
    with the photo as evidence, retrievable and matching its digest."""
    cam = {"camera_id": "CAM-ROAD-JB", "placement": "road", "town": "渝北区",
           "location": {"lat": OFF_ROUTE[0], "lon": OFF_ROUTE[1]}}
    r = call(stack, "POST", "/api/v1/registry/camera", "operator", cam)
    assert r.status_code == 201, r.text
    r = call(stack, "POST", "/api/v1/devices", "operator", {"devices": [{"kind": "camera", "id": cam["camera_id"]}]})
    assert r.status_code == 201, r.text
    camera = ApiClient(stack.api, r.json()["items"][0]["token"])
    key = PrivateKey.generate()  # the camera's own key, registered by the operator (every device act is signed)
    assert stack.register_key(f"camera:{cam['camera_id']}", key).status_code == 201
    plate = "渝A23456"
    t = call(stack, "POST", "/api/v1/tickets", "contractor", {"permit_id": permit["id"], "truck_plate": plate,
                                                               "disposal_site_id": "S-003", "volume_m3": "15"})
    assert t.status_code == 201, t.text
    ex = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", stack.exit(t.json()["qr"], plate))
    assert ex.status_code == 200 and ex.json()["accepted"], ex.text
    photo = tiny_png(4242)
    seen = camera.sighting(plate=plate, covered=True, photo=photo, time=now(), signing_key=key,
                           camera_id=str(cam["camera_id"]))
    by_type = {v["type"]: v for v in seen["violations"]}
    assert {"forbidden_zone", "off_route"} <= set(by_type), seen
    v = call(stack, "GET", f"/api/v1/violations/{by_type['forbidden_zone']['violation_id']}", "operator").json()
    assert v["ticket_id"] == t.json()["id"] and v["source"] == "camera" and "Z-JB" in v["description"]
    assert v["location"] == {"lat": "29.661000", "lon": "106.468000"}, v["location"]
    digest = "sha256:" + hashlib.sha256(photo).hexdigest()
    assert seen["photo_digest"] == digest and digest in v["evidence"]
    got = requests.get(stack.api + f"/api/v1/evidence/{digest}", headers=stack.headers("operator"), timeout=30)
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == digest.removeprefix("sha256:")
    rc = call(stack, "POST", "/api/v1/gate/disposal", "disposal_gate", stack.disposal(t.json()["qr"], plate,
                                                                                       weight_t="27"))
    assert rc.status_code == 200, rc.text
