"""Period reports (统计报表): figures per district, project, company and site; CSV, JSON, PNG and the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest

from ledger.cli import report as rr
from ledger.core.block import sign_header
from ledger.core.builder import build_block
from ledger.core.tree import CompactRange
from ledger.eticket import EticketMachine
from ledger.eticket.report_export import CSV_COLUMNS, csv_bytes, csv_text, json_text
from ledger.eticket.reports import Report, ReportError, ReportRow, build_report
from ledger.eticket.testing import PROJECT_LOC, World, make_world
from ledger.eticket.units import epoch
from ledger.store.keyfiles import write_consortium
from ledger.store.ledger_store import LedgerStore
from ledger.testing import iso as iso_dt

SINCE = epoch("2026-11-23T21:00:00+08:00")
UNTIL = epoch("2026-11-24T00:00:00+08:00")
HOUR = 3600


def _at(world: World, text: str) -> None:
    """Set the world's clock to a local time of the test night."""
    world.clock = epoch(text)


def _trip(world: World, ticket: str, *, issue: str, depart: str, receive: str | None, volume: str = "16",
          measured: str | None = None, **kw: Any) -> None:
    """Issue, depart and (unless ``receive`` is None) receive one ticket at the given times."""
    _at(world, issue)
    project = kw.get("permit", "PM-1").replace("PM-1", "P-001").replace("PM-2", "P-002")
    actor = "contractor:ORG-001" if project == "P-001" else "contractor:ORG-002"
    out = world.issue(ticket, volume=volume, actor=actor, **kw)
    assert out.ok, out
    _at(world, depart)
    assert world.depart(ticket, actor=f"gate:exit:{project}").ok
    if receive is not None:
        _at(world, receive)
        assert world.receive(ticket, volume=measured or volume).ok


def _violation_steps(world: World, vid: str, *, start: str, minutes: int, dismiss: bool = False) -> None:
    """Confirm, dispatch and resolve (or dismiss) a violation; resolution ``minutes`` after ``start``."""
    _at(world, start)
    if dismiss:
        world.advance(minutes * 60)
        assert world.submit("violation.dismiss", {"violation_id": vid, "note": "误报"}).ok
        return
    assert world.submit("violation.confirm", {"violation_id": vid, "note": "非误报"}).ok
    assert world.submit("violation.dispatch", {"violation_id": vid, "centre": "悦来街道基层治理中心"}).ok
    world.advance(minutes * 60)
    assert world.submit("violation.resolve", {"violation_id": vid, "result": "已处置"}, "centre:悦来:u1").ok


