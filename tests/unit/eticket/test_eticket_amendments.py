"""Permit amendments: sites or trucks added to an approved permit by the departments concerned."""

from __future__ import annotations

from typing import Any

from ledger.eticket import queries
from ledger.eticket.testing import World, make_world


def _amend(world: World, aid: str = "A-1", actor: str = "contractor:ORG-001", **add: Any) -> Any:
    return world.submit("permit.amend", {"amendment_id": aid, "permit_id": "PM-1", **add}, actor)


def _decide(world: World, dept: str, decision: str = "approve", aid: str = "A-1", **kw: Any) -> Any:
    payload: dict[str, Any] = {"amendment_id": aid, "department": dept, "decision": decision, **kw}
    return world.submit("permit.amend_decide", payload, f"approver:{dept}:u1", signer=dept)


def _world() -> World:
    world = make_world()
    world.approved_permit("PM-1", sites=("S-001",), companies=(), trucks=("TR-1",))
    return world


def test_a_site_added_once_the_concerned_departments_approved() -> None:
    """Adding a site concerns 城管 and 生态环境 only; the permit takes the site at the last approval, and a
    ticket to it is refused wrong_site before and issued after."""
    world = _world()
    out = _amend(world, add_site_ids=["S-002", "S-001"], reason="新增消纳场")
    assert out.ok, out
    a = queries.amendment(world.machine, "A-1")
    assert a is not None and a["add_site_ids"] == ["S-002"] and a["state"] == "pending"
    assert [d["department"] for d in a["decisions"]] == ["chengguan", "shengtai"]
    assert [x["amendment_id"] for x in queries.amendments(world.machine, awaiting="shengtai")] == ["A-1"]
    assert queries.amendments(world.machine, awaiting="zhujian") == []
    assert _decide(world, "zhujian").code == "unknown_department"
    assert _decide(world, "chengguan").ok
    assert _decide(world, "chengguan").code == "already_decided"
    assert world.issue("T-1", site="S-002").code == "wrong_site"
    out = _decide(world, "shengtai")
    assert out.ok and out.events[0]["event"] == "amendment_applied"
    permit = queries.permit(world.machine, "PM-1")
    assert permit is not None and permit["site_ids"] == ["S-001", "S-002"]
    assert world.issue("T-1", site="S-002").ok
    assert queries.amendments(world.machine, awaiting="shengtai") == []
    assert _decide(world, "shengtai").code in ("permit_closed", "already_decided")


def test_trucks_added_and_a_rejection_closes_the_amendment() -> None:
    """Adding a truck concerns 城管 and 交通; a rejection (with its reason) closes the amendment unapplied."""
    world = _world()
    assert _amend(world, add_truck_ids=["TR-2"]).ok
    assert world.issue("T-2", truck="TR-2").code == "wrong_truck"
    assert _decide(world, "jiaotong", "reject").code == "malformed"
    out = _decide(world, "jiaotong", "reject", reason="车辆资质不符")
    assert out.ok and out.events[0]["event"] == "amendment_rejected"
    assert _decide(world, "chengguan").code == "permit_closed"
    assert world.issue("T-2", truck="TR-2").code == "wrong_truck"
    assert _amend(world, "A-2", add_truck_ids=["TR-2"]).ok
    assert _decide(world, "chengguan", aid="A-2").ok and _decide(world, "jiaotong", aid="A-2").ok
    assert world.issue("T-2", truck="TR-2").ok


def test_amendment_refusals() -> None:
    """Another contractor, an unknown permit or site, nothing new, a reused id and a closed permit are refused;
    a department may only decide for itself."""
    world = _world()
    assert _amend(world, actor="contractor:ORG-002", add_site_ids=["S-002"]).code == "forbidden"
    assert world.submit("permit.amend", {"amendment_id": "A-1", "permit_id": "PM-X", "add_site_ids": ["S-2"]},
                        "contractor:ORG-001").code == "unknown_permit"
    assert _amend(world, add_site_ids=["S-404"]).code == "unknown_site"
    assert _amend(world, add_site_ids=["S-001"]).code == "bad_state"
    assert _amend(world).code == "malformed"
    assert _amend(world, add_site_ids=["S-002"]).ok
    assert _amend(world, add_site_ids=["S-003"]).code == "duplicate_id"
    assert world.submit("permit.amend_decide", {"amendment_id": "A-1", "department": "shengtai",
                                                "decision": "approve"}, "approver:chengguan:u1",
                        signer="chengguan").code == "forbidden"
    assert _decide(world, "chengguan", aid="A-9").code == "unknown_amendment"
    world.ok("permit.revoke", {"permit_id": "PM-1", "reason": "撤销"})
    assert _amend(world, "A-3", add_site_ids=["S-003"]).code == "permit_closed"
    assert _decide(world, "chengguan").ok
    assert _decide(world, "shengtai").code == "permit_closed"


def test_amend_departments_parameter() -> None:
    """amend_departments names who decides; with none of the permit's departments named, all decide."""
    world = make_world({"amend_departments": {"sites": ["zhujian"], "trucks": ["nobody"]}})
    world.approved_permit("PM-1", sites=("S-001",), companies=(), trucks=("TR-1",))
    assert _amend(world, add_site_ids=["S-002"]).ok
    a = queries.amendment(world.machine, "A-1")
    assert a is not None and [d["department"] for d in a["decisions"]] == ["zhujian"]
    assert _amend(world, "A-2", add_company_ids=["C-02"]).ok
    b = queries.amendment(world.machine, "A-2")
    assert b is not None and len(b["decisions"]) == len(world.machine.params.departments)
