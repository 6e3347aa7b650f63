"""Site-exit and disposal-site gates: every refusal, discrepancies, load and alarms."""

from __future__ import annotations

from ledger.eticket import queries
from ledger.eticket.testing import PHOTO, World, make_world


def _world() -> World:
    world = make_world()
    world.approved_permit("PM-1")
    world.issue("T-1")
    return world


def test_exit_departs() -> None:
    """A valid exit scan moves the ticket to departed with the gate, time and photo digest."""
    world = _world()
    out = world.depart("T-1")
    assert out.ok
    t = world.machine.state.tables["ticket"]["T-1"]
    assert (t.state, t.exit_gate, t.exit_photo) == ("departed", "G1", PHOTO)


def test_exit_unknown_ticket() -> None:
    """Scanning an unknown ticket is refused with unknown_ticket."""
    assert _world().depart("T-404", plate="渝A12345").code == "unknown_ticket"


def test_exit_wrong_project_gate() -> None:
    """The exit gate of another project cannot let this ticket out (wrong_project); a disposal gate
    actor is forbidden at an exit."""
    world = _world()
    assert world.depart("T-1", actor="gate:exit:P-002").code == "wrong_project"
    assert world.depart("T-1", actor="gate:disposal:S-001").code == "forbidden"


def test_exit_used_tickets() -> None:
    """A departed ticket cannot leave again (already_departed), nor a received one (already_received),
    nor a voided one (voided)."""
    world = _world()
    world.depart("T-1")
    assert world.depart("T-1").code == "already_departed"
    world.advance(1200)
    world.receive("T-1")
    assert world.depart("T-1").code == "already_received"
    world.issue("T-2")
    world.submit("ticket.void", {"ticket_id": "T-2", "reason": "取消"})
    assert world.depart("T-2").code == "voided"


def test_exit_expired() -> None:
    """A ticket past valid_until is refused at the exit (expired), before and after the tick."""
    world = _world()
    world.advance(86400 + 10)
    assert world.depart("T-1").code == "expired"
    world.tick()
    assert world.depart("T-1").code == "expired"


def test_exit_wrong_plate() -> None:
    """A plate read by the camera that is not the ticket truck's is refused (wrong_truck)."""
    assert _world().depart("T-1", plate="渝A23456").code == "wrong_truck"


def test_exit_suspended_truck() -> None:
    """A truck suspended after the ticket was issued cannot leave (truck_suspended)."""
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
    assert world.depart("T-1").code == "truck_suspended"


def test_exit_revoked_permit() -> None:
    """When the permit is revoked after issue, the ticket cannot leave (permit_not_approved)."""
    world = _world()
    world.ok("permit.revoke", {"permit_id": "PM-1", "reason": "整改"})
    assert world.depart("T-1").code == "permit_not_approved"


def test_exit_uncovered_load() -> None:
    """An uncovered load is refused (uncovered_load), the state is unchanged, and the outcome carries a
    ready violation.report for the gate to submit; submitting it records the violation."""
    world = _world()
    before = world.machine.digest()
    out = world.depart("T-1", covered=False)
    assert out.code == "uncovered_load"
    assert world.machine.digest() == before
    assert world.machine.state.tables["ticket"]["T-1"].state == "issued"
    report = dict(out.events[0]["report"])
    assert out.events[0]["event"] == "violation_suggested" and report["type"] == "uncovered_load"
    report["violation_id"] = "FGBY2026112320000000001"
    assert world.submit("violation.report", report, "gate:exit:P-001").ok
    v = queries.violation(world.machine, "FGBY2026112320000000001")
    assert v is not None and v["truck_id"] == "TR-1" and v["ticket_id"] == "T-1" and v["company_id"] == "C-01"
    assert world.depart("T-1").ok