def _history() -> World:
    """A night of muck transport around the report period [21:00, 24:00).

    * T-0 (before the period) and T-1 … T-5 in it; T-6 is issued exactly at the period's end.
    * T-2 measures 24 m³ on a 20 m³ ticket and truck: a discrepancy and a rule-raised ``overloaded``.
    * P-002 has no district, so its figures are unattributed by district.
    """
    world = make_world()
    world.ok("registry.project", {"project_id": "P-001", "name": "悦来安置房", "contractor_org_id": "ORG-001",
                                  "location": PROJECT_LOC, "district": "渝北区", "town": "悦来街道",
                                  "planned_volume_m3": "120000", "update": True})
    world.approved_permit("PM-1", companies=("C-01", "C-02"))
    world.approved_permit("PM-2", project="P-002", actor="contractor:ORG-002", companies=("C-01", "C-02"))
    _trip(world, "T-0", issue="2026-11-23T20:30:00+08:00", depart="2026-11-23T20:35:00+08:00",
          receive="2026-11-23T20:59:59+08:00")
    _trip(world, "T-1", issue="2026-11-23T21:00:00+08:00", depart="2026-11-23T21:05:00+08:00",
          receive="2026-11-23T21:40:00+08:00")
    _trip(world, "T-2", truck="TR-3", site="S-002", volume="20", measured="24",
          issue="2026-11-23T21:10:00+08:00", depart="2026-11-23T21:15:00+08:00",
          receive="2026-11-23T22:00:00+08:00")
    _trip(world, "T-3", permit="PM-2", truck="TR-2", site="S-003", volume="10",
          issue="2026-11-23T21:20:00+08:00", depart="2026-11-23T21:25:00+08:00",
          receive="2026-11-23T21:50:00+08:00")
    _trip(world, "T-4", site="S-002", volume="12",
          issue="2026-11-23T22:30:00+08:00", depart="2026-11-23T22:35:00+08:00",
          receive="2026-11-23T23:59:59+08:00")
    _trip(world, "T-5", truck="TR-2", volume="15",
          issue="2026-11-23T23:30:00+08:00", depart="2026-11-23T23:40:00+08:00",
          receive="2026-11-24T00:10:00+08:00")
    _at(world, "2026-11-24T00:00:00+08:00")
    assert world.issue("T-6", truck="TR-3", volume="18").ok
    # violations: an uncovered load on T-1 (camera), handled in 30 min; the overloaded T-2, handled in
    # 90 min and fined; a speeding report on P-002's truck, dismissed; one before the period.
    for vid, vtype, when, extra in (
        ("FGBY2026112321060000001", "uncovered_load", "2026-11-23T21:06:00+08:00", {"ticket_id": "T-1"}),
        ("CSXS2026112322300000002", "speeding", "2026-11-23T22:30:00+08:00", {"ticket_id": "T-3"}),
        ("QTSJ2026112320000000003", "other", "2026-11-23T20:00:00+08:00", {"plate": "渝A12345"}),
    ):
        _at(world, when)
        assert world.submit("violation.report", {"violation_id": vid, "type": vtype, "source": "camera",
                                                 "time": when, **extra}, "camera:CAM-1").ok
    overloaded = next(v for v in world.machine.state.tables["violation"].values() if v.type == "overloaded")
    _violation_steps(world, "FGBY2026112321060000001", start="2026-11-23T21:06:00+08:00", minutes=30)
    _violation_steps(world, overloaded.violation_id, start="2026-11-23T22:00:00+08:00", minutes=90)
    _violation_steps(world, "CSXS2026112322300000002", start="2026-11-23T22:30:00+08:00", minutes=10,
                     dismiss=True)
    _at(world, "2026-11-23T23:45:00+08:00")
    assert world.submit("penalty.record", {"penalty_id": "PN-1", "target_kind": "truck", "target_id": "TR-3",
                                           "violation_ids": [overloaded.violation_id], "amount_yuan": "2000.50"},
                        "enforcement:u9").ok
    _at(world, "2026-11-23T23:50:00+08:00")
    assert world.submit("penalty.record", {"penalty_id": "PN-2", "target_kind": "company", "target_id": "C-01",
                                           "violation_ids": [], "amount_yuan": "500"}, "enforcement:u9").ok
    return world


@pytest.fixture(scope="module")
def world() -> World:
    """The night of :func:`_history`, built once for the module."""
    return _history()


def _rows(report: Report) -> dict[str | None, ReportRow]:
    return {r.group: r for r in report.rows}


