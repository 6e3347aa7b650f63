"""Ticket issue and void: every check of ticket.issue in its documented order."""

from __future__ import annotations

from ledger.eticket import queries
from ledger.eticket.testing import World, make_world


def _world(**kw: object) -> World:
    world = make_world()
    world.approved_permit("PM-1", **kw)  # type: ignore[arg-type]
    return world


def test_issue_reserves_quota_and_site() -> None:
    """A valid ticket adds its volume to the permit's issued volume and the site's pending volume."""
    world = _world()
    out = world.issue("T-1", volume="15.5")
    assert out.ok and out.events[0]["event"] == "ticket_issued"
    st = world.machine.state.tables
    assert st["permit"]["PM-1"].issued_l == 15500 and st["site"]["S-001"].pending_l == 15500
    t = st["ticket"]["T-1"]
    assert (t.state, t.project_id, t.valid_until - t.issued_at) == ("issued", "P-001", 86400)


def test_contractor_only_for_own_permit() -> None:
    """Another contractor cannot issue tickets on this permit (forbidden); an operator can."""
    world = _world()
    assert world.issue("T-1", actor="contractor:ORG-002").code == "forbidden"
    assert world.issue("T-1", actor="operator:u1").ok


def test_unknown_permit() -> None:
    """A ticket on an unknown permit is refused with unknown_permit."""
    assert _world().issue("T-1", permit="PM-404").code == "unknown_permit"


def test_permit_not_approved() -> None:
    """A pending or rejected permit gives permit_not_approved."""
    world = make_world()
    world.apply_permit("PM-1")
    assert world.issue("T-1").code == "permit_not_approved"
    world.decide("PM-1", "zhujian", "reject", "材料不全")
    assert world.issue("T-1").code == "permit_not_approved"


def test_permit_not_yet_valid() -> None:
    """Before the permit's valid_from the ticket is refused with permit_not_approved."""
    world = make_world()
    world.approved_permit("PM-1")
    world.issue("T-0")
    assert world.issue("T-1", time="2026-11-22T20:00:00+08:00").code == "permit_not_approved"


def test_permit_window_over() -> None:
    """After valid_to (even before a tick expired the permit) the ticket is refused with expired."""
    world = _world(days=1)
    world.advance(86400 + 60)
    assert world.issue("T-1").code == "expired"


def test_truck_checks() -> None:
    """Unknown truck, truck not allowed by the permit, retired truck are refused in turn."""
    world = _world()
    assert world.issue("T-1", truck="TR-404").code == "unknown_truck"
    assert world.issue("T-1", truck="TR-3", volume="10").code == "wrong_truck"
    world.ok(
        "registry.truck",
        {
            "truck_id": "TR-2",
            "plate": "渝A23456",
            "company_id": "C-01",
            "capacity_m3": "18",
            "status": "retired",
            "update": True,
        },
    )
    assert world.issue("T-1", truck="TR-2").code == "truck_retired"


def test_truck_allowed_by_list() -> None:
    """A permit listing truck ids allows exactly those trucks (here one of another company)."""
    world = _world(companies=(), trucks=("TR-3",))
    assert world.issue("T-1", truck="TR-3", volume="10").ok
    assert world.issue("T-2", truck="TR-1").code == "wrong_truck"


def test_suspended_truck_or_company() -> None:
    """A suspended truck, or a truck of a suspended company, gets no ticket (truck_suspended)."""
    world = _world()
    world.ok(
        "penalty.record",
        {
            "penalty_id": "PN-1",
            "target_kind": "truck",
            "target_id": "TR-1",
            "amount_yuan": 500,
            "measures": [{"kind": "suspend", "days": 3}],
        },
        "enforcement:u2",
    )
    assert world.issue("T-1").code == "truck_suspended"
    assert world.issue("T-1", truck="TR-2").ok
    world.ok(
        "penalty.record",
        {
            "penalty_id": "PN-2",
            "target_kind": "company",
            "target_id": "C-01",
            "amount_yuan": 500,
            "measures": [{"kind": "suspend", "days": 1}],
        },
        "enforcement:u2",
    )
    assert world.issue("T-2", truck="TR-2").code == "truck_suspended"
    world.advance(86400 + 1)
    assert world.issue("T-2", truck="TR-2").ok
    assert world.issue("T-3").code == "truck_suspended"
    world.advance(2 * 86400)
    assert world.issue("T-3").ok


def test_over_capacity() -> None:
    """A volume above the truck's capacity is refused with over_capacity."""
    assert _world().issue("T-1", volume="18.001").code == "over_capacity"


