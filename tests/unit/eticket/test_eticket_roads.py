"""Transport hours, forbidden zones, routes, weighbridge receipts and sites in alarm (issue 14 part 6)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ledger.errors import ConsortiumError
from ledger.eticket import queries
from ledger.eticket.acts import DEFAULT_ACT_SIGNED, FULL_ACT_SIGNED
from ledger.eticket.errors import PayloadError
from ledger.eticket.geo import in_polygon
from ledger.eticket.params import Params, default_parameters
from ledger.eticket.schema import validate
from ledger.eticket.testing import PROJECT_LOC, make_world
from ledger.eticket.units import epoch
from ledger.eticket.zones import in_forbidden_zone, outside_hours, parse_hours, parse_zones

# A square of about 2 km around (29.70, 106.50), on the straight line P-001 -> S-001.
ZONE = {"zone_id": "Z-1", "name": "礼嘉核心区", "polygon": [
    {"lat": "29.690", "lon": "106.490"}, {"lat": "29.690", "lon": "106.510"},
    {"lat": "29.710", "lon": "106.510"}, {"lat": "29.710", "lon": "106.490"}]}


def _violations(out: Any) -> list[str]:
    return [e["type"] for e in out.events if e["event"] == "violation_raised"]


def test_point_in_polygon_convex_concave_and_outside() -> None:
    """The integer crossing test: inside a square, outside it, and in and out of the notch of an L shape."""
    square = [(0, 0), (0, 10), (10, 10), (10, 0)]
    assert in_polygon((5, 5), square) and not in_polygon((11, 5), square) and not in_polygon((5, -1), square)
    ell = [(0, 0), (0, 10), (4, 10), (4, 4), (10, 4), (10, 0)]
    assert in_polygon((2, 8), ell) and in_polygon((8, 2), ell) and not in_polygon((8, 8), ell)


def test_hours_window_wraps_midnight_in_china_time() -> None:
    """'20:00-06:00' allows 22:00 and 05:59 (+08:00) and refuses 06:00 and 12:00; '*' covers other districts;
    a district with no window and no '*' is unrestricted."""
    p = Params.from_mapping({"transport_hours": {"渝北区": "20:00-06:00"}})
    assert outside_hours(p, "渝北区", epoch("2026-11-23T22:00:00+08:00")) is None
    assert outside_hours(p, "渝北区", epoch("2026-11-24T05:59:59+08:00")) is None
    window = outside_hours(p, "渝北区", epoch("2026-11-24T06:00:00+08:00"))
    assert window is not None and window.text() == "20:00-06:00"
    assert outside_hours(p, "渝北区", epoch("2026-11-24T12:00:00+08:00")) is not None
    assert outside_hours(p, "江北区", epoch("2026-11-24T12:00:00+08:00")) is None
    assert outside_hours(p, None, epoch("2026-11-24T12:00:00+08:00")) is None
    q = Params.from_mapping({"transport_hours": {"*": "08:00-18:00", "渝北区": "20:00-24:00"}})
    assert outside_hours(q, "江北区", epoch("2026-11-24T12:00:00+08:00")) is None
    assert outside_hours(q, "渝北区", epoch("2026-11-24T12:00:00+08:00")) is not None


@pytest.mark.parametrize("bad", [
    {"transport_hours": {"渝北区": "20:00"}}, {"transport_hours": {"渝北区": "25:00-06:00"}},
    {"transport_hours": {"渝北区": "06:00-06:00"}}, {"transport_hours": ["20:00-06:00"]},
    {"forbidden_zones": [{"zone_id": "Z-1", "polygon": [{"lat": 1, "lon": 1}, {"lat": 2, "lon": 2}]}]},
    {"forbidden_zones": [ZONE, ZONE]}, {"forbidden_zones": [{**ZONE, "colour": "red"}]},
    {"forbidden_zones": [{**ZONE, "polygon": [{"lat": 91, "lon": 1}] * 3}]},
    {"site_alarm_policy": "ignore"},
])
def test_bad_hours_zones_and_policy_are_refused(bad: dict[str, Any]) -> None:
    """A malformed window, zone or alarm policy is a consortium configuration error."""
    with pytest.raises(ConsortiumError):
        Params.from_mapping(bad)


def test_parameters_round_trip_and_defaults() -> None:
    """The defaults spell the new parameters out (a new consortium's act policy is the full one, a consortium
    whose genesis names none keeps the decisions only); parsed zones and hours keep their values."""
    assert Params.from_mapping(default_parameters()) == replace(Params(), act_signed=FULL_ACT_SIGNED)
    assert Params().act_signed == DEFAULT_ACT_SIGNED
    assert Params().site_alarm_policy == "refuse"
    zones = parse_zones([ZONE])
    assert zones[0].zone_id == "Z-1" and zones[0].polygon[0] == (29_690_000, 106_490_000)
    assert dict(parse_hours({"a": "20:00-06:00"}))["a"].text() == "20:00-06:00"
    p = Params.from_mapping({"forbidden_zones": [ZONE]})
    zone = in_forbidden_zone(p, 106_500_000, 29_700_000)
    assert zone is not None and zone.zone_id == "Z-1"
    assert in_forbidden_zone(p, 106_530_000, 29_700_000) is None


def test_trip_outside_hours_is_caught_at_exit_once() -> None:
    """An exit at 20:00 in a district whose trucks drive 22:00-06:00 is recorded and raises outside_hours;
    later GPS points outside the window raise no second one."""
    world = make_world({"transport_hours": {"*": "22:00-06:00"}})
    world.approved_permit("PM-1")
    assert world.issue("T-1").ok
    out = world.depart("T-1")
    assert out.ok and _violations(out) == ["outside_hours"]
    world.advance(60)
    out = world.positions("T-1", [("29.712", "106.530", "30")])
    assert out.ok and _violations(out) == []
    ticket = queries.ticket(world.machine, "T-1")
    assert ticket is not None and ticket["state"] == "departed" and "outside_hours" in ticket["flags"]


def test_trip_within_hours_then_gps_after_the_window_is_caught() -> None:
    """A trip leaving inside its window raises nothing at exit; a GPS point after the window closes does."""
    world = make_world({"transport_hours": {"*": "19:00-20:30"}})
    world.approved_permit("PM-1")
    assert world.issue("T-1").ok
    out = world.depart("T-1")
    assert out.ok and _violations(out) == []
    world.advance(20 * 60)
    assert _violations(world.positions("T-1", [("29.712", "106.530", "30")])) == []
    world.advance(20 * 60)
    out = world.positions("T-1", [("29.712", "106.530", "30")], batch="b2")
    assert _violations(out) == ["outside_hours"]


def test_district_hours_apply_to_their_projects_only() -> None:
    """Hours keyed by a district bind trips from that district's projects, not others."""
    world = make_world({"transport_hours": {"渝北区": "22:00-06:00"}})
    world.ok("registry.project", {"project_id": "P-001", "name": "悦来安置房", "contractor_org_id": "ORG-001",
                                  "location": PROJECT_LOC, "district": "渝北区", "planned_volume_m3": "120000",
                                  "update": True})
    world.approved_permit("PM-1")
    world.approved_permit("PM-2", project="P-002", actor="contractor:ORG-002")
    assert world.issue("T-1").ok and world.issue("T-2", permit="PM-2", truck="TR-2",
                                                 actor="contractor:ORG-002").ok
    assert _violations(world.depart("T-1")) == ["outside_hours"]
    assert _violations(world.depart("T-2", actor="gate:exit:P-002")) == []


