"""Trip rules on GPS batches and the overdue rule (疑似偷倒) on system.tick."""

from __future__ import annotations

from ledger.eticket import queries
from ledger.eticket.testing import World, make_world

# P-001 (29.712030, 106.530310) → S-001 (29.610110, 106.405520); points on that line:
ON_ROUTE = [
    ("29.700000", "106.515580", "35"),
    ("29.680000", "106.491090", "42.5"),
    ("29.650000", "106.454360", "38"),
]


def _departed(**kw: object) -> World:
    world = make_world(kw.pop("params", None))  # type: ignore[arg-type]
    world.approved_permit("PM-1", **kw)  # type: ignore[arg-type]
    world.issue("T-1")
    world.depart("T-1")
    world.advance(600)
    return world


def test_positions_on_route_raise_nothing() -> None:
    """Points inside the corridor under the speed limit raise no violation; the last point is kept."""
    world = _departed()
    out = world.positions("T-1", ON_ROUTE)
    assert out.ok and out.events == ()
    view = queries.ticket(world.machine, "T-1")
    assert view is not None
    assert view["last_position"] == {"lat": "29.650000", "lon": "106.454360"} and view["gps_points"] == 3
    assert view["max_speed_kmh"] == "42.5"


def test_speeding() -> None:
    """A point above speed_limit_kmh raises one speeding violation per ticket."""
    world = _departed()
    out = world.positions("T-1", [*ON_ROUTE[:1], ("29.690000", "106.503330", "75")])
    assert [e["type"] for e in out.events] == ["speeding"]
    world.advance(60)
    assert world.positions("T-1", [("29.680000", "106.491090", "80")], batch="b2").events == ()


def test_speed_limit_is_configurable() -> None:
    """speed_limit_kmh comes from the consortium parameters."""
    world = _departed(params={"speed_limit_kmh": 40})
    out = world.positions("T-1", ON_ROUTE)
    assert [e["type"] for e in out.events] == ["speeding"]


def test_off_route() -> None:
    """A point farther than corridor_m from the route raises off_route."""
    world = _departed()
    out = world.positions("T-1", [("29.700000", "106.560000", "30")])
    assert [e["type"] for e in out.events] == ["off_route"]


def test_permit_route_defines_corridor() -> None:
    """With a permit route, the corridor follows its waypoints."""
    detour = [{"lat": "29.700000", "lon": "106.600000"}, {"lat": "29.620000", "lon": "106.600000"}]
    world = _departed(route=detour)
    assert world.positions("T-1", [("29.690000", "106.600000", "30")]).events == ()
    assert [e["type"] for e in world.positions("T-1", [("29.680000", "106.491090", "30")], batch="b2").events] == [
        "off_route"
    ]


def test_stop_near_other_site() -> None:
    """Stopping within 500 m of a disposal site that is not the ticket's raises suspicious_stop;
    passing by at speed or stopping at its own site does not."""
    world = _departed(params={"corridor_m": 50000})
    assert world.positions("T-1", [("29.651000", "106.601000", "30")]).events == ()
    assert world.positions("T-1", [("29.610200", "106.405600", "0")], batch="b2").events == ()
    out = world.positions("T-1", [("29.651000", "106.601000", "2")], batch="b3")
    assert [e["type"] for e in out.events] == ["suspicious_stop"]
    assert out.events[0]["violation_id"].startswith("YCTK")


def test_stop_just_outside_radius() -> None:
    """A stop about 600 m from another site is no suspicious stop."""
    world = _departed(params={"corridor_m": 50000})
    assert world.positions("T-1", [("29.655400", "106.600000", "0")]).events == ()


def test_positions_refusals() -> None:
    """Batches for unknown, not departed or received tickets, reused batch ids, and another truck's
    GPS terminal are refused."""
    world = _departed()
    assert world.positions("T-404", ON_ROUTE).code == "unknown_ticket"
    assert world.positions("T-1", ON_ROUTE, actor="gps:GPS-TR-2").code == "forbidden"
    assert world.positions("T-1", ON_ROUTE).ok
    assert world.positions("T-1", ON_ROUTE).code == "duplicate_id"
    world.issue("T-2", truck="TR-2")
    assert world.positions("T-2", ON_ROUTE, actor="gps:GPS-TR-2").code == "not_departed"
    world.receive("T-1")
    assert world.positions("T-1", ON_ROUTE, batch="b9").code == "already_received"


def test_offchain_batch() -> None:
    """A batch whose points live off-chain carries only their digest and count."""
    world = _departed()
    out = world.submit(
        "trip.positions",
        {
            "ticket_id": "T-1",
            "batch_id": "b1",
            "points": [],
            "offchain": {"sha256": "ef" * 32, "count": 120, "uri": "oss://gps/b1"},
        },
        "gps:GPS-TR-1",
    )
    assert out.ok and world.machine.state.tables["ticket"]["T-1"].points == 120


def test_overdue_trip_suspected_dumping() -> None:
    """No receipt within the expected time plus the margin → suspected_dumping with the last known
    position, raised once by system.tick."""
    world = _departed()
    world.positions("T-1", ON_ROUTE[:2])
    t = world.machine.state.tables["ticket"]["T-1"]
    deadline = t.departed_at + t.expected_s + 3600  # type: ignore[operator]
    world.clock = deadline
    assert world.tick().events == ()
    world.advance(1)
    out = world.tick()
    assert [e["type"] for e in out.events] == ["suspected_dumping"]
    assert out.events[0]["location"] == {"lat": "29.680000", "lon": "106.491090"}
    assert out.events[0]["violation_id"].startswith("YSTD")
    world.advance(3600)
    assert world.tick().events == ()
    assert "suspected_dumping" in world.machine.state.tables["ticket"]["T-1"].flags


def test_received_in_time_no_violation() -> None:
    """A trip received before its deadline never raises suspected_dumping."""
    world = _departed()
    world.receive("T-1")
    world.advance(5 * 3600)
    assert world.tick().events == ()


def test_overdue_without_positions_uses_departure_point() -> None:
    """Without any GPS point the suspected-dumping location is the project (the departure point)."""
    world = _departed(params={"receipt_margin_min": 10})
    world.advance(3 * 3600)
    out = world.tick()
    assert out.events[0]["location"] == {"lat": "29.712030", "lon": "106.530310"}
