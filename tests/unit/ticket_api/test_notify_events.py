"""Event → recipient mapping (pure, with a dict-backed ledger lookup) and the messages' texts."""

from __future__ import annotations

from typing import Any

from ticket_api.notify import messages
from ticket_api.notify.events import Event, audiences_for, events_of_block

PROJECT = {"project_id": "P-1", "contractor_org_id": "ORG-1", "name": "工地"}
TICKET = {"ticket_id": "ET1", "project": {"project_id": "P-1", "contractor_org_id": "ORG-1"},
          "site": {"site_id": "S-1"}, "truck": {"plate": "渝A12345"}}
VIOLATION = {"violation_id": "WZ1", "type": "off_route", "plate": "渝A12345", "ticket_id": "ET1",
             "project_id": "P-1", "site_id": None, "reported_at": "2026-12-02T21:00:00+08:00"}


def lookup_with(**records: Any) -> Any:
    def lookup(name: str, **kw: Any) -> Any:
        if name == "permit":
            return records.get("permit")
        if name == "project":
            return PROJECT if kw.get("project_id") == "P-1" else None
        if name == "ticket":
            return TICKET if kw.get("ticket_id") == "ET1" else None
        if name == "violation":
            return VIOLATION if kw.get("violation_id") == "WZ1" else None
        if name == "violations":
            return records.get("violations", [])
        if name == "site":
            return records.get("site")
        if name == "sighting":
            return records.get("sighting")
        if name == "truck_by_plate":
            return records.get("trucks", {}).get(kw.get("plate"))
        raise AssertionError(name)

    return lookup


def block(*entries: dict[str, Any], height: int = 7) -> dict[str, Any]:
    return {"header": {"height": height, "timestamp": "2026-12-02T13:00:00.000Z"}, "transactions": list(entries)}


def tx(type: str, payload: dict[str, Any], code: str = "valid", tx_id: str = "t1") -> dict[str, Any]:
    return {"tx_id": tx_id, "code": code, "tx": {"type": type, "payload": payload}}


def permit(decisions: list[str]) -> dict[str, Any]:
    return {"permit_id": "PM1", "project_id": "P-1", "contractor_org_id": "ORG-1",
            "decisions": [{"department": f"d{i}", "decision": d} for i, d in enumerate(decisions)]}


def test_permit_approved_only_once_every_department_approved() -> None:
    """A decision that completes the approvals is one permit_approved event for the contractor; an earlier
    approval (others pending) is none; the event id names the permit, so a second sighting is the same."""
    dec = tx("permit.decide", {"permit_id": "PM1", "decision": "approve", "department": "d1"})
    assert events_of_block(block(dec), lookup_with(permit=permit(["approve", "pending"]))) == []
    [e] = events_of_block(block(dec, dec), lookup_with(permit=permit(["approve", "approve"])))
    assert (e.event_id, e.kind, e.audiences) == ("permit_approved:PM1", "permit_approved", ("tenant:contractor:ORG-1",))
    assert e.time == "2026-12-02T21:00:00+08:00" and e.height == 7


def test_rejection_carries_department_and_reason() -> None:
    """A rejection is told at once, with who rejected and why."""
    dec = tx("permit.decide", {"permit_id": "PM1", "decision": "reject", "department": "d0", "reason": "材料不全"})
    [e] = events_of_block(block(dec), lookup_with(permit=permit(["reject", "pending"])))
    assert e.kind == "permit_rejected" and e.facts["reason_text"] == "材料不全"
    assert "材料不全" in messages.body(e, "zh") and "rejected" in messages.body(e, "en")


def test_refused_gate_scan_is_a_held_truck_for_contractor_and_operators() -> None:
    """A gate scan the ledger refused: the truck was held, why (the reason code), told to the ticket's
    project's contractor and to every operator; one event per transaction."""
    scan = tx("gate.exit", {"ticket_id": "ET1", "plate": "渝A12345", "gate_id": "G1"}, code="uncovered_load")
    [e] = events_of_block(block(scan), lookup_with())
    assert e.kind == "gate_held" and e.event_id == "gate_held:t1" and e.facts["reason"] == "uncovered_load"
    assert e.audiences == ("tenant:contractor:ORG-1", "role:operator")
    assert "未密闭" in messages.body(e, "zh") and "covered" in messages.body(e, "en")