def test_forbidden_zone_is_caught_once_per_trip() -> None:
    """A GPS point inside a forbidden zone raises forbidden_zone (JXQY…), once; points outside raise none."""
    world = make_world({"forbidden_zones": [ZONE], "corridor_m": 50000})
    world.approved_permit("PM-1")
    assert world.issue("T-1").ok and world.depart("T-1").ok
    world.advance(120)
    assert _violations(world.positions("T-1", [("29.712", "106.530", "30")])) == []
    world.advance(120)
    out = world.positions("T-1", [("29.700", "106.500", "30"), ("29.701", "106.501", "30")], batch="b2")
    assert _violations(out) == ["forbidden_zone"]
    raised = next(e for e in out.events if e["event"] == "violation_raised")
    assert raised["violation_id"].startswith("JXQY")
    v = queries.violation(world.machine, raised["violation_id"])
    assert v is not None and "zone=Z-1" in v["description"]


def test_permit_route_guides_the_corridor() -> None:
    """With a route through a waypoint north-west of the straight line, a truck on the route is not off_route
    and one on the straight line (far from the route) is."""
    world = make_world()
    route = [{"lat": "29.760", "lon": "106.420"}]
    out = world.apply_permit("PM-R", route=[{"lat": "29.712030", "lon": "106.530310"}, *route])
    assert out.ok, out
    for dept in world.machine.params.departments:
        assert world.decide("PM-R", dept).ok
    assert world.issue("T-1", permit="PM-R").ok and world.depart("T-1").ok
    assert world.issue("T-2", permit="PM-R", truck="TR-2").ok and world.depart("T-2").ok
    world.advance(300)
    on_route = world.positions("T-1", [("29.740", "106.470", "40"), ("29.760", "106.425", "40")])
    assert on_route.ok and "off_route" not in _violations(on_route)
    straight = world.positions("T-2", [("29.660", "106.470", "40")], actor="gps:GPS-TR-2")
    assert straight.ok and _violations(straight) == ["off_route"]
    permit = queries.permit(world.machine, "PM-R")
    assert permit is not None and len(permit["route"]) == 2