def test_site_report_exact_figures(world: World) -> None:
    """By site: counts, volumes, utilisation, discrepancies, violations, handling medians and penalties
    of events inside [since, until); the load rate as of the period's end excludes later receipts."""
    report = build_report(world.machine, since=SINCE, until=UNTIL, by="site")
    rows = _rows(report)
    assert list(rows) == ["S-001", "S-002", "S-003", None]
    s1, s2, s3 = rows["S-001"], rows["S-002"], rows["S-003"]
    # S-001 (recycling): T-1 and T-5 issued in the period; only T-1 received in it (T-0 before, T-5 after).
    assert (s1.tickets_issued, s1.volume_issued_m3, s1.receipts, s1.received_m3) == (2, "31", 1, "16")
    assert (s1.reused_m3, s1.utilisation_rate_pct, s1.discrepancies) == ("16", "100.00", 0)
    assert (s1.violations, dict(s1.violations_by_type)["uncovered_load"], s1.median_handling_seconds) == (
        1, 1, 1800.0)
    # load at the end: T-0 and T-1 (16 + 16 m³) of 100000 m³; T-5 (after the end) does not count.
    assert (s1.site_kind, s1.capacity_m3, s1.load_m3, s1.load_rate_pct, s1.alarm_threshold_pct) == (
        "recycling", "100000", "32", "0.03", 85)
    # S-002 (landfill): T-2 measured 24 on 20 (discrepancy, overloaded) and T-4 at 23:59:59.
    assert (s2.tickets_issued, s2.volume_issued_m3, s2.receipts, s2.received_m3, s2.reused_m3) == (
        2, "32", 2, "36", "0")
    assert (s2.utilisation_rate_pct, s2.discrepancies, s2.violations, s2.violations_resolved) == ("0.00", 1, 1, 1)
    assert (s2.median_handling_seconds, s2.penalties, s2.penalty_amount_yuan) == (5400.0, 1, "2000.50")
    # S-003 (backfill, 100 m³): T-3's 10 m³ is 10 %; the dismissed speeding report counts, unhandled.
    assert (s3.receipts, s3.received_m3, s3.utilisation_rate_pct, s3.load_rate_pct) == (1, "10", "100.00", "10.00")
    assert (s3.violations, s3.violations_dismissed, s3.median_handling_seconds) == (1, 1, None)
    # PN-2 (a company, no violations) belongs to no site.
    none = rows.get(None)
    assert none is not None and (none.penalties, none.penalty_amount_yuan, none.tickets_issued) == (1, "500.00", 0)


def test_totals_are_over_all_events(world: World) -> None:
    """The totals row sums counts and volumes; utilisation and the median are over every event."""
    t = build_report(world.machine, since=SINCE, until=UNTIL, by="site").totals
    assert (t.group, t.tickets_issued, t.volume_issued_m3, t.receipts, t.received_m3) == (None, 5, "73", 4, "62")
    # reused: 16 (S-001) + 10 (S-003) of 62 m³ = 41.93 %
    assert (t.reused_m3, t.utilisation_rate_pct, t.discrepancies) == ("26", "41.93", 1)
    assert (t.violations, t.violations_resolved, t.violations_dismissed) == (3, 2, 1)
    assert dict(t.violations_by_type) == {**{k: 0 for k, _ in t.violations_by_type},
                                          "uncovered_load": 1, "overloaded": 1, "speeding": 1}
    assert t.median_handling_seconds == 3600.0  # median of 1800 and 5400
    assert (t.penalties, t.penalty_amount_yuan) == (2, "2500.50")
    assert (t.capacity_m3, t.load_m3, t.load_rate_pct) == ("600100", "78", "0.01")


def test_period_boundaries() -> None:
    """`since` is included and `until` excluded, for issues, receipts, violations and penalties alike."""
    world = _history()
    at_end = epoch("2026-11-24T00:00:00+08:00")
    after = build_report(world.machine, since=at_end, until=at_end + HOUR, by="site").totals
    # T-6 issued at 00:00, T-5 received at 00:10
    assert (after.tickets_issued, after.receipts, after.received_m3, after.violations) == (1, 1, "15", 0)
    last_second = build_report(world.machine, since=UNTIL - 1, until=UNTIL, by="site").totals
    assert (last_second.tickets_issued, last_second.receipts, last_second.received_m3) == (0, 1, "12")
    first_second = build_report(world.machine, since=SINCE, until=SINCE + 1, by="site").totals
    assert (first_second.tickets_issued, first_second.receipts) == (1, 0)


