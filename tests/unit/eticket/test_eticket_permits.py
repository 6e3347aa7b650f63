"""Permit rules: parallel department decisions in any order, rejection, revocation, expiry."""

from __future__ import annotations

import itertools

import pytest

from ledger.eticket import queries
from ledger.eticket.params import DEFAULT_DEPARTMENTS
from ledger.eticket.testing import make_world


@pytest.mark.parametrize("order", list(itertools.permutations(DEFAULT_DEPARTMENTS))[::5])
def test_all_approve_in_any_order(order: tuple[str, ...]) -> None:
    """Departments decide in parallel, in any order; the permit is approved after the last approval."""
    world = make_world()
    assert world.apply_permit("PM-1").ok
    for i, dept in enumerate(order):
        world.advance(3600)
        out = world.decide("PM-1", dept)
        assert out.ok
        expected = "approved" if i == len(order) - 1 else "pending"
        assert world.machine.state.tables["permit"]["PM-1"].state == expected
    assert out.events[0]["event"] == "permit_approved"


def test_approval_time_is_recorded() -> None:
    """approval_seconds = last approval time − application time; decisions are listed per department."""
    world = make_world()
    world.apply_permit("PM-1")
    world.advance(5000)
    for dept in DEFAULT_DEPARTMENTS:
        world.decide("PM-1", dept)
    view = queries.permit(world.machine, "PM-1")
    assert view is not None and view["approval_seconds"] == 5000 and view["state"] == "approved"
    assert [d["department"] for d in view["decisions"]] == list(DEFAULT_DEPARTMENTS)


def test_decisions_shown_pending() -> None:
    """A department that has not decided yet shows as pending in the permit view."""
    world = make_world()
    world.apply_permit("PM-1")
    world.decide("PM-1", "jiaotong")
    view = queries.permit(world.machine, "PM-1")
    assert view is not None
    assert {d["department"]: d["decision"] for d in view["decisions"]} == {
        "chengguan": "pending",
        "zhujian": "pending",
        "jiaotong": "approve",
        "shengtai": "pending",
    }


def test_any_rejection_rejects() -> None:
    """One rejection (with its reason) rejects the permit at once; later decisions get permit_closed."""
    world = make_world()
    world.apply_permit("PM-1")
    world.decide("PM-1", "chengguan")
    out = world.decide("PM-1", "shengtai", "reject", "未提供扬尘防治方案")
    assert out.ok and out.events[0]["event"] == "permit_rejected"
    assert world.machine.state.tables["permit"]["PM-1"].state == "rejected"
    assert world.decide("PM-1", "zhujian").code == "permit_closed"


def test_department_decides_once() -> None:
    """A second decision by the same department is refused with already_decided."""
    world = make_world()
    world.apply_permit("PM-1")
    assert world.decide("PM-1", "zhujian").ok
    assert world.decide("PM-1", "zhujian", "reject", "改主意").code == "already_decided"


def test_unconfigured_department_refused() -> None:
    """A department that is not among the permit's departments gets unknown_department (in a consortium that
    does not require actor signatures); where decisions must be signed by the department, it has no key to
    sign with and is refused act_unsigned."""
    act = {"permit_id": "PM-1", "department": "gongan", "decision": "approve"}
    world = make_world({"act_signed": []})
    world.apply_permit("PM-1")
    assert world.submit("permit.decide", act, "approver:gongan:u1").code == "unknown_department"
    world = make_world()
    world.apply_permit("PM-1")
    assert world.submit("permit.decide", act, "approver:gongan:u1").code == "act_unsigned"


def test_approver_only_for_own_department() -> None:
    """An approver actor of one department deciding for another, or a department node signing for
    another department, is forbidden."""
    world = make_world()
    world.apply_permit("PM-1")
    payload = {"permit_id": "PM-1", "department": "zhujian", "decision": "approve"}
    assert world.submit("permit.decide", payload, "approver:chengguan:u1").code == "forbidden"
    assert world.submit("permit.decide", payload, "approver:zhujian:u1", signer="chengguan").code == "forbidden"
    assert world.submit("permit.decide", payload, "approver:zhujian:u1", signer="gateway").ok
    assert world.submit("permit.decide", {**payload, "department": "jiaotong"}, "contractor:ORG-001").code == (
        "forbidden"
    )


def test_unknown_permit() -> None:
    """Deciding or revoking an unknown permit gives unknown_permit."""
    world = make_world()
    assert world.decide("PM-404", "zhujian").code == "unknown_permit"
    assert world.submit("permit.revoke", {"permit_id": "PM-404", "reason": "x"}).code == "unknown_permit"


def test_apply_refusals() -> None:
    """Applications name existing projects, sites, trucks, companies; ids are unique; a contractor
    only applies for its own project."""
    world = make_world()
    assert world.apply_permit("PM-1", project="P-404").code == "unknown_project"
    assert world.apply_permit("PM-1", sites=["S-404"]).code == "unknown_site"
    assert world.apply_permit("PM-1", trucks=["TR-404"]).code == "unknown_truck"
    assert world.apply_permit("PM-1", companies=["C-404"]).code == "unknown_company"
    assert world.apply_permit("PM-1", project="P-002").code == "forbidden"
    assert world.apply_permit("PM-1", project="P-002", actor="operator:u1").ok
    assert world.apply_permit("PM-1").code == "duplicate_id"


def test_contractor_suspended_cannot_apply() -> None:
    """A contractor under a suspension penalty cannot apply (contractor_suspended)."""
    world = make_world()
    world.ok(
        "penalty.record",
        {
            "penalty_id": "PN-1",
            "target_kind": "contractor",
            "target_id": "ORG-001",
            "amount_yuan": 10000,
            "measures": [{"kind": "suspend", "days": 10}],
        },
        "enforcement:u2",
    )
    assert world.apply_permit("PM-1").code == "contractor_suspended"
    world.advance(11 * 86400)
    assert world.apply_permit("PM-1").ok


def test_revoke() -> None:
    """An approved permit can be revoked; a revoked one cannot be revoked again (permit_closed)."""
    world = make_world()
    world.approved_permit("PM-1")
    assert world.submit("permit.revoke", {"permit_id": "PM-1", "reason": "整改"}, "enforcement:u2").ok
    assert world.machine.state.tables["permit"]["PM-1"].state == "revoked"
    assert world.submit("permit.revoke", {"permit_id": "PM-1", "reason": "again"}).code == "permit_closed"
    assert world.issue("T-1").code == "permit_not_approved"


def test_permit_expires_on_tick() -> None:
    """A system.tick after valid_to turns an approved permit into expired."""
    world = make_world()
    world.approved_permit("PM-1", days=1)
    world.advance(86400 + 1)
    out = world.tick()
    assert {"event": "permit_expired", "permit_id": "PM-1"} in out.events
    assert world.machine.state.tables["permit"]["PM-1"].state == "expired"
    assert world.issue("T-1").code == "expired"


def test_configured_departments() -> None:
    """The consortium's eticket.departments decide which departments must approve."""
    world = make_world({"departments": ["zhujian", "gongan"]})
    world.apply_permit("PM-1")
    assert world.machine.state.tables["permit"]["PM-1"].departments == ("zhujian", "gongan")
    assert world.submit(
        "permit.decide",
        {"permit_id": "PM-1", "department": "gongan", "decision": "approve"},
        "approver:gongan:u1",
    ).ok
    assert world.decide("PM-1", "zhujian").ok
    assert world.machine.state.tables["permit"]["PM-1"].state == "approved"
