"""Violations (事件) and penalties (处罚): numbering, handling steps, credit scores, suspensions."""

from __future__ import annotations

import re
from typing import Any

from ledger.eticket import queries
from ledger.eticket.testing import PHOTO, World, make_world

VID = "LZZTC2026112320000000001"


def _report(world: World, vid: str = VID, **kw: Any) -> str:
    payload = {
        "violation_id": vid,
        "type": "unapproved_disposal",
        "source": "camera",
        "location": {"lat": "29.600000", "lon": "106.300000"},
        "evidence": [PHOTO],
        "plate": "渝A12345",
        "time": "2026-11-23T19:59:00+08:00",
        **kw,
    }
    out = world.submit("violation.report", payload, "camera:CAM-7")
    assert out.ok, out
    return vid


def test_report_resolves_plate_to_truck() -> None:
    """A camera report with a registered plate is linked to the truck and its company, state reported."""
    world = make_world()
    _report(world)
    v = queries.violation(world.machine, VID)
    assert v is not None
    assert (v["state"], v["truck_id"], v["company_id"], v["reported_at"]) == (
        "reported",
        "TR-1",
        "C-01",
        "2026-11-23T19:59:00+08:00",
    )
    assert v["location"] == {"lat": "29.600000", "lon": "106.300000"}


def test_report_refusals() -> None:
    """Reused ids, unknown tickets, trucks, projects and sites are refused."""
    world = make_world()
    _report(world)
    base = {"violation_id": VID, "type": "other", "source": "patrol"}
    assert world.submit("violation.report", base, "operator:u1").code == "duplicate_id"
    base["violation_id"] = "QTSJ2026112320000000002"
    for field, code in (
        ("ticket_id", "unknown_ticket"),
        ("truck_id", "unknown_truck"),
        ("project_id", "unknown_project"),
        ("site_id", "unknown_site"),
    ):
        assert world.submit("violation.report", {**base, field: "X-404"}, "operator:u1").code == code
    assert world.submit("violation.report", base, "contractor:ORG-001").code == "forbidden"


def test_rule_violation_numbering() -> None:
    """Rule-raised violations are numbered type prefix + local YYYYMMDDHHMMSS + 5-digit serial."""
    world = make_world()
    world.approved_permit()
    world.issue("T-1")
    world.depart("T-1")
    out = world.positions("T-1", [("29.70", "106.56", "75")])
    ids = [e["violation_id"] for e in out.events]
    assert ids == ["CSXS2026112320000000001", "PLXS2026112320000000002"]
    assert all(re.fullmatch(r"[A-Z]{4,5}\d{14}\d{5}", i) for i in ids)


def test_handling_lifecycle_and_times() -> None:
    """reported → confirmed → dispatched → resolved, each step timed; handling time = resolved − reported."""
    world = make_world()
    _report(world)
    world.advance(600)
    assert world.submit("violation.confirm", {"violation_id": VID, "note": "非误报"}, "operator:u1").ok
    world.advance(60)
    assert world.submit("violation.dispatch", {"violation_id": VID, "centre": "巴福镇基层治理中心"}, "operator:u1").ok
    world.advance(1800)
    assert world.submit("violation.resolve", {"violation_id": VID, "result": "已处置"}, "centre:巴福镇:u9").ok
    v = queries.violation(world.machine, VID)
    assert v is not None and v["state"] == "resolved" and v["centre"] == "巴福镇基层治理中心"
    assert v["handling_seconds"] == 60 + 600 + 60 + 1800
    assert queries.statistics(world.machine)["median_violation_handling_seconds"] == 2520.0


def test_dismiss() -> None:
    """A false capture is dismissed with a note and lowers no credit score."""
    world = make_world()
    _report(world)
    assert world.submit("violation.dismiss", {"violation_id": VID, "note": "误报"}, "operator:u1").ok
    assert queries.violation(world.machine, VID)["state"] == "dismissed"  # type: ignore[index]
    assert queries.credit(world.machine, "truck", "TR-1") == 100


def test_steps_out_of_order_refused() -> None:
    """Dispatching before confirming, resolving before dispatching, confirming twice → bad_state;
    an unknown id → unknown_violation."""
    world = make_world()
    _report(world)
    assert world.submit("violation.dispatch", {"violation_id": VID, "centre": "c"}, "operator:u1").code == "bad_state"
    assert world.submit("violation.resolve", {"violation_id": VID, "result": "r"}, "operator:u1").code == "bad_state"
    world.ok("violation.confirm", {"violation_id": VID})
    assert world.submit("violation.confirm", {"violation_id": VID}).code == "bad_state"
    assert world.submit("violation.dismiss", {"violation_id": VID, "note": "n"}).code == "bad_state"
    other = "QTSJ2026112320000000009"
    assert world.submit("violation.confirm", {"violation_id": other}).code == "unknown_violation"
    assert world.submit("violation.confirm", {"violation_id": VID}, "contractor:ORG-001").code == "forbidden"


