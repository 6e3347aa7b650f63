"""Revocations: the list's entries and deltas, and a voided ticket let out by an offline gate."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.eticket import gate_queries, queries
from ledger.eticket.testing import World, make_world
from ledger.eticket.units import iso


def _world() -> World:
    world = make_world()
    world.approved_permit("PM-1")
    world.issue("T-1")
    return world


def _offline_exit(world: World, ticket_id: str, at: int) -> Any:
    t = world.machine.state.tables["ticket"][ticket_id]
    plate = world.machine.state.tables["truck"][t.truck_id].plate
    return world.submit("gate.exit", {"ticket_id": ticket_id, "gate_id": "G1", "plate": plate, "covered": True,
                                      "offline": True, "time": iso(at)}, "gate:exit:P-001")


def _issued_l(world: World) -> int:
    return int(world.machine.state.tables["permit"]["PM-1"].issued_l)


def test_offline_exit_after_the_void_is_a_violation_once_and_charges_the_quota_once() -> None:
    """A ticket voided, then let out by an offline gate (scan time after the void), syncs as a valid record
    with a no_ticket violation; the ticket stays voided, its volume is charged to the permit again (the void
    had released it), and a second offline scan of it is an ordinary voided refusal: no second violation,
    no second charge."""
    world = _world()
    before = _issued_l(world)
    world.advance(60)
    world.ok("ticket.void", {"ticket_id": "T-1", "reason": "取消"}, "contractor:ORG-001")
    assert _issued_l(world) == before - 16000
    world.advance(60)
    out = _offline_exit(world, "T-1", world.clock - 30)
    assert out.ok, out.code
    raised = [e for e in out.events if e["event"] == "violation_raised"]
    assert len(raised) == 1 and raised[0]["type"] == "no_ticket"
    t = world.machine.state.tables["ticket"]["T-1"]
    assert t.state == "voided" and "used_after_void" in t.flags
    assert _issued_l(world) == before
    assert queries.ticket(world.machine, "T-1")["violations"] == [raised[0]["violation_id"]]
    again = _offline_exit(world, "T-1", world.clock - 20)
    assert again.code == "voided"
    assert _issued_l(world) == before
    assert len(queries.violations(world.machine, ticket_id="T-1")) == 1
    assert world.replay().digest() == world.machine.digest()


def test_offline_exit_before_the_void_and_online_exit_are_ordinary_refusals() -> None:
    """A scan made before the void (the gate could not have known) and an online scan of a voided ticket are
    refused voided, with no violation and no change to the quota."""
    world = _world()
    scanned = world.clock + 10
    world.advance(60)
    world.ok("ticket.void", {"ticket_id": "T-1", "reason": "取消"}, "contractor:ORG-001")
    before = _issued_l(world)
    assert _offline_exit(world, "T-1", scanned).code == "voided"
    assert world.depart("T-1").code == "voided"
    assert _issued_l(world) == before and queries.violations(world.machine, ticket_id="T-1") == []


def test_the_list_holds_voided_tickets_suspended_trucks_companies_and_revoked_permits() -> None:
    """The revocation list names the voided ticket, the suspended truck (with its plate and until), the
    suspended company with its trucks' plates, and the revoked permit; each entry has the version (block
    height) it changed at, and the list the height of the last block."""
    world = _world()
    world.issue("T-2", truck="TR-2")
    world.ok("ticket.void", {"ticket_id": "T-1", "reason": "取消"}, "contractor:ORG-001")
    world.ok("penalty.record", {"penalty_id": "PN-1", "target_kind": "truck", "target_id": "TR-2",
                                "amount_yuan": 500, "measures": [{"kind": "suspend", "days": 3}]}, "enforcement:u2")
    world.ok("penalty.record", {"penalty_id": "PN-2", "target_kind": "company", "target_id": "C-02",
                                "amount_yuan": 500, "measures": [{"kind": "suspend", "days": 1}]}, "enforcement:u2")
    world.approved_permit("PM-2")
    world.ok("permit.revoke", {"permit_id": "PM-2", "reason": "整改"})
    rl = gate_queries.revocations(world.machine)
    assert [e["ticket_id"] for e in rl["tickets"]] == ["T-1"]
    assert rl["tickets"][0]["voided_at"].endswith("+08:00")
    assert [(e["truck_id"], e["plate"]) for e in rl["trucks"]] == [("TR-2", world.machine.state.tables["truck"]
                                                                      ["TR-2"].plate)]
    assert [c["company_id"] for c in rl["companies"]] == ["C-02"] and rl["companies"][0]["plates"]
    assert [p["permit_id"] for p in rl["permits"]] == ["PM-2"]
    assert rl["version"] == len(world.log) - 1 and rl["since_version"] is None


def test_a_delta_holds_only_what_changed_after_its_version_or_time() -> None:
    """A delta since the list's version holds only entries changed in later blocks; since a time, those
    changed in blocks after that time; a delta since the latest version is empty."""
    world = _world()
    world.issue("T-2", truck="TR-2")
    world.ok("ticket.void", {"ticket_id": "T-1", "reason": "取消"}, "contractor:ORG-001")
    first = gate_queries.revocations(world.machine)
    mark = world.clock
    world.advance(120)
    world.ok("ticket.void", {"ticket_id": "T-2", "reason": "取消"}, "contractor:ORG-001")
    delta = gate_queries.revocations(world.machine, since_version=first["version"])
    assert [e["ticket_id"] for e in delta["tickets"]] == ["T-2"] and delta["since_version"] == first["version"]
    by_time = gate_queries.revocations(world.machine, since_time=mark)
    assert [e["ticket_id"] for e in by_time["tickets"]] == ["T-2"]
    assert gate_queries.revocations(world.machine, since_version=delta["version"])["tickets"] == []
    full = gate_queries.revocations(world.machine)
    assert [e["ticket_id"] for e in full["tickets"]] == ["T-1", "T-2"]


def _revoke(world: World, what: str) -> None:
    """Suspend T-1's truck or company, or revoke its permit."""
    t = world.machine.state.tables["ticket"]["T-1"]
    if what == "permit":
        world.ok("permit.revoke", {"permit_id": "PM-1", "reason": "整改"})
        return
    target = t.truck_id if what == "truck" else world.machine.state.tables["truck"][t.truck_id].company_id
    world.ok("penalty.record", {"penalty_id": f"PN-{what}", "target_kind": what, "target_id": target,
                                "amount_yuan": 500, "measures": [{"kind": "suspend", "days": 3}]}, "enforcement:u2")


