"""Reconciliation per place and day: counts per source, trips, gaps and alarms; the period report's columns."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ledger.eticket import gate_queries as queries
from ledger.eticket.reconcile import (
    COUNTERS,
    EXIT,
    SAME_TRUCK_S,
    SITE,
    PlaceDay,
    ledger_counts,
    local_day,
    reconcile,
    row,
    sightings,
)
from ledger.eticket.report_export import CSV_COLUMNS, csv_text
from ledger.eticket.reports import build_report
from ledger.eticket.state import State
from ledger.eticket.testing import make_world
from ledger.eticket.units import epoch


def test_a_row_takes_the_most_any_source_saw_as_the_trips() -> None:
    """31 trips seen against 8 tickets (and 8 scans) is a gap of 23 and an alarm for both reasons; scans
    within the tickets and no camera is no alarm; a gap within the tolerance alone is none either; a missing
    source counts 0."""
    city = row(SITE, "S-1", "2025-06-07", {"tickets_issued": 8, "receipts": 8, "sightings": 31})
    assert (city.trips, city.gap, city.unscanned, city.alarm) == (31, 23, 23, True)
    assert city.reasons == ("trips_over_tickets", "seen_not_scanned")
    quiet = row(EXIT, "P-1", "2025-06-07", {"tickets_issued": 5, "exit_scans": 5})
    assert (quiet.sightings, quiet.gap, quiet.alarm, quiet.reasons) == (0, 0, False, ())
    late = row(EXIT, "P-1", "2025-06-08", {"tickets_issued": 0, "exit_scans": 2})
    assert (late.gap, late.alarm) == (2, False)
    assert row(EXIT, "P-1", "2025-06-08", {"exit_scans": 3}).reasons == ("trips_over_tickets",)


def test_reconcile_joins_the_sources_per_place_and_day() -> None:
    """Every place-day any source counted gets one row, by day then kind then place; a place only a camera
    saw is a row with 0 tickets and 0 scans."""
    rows = reconcile({
        "tickets_issued": {(EXIT, "P-1", "2025-06-07"): 3},
        "exit_scans": {(EXIT, "P-1", "2025-06-07"): 3},
        "sightings": {(SITE, "S-9", "2025-06-06"): 4},
    })
    assert [(r.kind, r.place_id, r.day) for r in rows] == [(SITE, "S-9", "2025-06-06"), (EXIT, "P-1", "2025-06-07")]
    assert (rows[0].tickets_issued, rows[0].scans, rows[0].alarm) == (0, 0, True)
    assert not rows[1].alarm


def test_the_ledger_counts_tickets_exits_and_receipts_per_local_day() -> None:
    """Two tickets issued, both out, one received: the exit row counts 2 / 2, the site row 2 / 1, the day is
    the local (+08:00) day; the query gives the same rows and, alarms_only, none."""
    world = make_world()
    world.approved_permit("PM-1")
    world.issue("T-1")
    world.issue("T-2", truck="TR-2")
    world.depart("T-1")
    world.depart("T-2")
    world.advance(1800)
    world.receive("T-1")
    since, until = world.clock - 86400, world.clock + 60
    day = local_day(world.clock)
    rows = {(r.kind, r.place_id): r for r in reconcile(ledger_counts(world.machine.state, since, until))}
    assert (rows[(EXIT, "P-001")].tickets_issued, rows[(EXIT, "P-001")].scans) == (2, 2)
    assert (rows[(SITE, "S-001")].tickets_issued, rows[(SITE, "S-001")].scans) == (2, 1)
    assert rows[(EXIT, "P-001")].day == day == "2026-11-23"
    got = queries.reconciliation(world.machine, since=since, until=until)
    assert len(got) == 2 and not any(r["alarm"] for r in got)
    assert queries.reconciliation(world.machine, since=since, until=until, alarms_only=True) == []


def test_the_period_report_carries_the_reconciliation() -> None:
    """The report's JSON has the reconciliation rows and each row the unticketed_trips and
    reconciliation_alarms columns (0 here), also in the CSV header."""
    world = make_world()
    world.approved_permit("PM-1")
    world.issue("T-1")
    world.depart("T-1")
    report = build_report(world.machine, since=epoch("2026-11-01T00:00:00+08:00"),
                          until=epoch("2026-12-01T00:00:00+08:00"), by="project")
    data = report.to_json()
    assert [(r["kind"], r["place_id"], r["scans"]) for r in data["reconciliation"]] == [
        (EXIT, "P-001", 1), (SITE, "S-001", 0)]
    assert all(r["unticketed_trips"] == 0 and r["reconciliation_alarms"] == 0 for r in data["rows"])
    assert "unticketed_trips" in CSV_COLUMNS and "reconciliation_alarms" in csv_text(report).splitlines()[0]


def test_a_registered_sightings_source_makes_a_gap_row_of_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """A camera source registered in COUNTERS (the seam) counts 31 trucks at the project's exit against one
    ticket: the project's report row has 30 unticketed trips and one reconciliation alarm, the totals too,
    and a site report is not affected (an exit's gap counts for projects and districts)."""
    world = make_world()
    world.approved_permit("PM-1")
    world.issue("T-1")
    world.depart("T-1")
    day = local_day(world.clock)

    def camera_counts(_state: State, _since: int, _until: int) -> dict[PlaceDay, int]:
        return {(EXIT, "P-001", day): 31}

    monkeypatch.setitem(COUNTERS, "sightings", camera_counts)
    period = {"since": epoch("2026-11-01T00:00:00+08:00"), "until": epoch("2026-12-01T00:00:00+08:00")}
    report = build_report(world.machine, by="project", **period)
    p1 = next(r for r in report.rows if r.group == "P-001")
    assert (p1.unticketed_trips, p1.reconciliation_alarms) == (30, 1)
    assert (report.totals.unticketed_trips, report.totals.reconciliation_alarms) == (30, 1)
    assert build_report(world.machine, by="district", **period).totals.unticketed_trips == 30
    assert build_report(world.machine, by="site", **period).totals.unticketed_trips == 0


def test_sightings_count_trucks_at_exit_and_disposal_cameras_once_per_visit() -> None:
    """Sightings (the camera rules' tables, shaped as records with camera_id, plate, time) count at the exit
    or the site their camera is placed at, a plate seen twice within SAME_TRUCK_S once, a road camera not at
    all; a state without those tables counts nothing."""
    world = make_world()
    state = world.machine.state
    assert sightings(state, 0, 2**40) == {}
    t0 = world.clock
    state.tables["camera"] = {
        "CAM-E": SimpleNamespace(placement="exit", project_id="P-001", site_id=None),
        "CAM-S": SimpleNamespace(placement="disposal", project_id=None, site_id="S-001"),
        "CAM-R": SimpleNamespace(placement="road", project_id=None, site_id=None),
    }
    seen = [("CAM-E", "渝A12345", 0), ("CAM-E", "渝A12345", 60), ("CAM-E", "渝A12345", SAME_TRUCK_S + 60),
            ("CAM-E", "渝Z99999", 10), ("CAM-S", "渝A12345", 1800), ("CAM-R", "渝A12345", 900)]
    state.tables["sighting"] = {f"SG{i}": SimpleNamespace(sighting_id=f"SG{i}", camera_id=c, plate=p, time=t0 + dt)
                                for i, (c, p, dt) in enumerate(seen)}
    day = local_day(t0)
    assert sightings(state, t0, t0 + 86400) == {(EXIT, "P-001", day): 3, (SITE, "S-001", day): 1}
    assert COUNTERS["sightings"] is sightings