def test_receipt_records_load() -> None:
    """A receipt closes the ticket, moves the volume from pending to the site's load, frees the truck."""
    world = _world()
    world.depart("T-1")
    world.advance(1800)
    out = world.receive("T-1", volume="16.5")
    assert out.ok and [e["event"] for e in out.events] == ["ticket_received"]
    s = world.machine.state.tables["site"]["S-001"]
    assert (s.load_l, s.pending_l, s.receipts) == (16500, 0, 1)
    assert world.machine.state.tables["ticket"]["T-1"].state == "received"
    assert world.machine.state.departed_by_truck == {}


def test_receipt_wrong_site() -> None:
    """The gate of another site (actor) or a payload site_id of another site is refused (wrong_site)."""
    world = _world()
    world.depart("T-1")
    assert world.receive("T-1", actor="gate:disposal:S-002").code == "wrong_site"
    out = world.submit(
        "gate.receipt",
        {"ticket_id": "T-1", "gate_id": "G", "site_id": "S-002", "plate": "渝A12345", "volume_m3": 16},
        "operator:u1",
    )
    assert out.code == "wrong_site"
    assert world.receive("T-1", actor="gate:exit:S-001").code == "forbidden"


def test_receipt_refusals() -> None:
    """Receipts: unknown ticket, not departed, wrong plate, a second receipt, a voided ticket."""
    world = _world()
    assert world.receive("T-404").code == "unknown_ticket"
    assert world.receive("T-1").code == "not_departed"
    world.depart("T-1")
    assert world.receive("T-1", plate="渝A23456").code == "wrong_truck"
    assert world.receive("T-1").ok
    assert world.receive("T-1").code == "already_received"
    world.issue("T-2")
    world.submit("ticket.void", {"ticket_id": "T-2", "reason": "取消"})
    assert world.receive("T-2").code == "voided"


def test_discrepancy_is_a_warning() -> None:
    """A measured volume beyond the tolerance is accepted and recorded as a discrepancy."""
    world = _world()
    world.depart("T-1")
    out = world.receive("T-1", volume="14.3")
    assert out.ok
    assert {
        "event": "discrepancy",
        "ticket_id": "T-1",
        "expected_m3": "16",
        "measured_m3": "14.3",
    } in out.events
    assert world.machine.state.tables["ticket"]["T-1"].discrepancy


def test_within_tolerance_no_discrepancy() -> None:
    """A difference within volume_tolerance_pct (10 %) is no discrepancy."""
    world = _world()
    world.depart("T-1")
    assert world.receive("T-1", volume="14.4").ok
    assert not world.machine.state.tables["ticket"]["T-1"].discrepancy


def test_weight_converts_to_volume() -> None:
    """A receipt with only a weight converts at density_t_per_m3 (1.8 t/m³)."""
    world = _world()
    world.depart("T-1")
    assert world.receive("T-1", volume=None, weight="28.8").ok
    t = world.machine.state.tables["ticket"]["T-1"]
    assert (t.measured_l, t.weight_kg) == (16000, 28800)


def test_overloaded_receipt_raises_violation() -> None:
    """A measured volume above the truck's capacity plus tolerance raises an overloaded violation."""
    world = _world()
    world.depart("T-1")
    out = world.receive("T-1", volume="20")
    assert out.ok
    raised = [e for e in out.events if e["event"] == "violation_raised"]
    assert raised and raised[0]["type"] == "overloaded" and raised[0]["violation_id"].startswith("CZYS")


def test_site_alarm_and_alternatives() -> None:
    """Reaching the alarm threshold raises site_alarm once, with alternatives with room nearest first (policy
    ``warn``: the site keeps taking tickets past its alarm)."""
    world = make_world({"site_alarm_policy": "warn"})
    world.approved_permit("PM-1")
    trucks = ["TR-1", "TR-2"]
    events: list[dict[str, object]] = []
    for i in range(6):  # S-003: 100 m³, alarm at 80 %
        tid = f"T-{i}"
        world.issue(tid, site="S-003", truck=trucks[i % 2])
        world.depart(tid)
        events += [e for e in world.receive(tid, volume="16").events if e["event"] == "site_alarm"]
    assert len(events) == 1
    alarm = events[0]
    assert alarm["site_id"] == "S-003" and alarm["load_rate_pct"] == "80.00"
    alternatives = alarm["alternatives"]
    assert isinstance(alternatives, list)
    assert [a["site_id"] for a in alternatives] == ["S-002", "S-001"]  # nearest to P-001 first
    view = queries.site(world.machine, "S-003")
    assert view is not None and view["alarm"] and view["load_rate_pct"] == "96.00"


