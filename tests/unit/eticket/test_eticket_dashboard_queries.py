"""The governance screen's read side: trucks on the road, live counters, projects, alternatives to a full site."""

from __future__ import annotations

from ledger.eticket import queries
from ledger.eticket.testing import PHOTO, World, make_world
from ledger.eticket.units import epoch


def _report(world: World, vid: str, plate: str = "渝A12345") -> None:
    payload = {"violation_id": vid, "type": "unapproved_disposal", "source": "camera",
               "location": {"lat": "29.600000", "lon": "106.300000"}, "evidence": [PHOTO], "plate": plate}
    assert world.submit("violation.report", payload, "camera:CAM-7").ok


def test_on_the_road_lists_departed_tickets_with_last_position() -> None:
    """Only departed tickets are on the road, oldest departure first, with plate, site and last GPS point."""
    world = make_world()
    world.approved_permit()
    world.issue("T-1", truck="TR-1", site="S-001")
    world.issue("T-2", truck="TR-2", site="S-002")
    world.issue("T-3", truck="TR-3", site="S-002")  # issued, never departs
    assert queries.on_the_road(world.machine) == []
    world.depart("T-1")
    world.advance(60)
    world.depart("T-2")
    world.advance(60)
    assert world.positions("T-1", [("29.700000", "106.520000", "35"), ("29.690000", "106.510000", "38")]).ok
    road = queries.on_the_road(world.machine)
    assert [r["ticket_id"] for r in road] == ["T-1", "T-2"]
    first, second = road
    assert (first["plate"], first["site_id"], first["project_id"]) == ("渝A12345", "S-001", "P-001")
    assert first["last_position"] == {"lat": "29.690000", "lon": "106.510000"}
    assert first["last_position_at"] == "2026-11-23T20:02:00+08:00"
    assert first["departed_at"] == "2026-11-23T20:00:00+08:00" and first["due_at"] > first["departed_at"]
    assert first["overdue"] is False and first["volume_m3"] == "16"
    assert second["plate"] == "渝A23456" and second["last_position"] is None and second["last_position_at"] is None
    assert [r["ticket_id"] for r in queries.on_the_road(world.machine, limit=1)] == ["T-1"]

    world.advance(600)
    assert world.receive("T-1").ok
    assert [r["ticket_id"] for r in queries.on_the_road(world.machine)] == ["T-2"]


def test_on_the_road_marks_overdue_trips() -> None:
    """A trip past its expected arrival (by the last block time) is flagged overdue while still departed."""
    world = make_world()
    world.approved_permit()
    world.issue("T-1", expected_minutes=30)
    world.depart("T-1")
    world.advance(31 * 60)
    assert world.positions("T-1", [("29.700000", "106.520000", "35")]).ok
    (trip,) = queries.on_the_road(world.machine)
    assert trip["overdue"] is True and trip["due_at"] == "2026-11-23T20:30:00+08:00"


def test_live_counts() -> None:
    """Tickets since a time, trucks on the road, open violations by state, sites in alarm."""
    world = make_world()
    world.approved_permit()
    world.issue("T-1")
    world.advance(3600)
    world.issue("T-2", truck="TR-2")
    world.depart("T-2")
    _report(world, "LZZTC2026112321000000001")
    _report(world, "LZZTC2026112321000000002")
    _report(world, "LZZTC2026112321000000003")
    assert world.submit("violation.confirm", {"violation_id": "LZZTC2026112321000000002"}, "operator:u1").ok
    assert world.submit("violation.dismiss", {"violation_id": "LZZTC2026112321000000003", "note": "误报"},
                        "operator:u1").ok
    since = epoch("2026-11-23T20:30:00+08:00")
    counts = queries.live_counts(world.machine, since)
    assert counts["tickets_since"] == 1
    assert counts["on_the_road"] == 1
    assert counts["open_violations"] == 2
    assert counts["open_violations_by_state"] == {"reported": 1, "confirmed": 1, "dispatched": 0}
    assert counts["sites_in_alarm"] == 0
    assert counts["since"] == "2026-11-23T20:30:00+08:00"
    assert counts["as_of"] is not None and counts["as_of"].endswith("+08:00")
    assert queries.live_counts(world.machine, since - 3600)["tickets_since"] == 2


def test_alternatives_to_a_site_in_alarm_and_projects() -> None:
    """A site pushed past its threshold is in alarm; alternatives are other sites with room, nearest first."""
    world = make_world()
    assert world.ok("registry.site", {"site_id": "S-009", "name": "小回填点", "kind": "backfill",
                                      "capacity_m3": "100", "alarm_threshold_pct": 85, "initial_load_m3": "90",
                                      "location": {"lat": "29.690000", "lon": "106.440000"}}).ok
    site = queries.site(world.machine, "S-009")
    assert site is not None and site["alarm"] is True and site["load_rate_pct"] == "90.00"
    assert queries.live_counts(world.machine, 0)["sites_in_alarm"] == 1
    alternatives = queries.site_alternatives(world.machine, "S-009")
    # S-003 (100 m3 backfill, 80% alarm) is nearest but 20 m3 stays under its alarm; S-001 next, then S-002
    assert [s["site_id"] for s in alternatives] == ["S-003", "S-001", "S-002"]
    assert [s["site_id"] for s in queries.site_alternatives(world.machine, "S-009", "90")] == ["S-001", "S-002"]
    assert [s["site_id"] for s in queries.site_alternatives(world.machine, "S-009", limit=1)] == ["S-003"]
    assert [s["site_id"] for s in queries.site_alternatives(world.machine, "S-009", kinds=["landfill"])] == ["S-002"]
    assert queries.site_alternatives(world.machine, "S-404") == []
    assert [(p["project_id"], p["town"]) for p in queries.projects(world.machine)] == [
        ("P-001", "悦来街道"), ("P-002", "礼嘉街道")]
    assert queries.projects(world.machine)[0]["location"] == {"lat": "29.712030", "lon": "106.530310"}