def test_violation_reaches_the_trucks_project_contractor_and_enforcement() -> None:
    """A rule-raised violation found on the ticket a valid transaction names goes to its project's
    contractor, enforcement and operators; a refused transaction raises nothing."""
    pos = tx("trip.positions", {"ticket_id": "ET1", "points": []})
    [e] = events_of_block(block(pos), lookup_with(violations=[VIOLATION]))
    assert (e.event_id, e.kind) == ("violation:WZ1", "violation_raised")
    assert e.audiences == ("tenant:contractor:ORG-1", "role:enforcement", "role:operator")
    assert events_of_block(block(tx("trip.positions", {"ticket_id": "ET1"}, code="unknown_ticket")),
                           lookup_with(violations=[VIOLATION])) == []


def test_penalty_goes_to_staff_and_the_violations_contractor() -> None:
    """A penalty is told to enforcement, operators and regulators, and to the contractor of the project
    its violations concern."""
    pen = tx("penalty.record", {"penalty_id": "PN1", "target_kind": "company", "target_id": "C-1",
                                "violation_ids": ["WZ1"], "amount_yuan": "2000"})
    [e] = events_of_block(block(pen), lookup_with())
    assert e.audiences == ("tenant:contractor:ORG-1", "role:enforcement", "role:operator", "role:regulator",
                           "tenant:company:C-1")
    assert messages.title(e, "en") == "Penalty recorded"


def test_site_alarm_once_a_day_for_operators_and_the_site() -> None:
    """A receipt that leaves its site in alarm tells operators, regulators and the site's gate, once per
    site and day (the event id has the date)."""
    rc = tx("gate.receipt", {"ticket_id": "ET1", "site_id": "S-1"})
    site = {"site_id": "S-1", "name": "消纳场", "alarm": True, "load_rate_pct": "95.0"}
    [e] = events_of_block(block(rc), lookup_with(site=site))
    assert e.event_id == "site_alarm:S-1:2026-12-02"
    assert audiences_for("site_alarm", e.facts) == ("role:operator", "role:regulator", "tenant:disposal_gate:S-1")
    assert events_of_block(block(rc), lookup_with(site={**site, "alarm": False})) == []


def test_wechat_data_fits_the_keyword_limits() -> None:
    """thing values at most 20 characters, character_string ASCII at most 32, time like 2026年12月02日 21:00."""
    e = Event("gate_held:t", "gate_held", 1, "2026-12-02T21:00:00+08:00",
              {"ticket_id": "ET" + "9" * 40, "plate": "渝A12345", "reason": "uncovered_load"})
    data = messages.wechat_data(e, "zh")
    assert len(data["thing4"]["value"]) <= 20 and len(data["character_string2"]["value"]) <= 32
    assert data["time3"]["value"] == "2026年12月02日 21:00"
    assert Event.from_dict(e.to_dict()) == e


def test_the_trucks_company_and_driver_are_told_of_its_violations_holds_and_penalties() -> None:
    """A violation on a registered truck and a gate hold of it reach its transport company and its driver
    (``tenant:company:<id>``, ``tenant:driver:<truck id>``); a penalty on the company reaches the company."""
    trucks = {"渝A12345": {"truck_id": "TR-1", "plate": "渝A12345", "company_id": "C-01"}}
    lookup = lookup_with(trucks=trucks)
    [v] = events_of_block(block(tx("violation.report", {"violation_id": "WZ1"})), lookup)
    assert {"tenant:company:C-01", "tenant:driver:TR-1", "tenant:contractor:ORG-1"} <= set(v.audiences)
    [held] = events_of_block(block(tx("gate.exit", {"ticket_id": "ET1", "plate": "渝A12345"}, code="suspended")),
                             lookup)
    assert {"tenant:company:C-01", "tenant:driver:TR-1"} <= set(held.audiences)
    [pen] = events_of_block(block(tx("penalty.record", {"penalty_id": "PN1", "target_kind": "company",
                                                        "target_id": "C-02", "amount_yuan": 500})), lookup)
    assert "tenant:company:C-02" in pen.audiences and not any(a.startswith("tenant:driver") for a in pen.audiences)


def test_camera_sighting_tells_of_the_events_it_raised() -> None:
    """A valid camera.sighting reveals the violations the sighting raised at once (one event each, with the
    plate's company), and nothing for a sighting that raised none."""
    black = {**VIOLATION, "violation_id": "LZZTC1", "type": "unapproved_disposal", "ticket_id": None,
             "plate": "渝D88888"}
    seen = tx("camera.sighting", {"sighting_id": "SG1"})
    [e] = events_of_block(block(seen), lookup_with(sighting={"sighting_id": "SG1", "violations": [black]}))
    assert (e.event_id, e.kind, e.facts["plate"]) == ("violation:LZZTC1", "violation_raised", "渝D88888")
    assert events_of_block(block(seen), lookup_with(sighting={"sighting_id": "SG1", "violations": []})) == []