def test_truck_with_open_trip() -> None:
    """A truck with a departed, not yet received ticket gets no new ticket (truck_busy); after the
    receipt it does."""
    world = _world()
    world.issue("T-1")
    assert world.issue("T-2").ok  # issued-only tickets do not block
    world.depart("T-1")
    assert world.issue("T-3").code == "truck_busy"
    world.advance(1800)
    assert world.receive("T-1").ok
    assert world.issue("T-3").ok


def test_driver_checks() -> None:
    """An unknown driver is refused; a suspended driver gets driver_suspended."""
    world = _world()
    assert world.issue("T-1", driver_id="D-404").code == "unknown_driver"
    world.ok(
        "penalty.record",
        {
            "penalty_id": "PN-1",
            "target_kind": "driver",
            "target_id": "D-1",
            "amount_yuan": 200,
            "measures": [{"kind": "suspend", "days": 1}],
        },
        "enforcement:u2",
    )
    assert world.issue("T-1", driver_id="D-1").code == "driver_suspended"
    assert world.issue("T-1").ok


def test_site_checks() -> None:
    """An unknown site, a site the permit does not allow, and a site without room are refused."""
    world = _world(sites=("S-001", "S-003"))
    assert world.issue("T-1", site="S-404").code == "unknown_site"
    assert world.issue("T-1", site="S-002").code == "wrong_site"
    for i in range(6):  # S-003 holds 100 m³: 6 × 16 = 96 reserved
        assert world.issue(f"T-{i}", site="S-003", truck="TR-2" if i % 2 else "TR-1").ok
    assert world.issue("T-9", site="S-003", volume="4.001").code == "site_full"
    assert world.issue("T-9", site="S-003", volume="4").ok


def test_quota() -> None:
    """The issued volume never exceeds the permit's quota (quota_exceeded); voiding gives volume back."""
    world = _world(quota="40")
    assert world.issue("T-1").ok and world.issue("T-2").ok
    assert world.issue("T-3", volume="8.001").code == "quota_exceeded"
    assert world.issue("T-3", volume="8").ok
    assert world.submit("ticket.void", {"ticket_id": "T-1", "reason": "改派"}, "contractor:ORG-001").ok
    assert world.machine.state.tables["permit"]["PM-1"].issued_l == 24000
    assert world.issue("T-4").ok


def test_duplicate_ticket_id() -> None:
    """A reused ticket id is refused with duplicate_id."""
    world = _world()
    world.issue("T-1")
    assert world.issue("T-1", truck="TR-2").code == "duplicate_id"


def test_future_event_time() -> None:
    """An event time later than the block time plus the allowed skew is refused with bad_time."""
    world = _world()
    assert world.issue("T-1", time="2026-11-23T21:00:00+08:00").code == "bad_time"
    assert world.issue("T-1", time="2026-11-23T20:05:00+08:00").ok


def test_void_rules() -> None:
    """Only an issued ticket can be voided; other states give their own code; the contractor must own it."""
    world = _world()
    world.issue("T-1")
    world.issue("T-2", truck="TR-2")
    void = {"ticket_id": "T-1", "reason": "取消"}
    assert world.submit("ticket.void", void, "contractor:ORG-002").code == "forbidden"
    assert world.submit("ticket.void", {**void, "ticket_id": "T-404"}).code == "unknown_ticket"
    assert world.submit("ticket.void", void).ok
    assert world.submit("ticket.void", void).code == "voided"
    world.depart("T-2")
    assert world.submit("ticket.void", {**void, "ticket_id": "T-2"}).code == "already_departed"
    world.advance(1200)
    world.receive("T-2")
    assert world.submit("ticket.void", {**void, "ticket_id": "T-2"}).code == "already_received"
    world.issue("T-3")
    world.advance(2 * 86400)
    world.tick()
    assert world.submit("ticket.void", {**void, "ticket_id": "T-3"}).code == "expired"


def test_ticket_expires_on_tick() -> None:
    """An issued ticket past valid_until expires on the next tick and returns its volume."""
    world = _world()
    world.issue("T-1")
    world.advance(86400 + 1)
    out = world.tick()
    assert {"event": "ticket_expired", "ticket_id": "T-1"} in out.events
    st = world.machine.state.tables
    assert st["ticket"]["T-1"].state == "expired"
    assert st["permit"]["PM-1"].issued_l == 0 and st["site"]["S-001"].pending_l == 0
    assert world.tick().events == ()


def test_expected_trip_time() -> None:
    """The expected trip time comes from the payload or from the distance (≥ min_trip_minutes)."""
    world = _world()
    world.issue("T-1", expected_minutes=45)
    world.issue("T-2", truck="TR-2", site="S-003")
    st = world.machine.state.tables
    assert st["ticket"]["T-1"].expected_s == 2700
    assert st["ticket"]["T-2"].expected_s >= 1200
    view = queries.ticket(world.machine, "T-1")
    assert view is not None and view["expected_minutes"] == 45