def test_grouping_by_company_project_district(world: World) -> None:
    """Tickets count for the truck's company, the project and its district; violations and penalties
    follow their truck, ticket or linked violations; what has no district is unattributed."""
    by_company = _rows(build_report(world.machine, since=SINCE, until=UNTIL, by="company"))
    assert list(by_company) == ["C-01", "C-02"]
    c1, c2 = by_company["C-01"], by_company["C-02"]
    assert (c1.name, c1.tickets_issued, c1.receipts, c1.received_m3, c1.violations) == (
        "运输公司C-01", 4, 3, "38", 2)
    assert (c2.tickets_issued, c2.receipts, c2.received_m3, c2.discrepancies, c2.penalties) == (1, 1, "24", 1, 1)
    assert c2.site_kind is None and c2.load_rate_pct is None
    by_project = _rows(build_report(world.machine, since=SINCE, until=UNTIL, by="project"))
    assert [(k, r.tickets_issued, r.received_m3, r.violations) for k, r in by_project.items()] == [
        ("P-001", 4, "52", 2), ("P-002", 1, "10", 1), (None, 0, "0", 0)]  # None: PN-2
    assert by_project["P-002"].utilisation_rate_pct == "100.00"
    by_district = _rows(build_report(world.machine, since=SINCE, until=UNTIL, by="district"))
    assert list(by_district) == ["渝北区", None]
    assert (by_district["渝北区"].tickets_issued, by_district["渝北区"].penalties) == (4, 1)
    assert (by_district[None].tickets_issued, by_district[None].received_m3, by_district[None].name) == (1, "10", None)


def test_rows_for_idle_groups_and_bad_requests() -> None:
    """Every registered group gets a row of zeros in an empty period; bad groupings and periods raise."""
    world = make_world()
    report = build_report(world.machine, since=SINCE, until=UNTIL, by="project")
    assert [(r.group, r.tickets_issued, r.utilisation_rate_pct, r.median_handling_seconds) for r in report.rows] == [
        ("P-001", 0, None, None), ("P-002", 0, None, None)]
    assert report.to_json()["since"] == "2026-11-23T21:00:00+08:00"
    with pytest.raises(ReportError):
        build_report(world.machine, since=SINCE, until=UNTIL, by="truck")
    with pytest.raises(ReportError) as exc:
        build_report(world.machine, since=UNTIL, until=UNTIL, by="site")
    assert exc.value.exit_code == 2


def test_report_is_a_pure_function_of_the_chain(world: World) -> None:
    """A replayed machine gives the same report, and the report is frozen and JSON-serialisable."""
    again = build_report(world.replay(), since=SINCE, until=UNTIL, by="site")
    report = build_report(world.machine, since=SINCE, until=UNTIL, by="site")
    assert again == report
    with pytest.raises(AttributeError):
        report.rows[0].receipts = 9  # type: ignore[misc]
    doc = json.loads(json_text(report))
    assert doc["by"] == "site" and doc["until"] == "2026-11-24T00:00:00+08:00"
    assert doc["rows"][0]["violations_by_type"]["uncovered_load"] == 1
    assert doc["totals"]["utilisation_rate_pct"] == "41.93"


def test_csv_parses_back(world: World) -> None:
    """The CSV starts with a UTF-8 BOM, has English field names and one line a group plus the totals."""
    report = build_report(world.machine, since=SINCE, until=UNTIL, by="site")
    data = csv_bytes(report)
    assert data.startswith(b"\xef\xbb\xbf")
    lines = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert tuple(lines[0]) == CSV_COLUMNS
    assert [r["group"] for r in lines] == ["S-001", "S-002", "S-003", "", "TOTAL"]
    s2 = lines[1]
    assert (s2["name"], s2["received_m3"], s2["violations_overloaded"], s2["median_handling_seconds"]) == (
        "消纳场S-002", "36", "1", "5400")
    assert (s2["penalty_amount_yuan"], s2["load_rate_pct"], s2["period_since"]) == (
        "2000.50", "0.00", "2026-11-23T21:00:00+08:00")
    assert (lines[3]["name"], lines[4]["name"], lines[4]["utilisation_rate_pct"]) == ("未归属", "合计", "41.93")
    english = list(csv.DictReader(io.StringIO(csv_text(report, lang="en"))))
    assert english[-1]["name"] == "total"


def _png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        return img.size