def test_confirmation_lowers_credit() -> None:
    """Confirming lowers the credit of the truck, its company and the driver by the type's deduction."""
    world = make_world()
    world.approved_permit()
    world.issue("T-1", driver_id="D-1")
    _report(world, ticket_id="T-1")
    world.ok("violation.confirm", {"violation_id": VID})
    m = world.machine
    assert (
        queries.credit(m, "truck", "TR-1"),
        queries.credit(m, "company", "C-01"),
        queries.credit(m, "driver", "D-1"),
    ) == (90, 90, 90)
    assert queries.credit_scores(m, "truck")[0] == {"kind": "truck", "id": "TR-1", "credit": 90}


def test_credit_floor_and_custom_deductions() -> None:
    """Credit deductions come from the parameters and never go below zero."""
    world = make_world({"credit_deductions": {"unapproved_disposal": 60}})
    for i in range(2):
        vid = f"LZZTC202611232000000000{i}"
        _report(world, vid)
        world.ok("violation.confirm", {"violation_id": vid})
    assert queries.credit(world.machine, "truck", "TR-1") == 0


def test_penalty_links_violations_and_suspends() -> None:
    """A penalty links confirmed violations, records the amount in fen and suspends the target for N days."""
    world = make_world()
    _report(world)
    world.ok("violation.confirm", {"violation_id": VID})
    out = world.submit(
        "penalty.record",
        {
            "penalty_id": "PN-1",
            "target_kind": "truck",
            "target_id": "TR-1",
            "violation_ids": [VID],
            "amount_yuan": "2000.5",
            "credit_points": 5,
            "measures": [{"kind": "suspend", "days": 7}, {"kind": "warning"}],
            "decision_no": "渝北城管罚字〔2026〕42号",
        },
        "enforcement:u2",
    )
    assert out.ok
    pen = queries.penalties(world.machine, target_id="TR-1")
    assert pen[0]["amount_yuan"] == "2000.50" and pen[0]["suspended_until"] == "2026-11-30T20:00:00+08:00"
    assert queries.violation(world.machine, VID)["penalty_ids"] == ["PN-1"]  # type: ignore[index]
    view = queries.truck(world.machine, "TR-1")
    assert view is not None and view["suspended"] and view["credit"] == 100 - 10 - 5


def test_penalty_refusals() -> None:
    """Penalties on unknown targets, unknown or unconfirmed violations, reused ids, by non-enforcement."""
    world = make_world()
    _report(world)
    base: dict[str, Any] = {
        "penalty_id": "PN-1",
        "target_kind": "truck",
        "target_id": "TR-1",
        "amount_yuan": 1,
    }
    for kind, code in (
        ("truck", "unknown_truck"),
        ("company", "unknown_company"),
        ("driver", "unknown_driver"),
        ("contractor", "unknown_org"),
    ):
        out = world.submit("penalty.record", {**base, "target_kind": kind, "target_id": "X"}, "enforcement:u2")
        assert out.code == code
    out = world.submit(
        "penalty.record", {**base, "target_kind": "contractor", "target_id": "ORG-T01"}, "enforcement:u2"
    )
    assert out.code == "unknown_org"
    assert world.submit("penalty.record", {**base, "violation_ids": [VID]}, "enforcement:u2").code == "bad_state"
    assert (
        world.submit("penalty.record", {**base, "violation_ids": ["QTSJ2026112320000000009"]}, "enforcement:u2").code
        == "unknown_violation"
    )
    assert world.submit("penalty.record", base, "operator:u1").code == "forbidden"
    assert world.submit("penalty.record", base, "enforcement:u2").ok
    assert world.submit("penalty.record", base, "enforcement:u2").code == "duplicate_id"


def test_violation_filters() -> None:
    """The violations list filters by type, state, truck, town and time, newest first."""
    world = make_world()
    _report(world)
    world.advance(60)
    _report(world, "FGBY2026112320010000002", type="uncovered_load", time=None, project_id="P-001")
    m = world.machine
    assert [v["violation_id"] for v in queries.violations(m)] == ["FGBY2026112320010000002", VID]
    assert [v["violation_id"] for v in queries.violations(m, type="uncovered_load")] == ["FGBY2026112320010000002"]
    assert [v["town"] for v in queries.violations(m, town="悦来街道")] == ["悦来街道"]
    assert queries.violations(m, state="confirmed") == []
    assert len(queries.violations(m, truck_id="TR-1", since=world.clock)) == 1