@pytest.mark.parametrize("what", ["truck", "company", "permit"])
def test_offline_exit_after_a_suspension_or_revocation_is_a_departure_with_one_violation(what: str) -> None:
    """The truck or its company suspended, or the permit revoked, then the ticket let out by an offline gate
    (scan time after it): the sync records the departure (the load did leave) flagged used_after_revocation,
    with one no_ticket violation naming what was revoked; a second sync of the scan is already_departed.
    Online, the same scan is refused (truck_suspended / permit_not_approved) with no violation."""
    world = _world()
    world.advance(60)
    _revoke(world, what)
    online = world.depart("T-1")
    assert online.code == ("permit_not_approved" if what == "permit" else "truck_suspended")
    world.advance(60)
    out = _offline_exit(world, "T-1", world.clock - 30)
    assert out.ok, out.code
    [raised] = [e for e in out.events if e["event"] == "violation_raised"]
    assert raised["type"] == "no_ticket"
    assert any(e["event"] == "ticket_used_after_revocation" for e in out.events)
    t = world.machine.state.tables["ticket"]["T-1"]
    assert t.state == "departed" and "used_after_revocation" in t.flags
    v = world.machine.state.tables["violation"][raised["violation_id"]]
    assert f"{what}=" in v.description and v.ticket_id == "T-1"
    assert _offline_exit(world, "T-1", world.clock - 20).code == "already_departed"
    assert len(queries.violations(world.machine, ticket_id="T-1")) == 1
    assert world.replay().digest() == world.machine.digest()


@pytest.mark.parametrize("what", ["truck", "company", "permit"])
def test_offline_exit_before_a_suspension_or_revocation_is_an_ordinary_departure(what: str) -> None:
    """A scan made before the suspension or revocation (the gate could not have known) syncs as an ordinary
    departure: no violation, no flag."""
    world = _world()
    scanned = world.clock + 10
    world.advance(60)
    _revoke(world, what)
    world.advance(60)
    out = _offline_exit(world, "T-1", scanned)
    assert out.ok, out.code
    assert [e for e in out.events if e["event"] == "violation_raised"] == []
    t = world.machine.state.tables["ticket"]["T-1"]
    assert t.state == "departed" and "used_after_revocation" not in t.flags