def test_gate_actor_kinds() -> None:
    """Only gates and operators record exits and receipts."""
    world = _world()
    out = world.submit(
        "gate.exit",
        {"ticket_id": "T-1", "gate_id": "G", "plate": "渝A12345", "covered": True, "photo_digest": PHOTO},
        "contractor:ORG-001",
    )
    assert out.code == "forbidden"


def test_exit_without_photo_is_recorded() -> None:
    """A site-exit gate without a camera photo still records the departure (photo_digest is optional),
    and an uncovered load without a photo is still refused with uncovered_load."""
    world = make_world()
    world.approved_permit()
    assert world.issue("T-1").code == "valid"
    assert world.issue("T-2", truck="TR-2").code == "valid"
    base = {"gate_id": "P-001-G1", "plate": "渝A12345", "covered": True}
    out = world.submit("gate.exit", {"ticket_id": "T-1", **base}, "gate:exit:P-001")
    assert out.code == "valid"
    t = world.machine.state.tables["ticket"]["T-1"]
    assert t.state == "departed" and t.exit_photo is None
    refused = world.submit("gate.exit", {"ticket_id": "T-2", **base, "plate": "渝A23456", "covered": False},
                           "gate:exit:P-001")
    assert refused.code == "uncovered_load"


def test_second_ticket_of_a_truck_on_the_road_cannot_leave() -> None:
    """Two tickets issued to one truck before either is used: the first leaves; the second is refused
    truck_busy at the exit until the first load is received, then leaves."""
    world = make_world()
    world.approved_permit()
    assert world.issue("T-1").code == "valid"
    assert world.issue("T-2").code == "valid"
    assert world.depart("T-1").code == "valid"
    assert world.depart("T-2").code == "truck_busy"
    assert world.machine.state.tables["ticket"]["T-2"].state == "issued"
    assert world.receive("T-1").code == "valid"
    assert world.depart("T-2").code == "valid"


def _exit_tx(world: World, ticket_id: str = "T-1", covered: bool = True) -> dict[str, object]:
    t = world.machine.state.tables["ticket"][ticket_id]
    plate = world.machine.state.tables["truck"][t.truck_id].plate
    tx = world.tx("gate.exit", {"ticket_id": ticket_id, "gate_id": "G1", "plate": plate, "covered": covered,
                                "photo_digest": PHOTO}, "gate:exit:P-001")
    return tx.to_dict()


def test_preview_gives_the_verdict_apply_would_and_changes_nothing() -> None:
    """``queries.preview`` of a signed exit scan says valid (or the refusal's reason) exactly as applying it
    would, and leaves the state, its digest and the machine's clock untouched."""
    world = _world()
    before, now = world.machine.digest(), world.machine.now
    ok = queries.preview(world.machine, _exit_tx(world))
    assert ok["code"] == "valid" and ok["events"][0]["event"] == "ticket_departed"
    uncovered = queries.preview(world.machine, _exit_tx(world, covered=False))
    assert uncovered["code"] == "uncovered_load"
    assert (world.machine.digest(), world.machine.now) == (before, now)
    assert world.machine.state.tables["ticket"]["T-1"].state == "issued"
    assert world.depart("T-1").ok
    assert queries.preview(world.machine, _exit_tx(world))["code"] == "already_departed"


def test_preview_checks_admission_first() -> None:
    """A preview of a transaction with a broken signature is refused like its submission would be."""
    import pytest

    from ledger.errors import LedgerError

    world = _world()
    d = _exit_tx(world)
    d["payload"] = {**d["payload"], "gate_id": "G2"}  # type: ignore[dict-item]
    with pytest.raises(LedgerError) as err:
        queries.preview(world.machine, d)
    assert err.value.reason == "bad_signature"