def _alarm_world(policy: str) -> Any:
    world = make_world({"site_alarm_policy": policy})
    world.approved_permit("PM-1")
    for i in range(5):  # S-003: 100 m³, alarm at 80 %
        tid = f"T-{i}"
        assert world.issue(tid, site="S-003", truck=("TR-1", "TR-2")[i % 2]).ok
        assert world.depart(tid).ok and world.receive(tid, volume="16").ok
    return world


def test_site_in_alarm_refuses_a_ticket_naming_recommended_sites() -> None:
    """Policy refuse: a ticket to a site at its alarm is refused site_alarm, the refusal's event naming the
    other sites with room nearest to the project first, each marked on_permit; nothing changes."""
    world = _alarm_world("refuse")
    before = world.machine.digest()
    out = world.issue("T-9", site="S-003")
    assert out.code == "site_alarm" and "recommended=S-002,S-001" in out.message
    event = out.events[0]
    assert event["event"] == "site_alarm" and event["site_id"] == "S-003"
    assert [(r["site_id"], r["on_permit"]) for r in event["recommended_sites"]] == [("S-002", True), ("S-001", True)]
    assert world.machine.digest() == before
    assert world.issue("T-9", site="S-001").ok


def test_site_in_alarm_only_warns_by_parameter() -> None:
    """Policy warn: the ticket is issued, with a site_alarm event naming the recommended sites."""
    world = _alarm_world("warn")
    out = world.issue("T-9", site="S-003")
    assert out.ok
    warning = [e for e in out.events if e["event"] == "site_alarm"]
    assert warning and [r["site_id"] for r in warning[0]["recommended_sites"]] == ["S-002", "S-001"]


def _receipt(**measure: Any) -> dict[str, Any]:
    return validate("gate.receipt", {"ticket_id": "T-1", "gate_id": "G2", "plate": "渝A12345", **measure})


def test_receipt_payload_weighing_rules() -> None:
    """gross and tare make the net weight; tare must be below gross, both must be given, a given net must match."""
    assert _receipt(gross_t="45.2", tare_t="16.4")["weight_t"] == 28_800
    assert _receipt(gross_t="45.2", tare_t="16.4", weight_t="28.8")["weight_t"] == 28_800
    for bad in ({"gross_t": "16", "tare_t": "16"}, {"gross_t": "10", "tare_t": "16"}, {"gross_t": "45"},
                {"tare_t": "16"}, {"gross_t": "45.2", "tare_t": "16.4", "weight_t": "20"}, {},
                {"gross_t": "-1", "tare_t": "0.5"}):
        with pytest.raises(PayloadError):
            _receipt(**bad)


def test_weighbridge_receipt_converts_by_density() -> None:
    """A receipt by gross and tare only is accepted: 28.8 t net at 1.8 t/m³ is 16 m³ measured."""
    world = make_world()
    world.approved_permit("PM-1")
    assert world.issue("T-1").ok and world.depart("T-1").ok
    t = world.machine.state.tables["ticket"]["T-1"]
    out = world.submit("gate.receipt", {"ticket_id": "T-1", "gate_id": "G2", "plate": "渝A12345",
                                        "gross_t": "45.2", "tare_t": "16.4"}, f"gate:disposal:{t.site_id}")
    assert out.ok, out
    got = queries.ticket(world.machine, "T-1")
    assert got is not None and got["measured_m3"] == "16" and got["weight_t"] == "28.8"