def test_png_charts(world: World, tmp_path: Path) -> None:
    """The charts are a PNG of a plausible size, in Chinese when a CJK font is installed."""
    report = build_report(world.machine, since=SINCE, until=UNTIL, by="site")
    out = tmp_path / "report.png"
    used = rr.render_png(report, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _png_size(out) == (1400, 900)
    assert used == ("zh" if rr.cjk_font() else "en")


def test_png_falls_back_to_english(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a CJK font the charts use English labels (and ``G1``… for Chinese-only names), no warnings."""
    monkeypatch.setattr(rr, "cjk_font", lambda: None)
    report = build_report(world.machine, since=SINCE, until=UNTIL, by="district")
    buf = io.BytesIO()
    assert rr.render_png(report, buf) == "en"
    assert buf.getvalue()[:4] == b"\x89PNG"


# -- the CLI on a stored chain -------------------------------------------------------------------

def _blocks(world: World) -> Iterator[tuple[datetime, list[Any]]]:
    """The world's logged transactions grouped by block time, in order."""
    for when, group in groupby(world.log, key=lambda item: item[1].block_time):
        yield when, [tx for tx, _ctx, _out in group]


def _store_world(world: World, tmp_path: Path) -> tuple[str, Path]:
    """Write the world's history as co-signed blocks to a SQLite store; return its URL and genesis file."""
    consortium = world.consortium
    genesis = tmp_path / "consortium.json"
    write_consortium(consortium, genesis)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = LedgerStore.open(url, consortium=consortium)
    machine = EticketMachine.from_consortium(consortium)
    previous, log = None, CompactRange()
    nodes = [world.keys[m.name] for m in consortium.nodes]
    for when, txs in _blocks(world):
        built = build_block(raw_txs=[tx.encode() for tx in txs], proposer=consortium.nodes[0].name,
                            timestamp=iso_dt(when), previous=previous, log=log, consortium=consortium,
                            machine=machine, seen=lambda ids: set())
        block = built.block.with_signatures(sign_header(built.block.header, k) for k in nodes)
        store.append(block, consortium)
        previous, log = block.header, built.log
    store.close()
    assert machine.digest() == world.machine.digest()
    return url, genesis


def _ledger(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    return subprocess.run([sys.executable, "-m", "ledger", *args], capture_output=True, text=True, timeout=120,
                          env=env, check=False)


def test_cli_report(world: World, tmp_path: Path) -> None:
    """`ledger report` replays a stored chain and writes the CSV, JSON or PNG; bad input exits 2 in one line."""
    url, genesis = _store_world(world, tmp_path)
    period = ["--since", "2026-11-23T21:00:00+08:00", "--until", "2026-11-24T00:00:00+08:00"]
    base = ["report", "--db", url, "--consortium", str(genesis), *period]
    out_csv = tmp_path / "r.csv"
    done = _ledger(*base, "--by", "site", "--format", "csv", "--out", str(out_csv))
    assert done.returncode == 0, done.stderr
    lines = list(csv.DictReader(io.StringIO(out_csv.read_bytes().decode("utf-8-sig"))))
    assert [(r["group"], r["receipts"]) for r in lines] == [
        ("S-001", "1"), ("S-002", "2"), ("S-003", "1"), ("", "0"), ("TOTAL", "4")]
    done = _ledger(*base, "--by", "company", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["totals"]["received_m3"] == "62"
    png = tmp_path / "r.png"
    done = _ledger(*base, "--by", "site", "--format", "png", "--out", str(png))
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for bad in (
        [*base, "--by", "truck"],
        [*base[:-4], "--since", "2026-11-23 21:00", "--until", "2026-11-24T00:00:00+08:00"],
        [*base[:-4], "--since", "2026-11-24T00:00:00+08:00", "--until", "2026-11-23T21:00:00+08:00"],
        [*base, "--format", "png"],
        ["report", "--db", str(tmp_path / "missing.db"), "--consortium", str(genesis), *period],
        ["report", "--db", url, "--consortium", str(tmp_path / "nope.json"), *period],
    ):
        done = _ledger(*bad)
        assert done.returncode == 2, (bad, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
