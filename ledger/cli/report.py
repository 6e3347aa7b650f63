"""``ledger report``: period figures per district, project, company or site as CSV, JSON or PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ledger.errors import LedgerError
from ledger.store.keyfiles import read_consortium
from ledger.store.ledger_store import LedgerStore
from ledger.verify.audit import replay

FORMATS = ("csv", "json", "png")


def _period(a: argparse.Namespace) -> tuple[int, int]:
    from ledger.eticket.errors import PayloadError
    from ledger.eticket.reports import ReportError
    from ledger.eticket.units import epoch

    try:
        return epoch(a.since, what="--since"), epoch(a.until, what="--until")
    except PayloadError as exc:
        raise ReportError(exc.message) from exc


def cmd_report(a: argparse.Namespace) -> int:
    from ledger.eticket import EticketMachine
    from ledger.eticket.report_export import csv_bytes, json_text
    from ledger.eticket.reports import GROUPINGS, ReportError, build_report

    if a.by not in GROUPINGS:
        raise ReportError(f"--by must be one of {', '.join(GROUPINGS)}, not {a.by!r}")
    if a.format not in FORMATS:
        raise ReportError(f"--format must be one of {', '.join(FORMATS)}, not {a.format!r}")
    if a.lang not in ("zh", "en"):
        raise ReportError(f"--lang must be zh or en, not {a.lang!r}")
    if a.format == "png" and a.out in (None, "-"):
        raise ReportError("--format png needs --out FILE.png")
    since, until = _period(a)
    if since >= until:
        raise ReportError(f"--since {a.since} is not before --until {a.until}")
    consortium = read_consortium(a.consortium)
    store = LedgerStore.open(a.db, consortium=consortium, create=False)
    try:
        machine = EticketMachine.from_consortium(consortium)
        problem = replay(store, consortium, machine)
    finally:
        store.close()
    if problem is not None:
        raise LedgerError(f"the chain does not re-execute, no report made: {problem.message}",
                          reason="reexecution")
    report = build_report(machine, since=since, until=until, by=a.by)
    if a.format == "png":
        from ledger.cli.report_render import render_png

        used = render_png(report, Path(a.out), lang=a.lang)
        note = "" if used == a.lang else " (no CJK font installed: English labels)"
        print(f"wrote {a.out}: {len(report.rows)} groups by {a.by}{note}", file=sys.stderr)
        return 0
    data = csv_bytes(report, lang=a.lang) if a.format == "csv" else json_text(report).encode("utf-8")
    if a.out in (None, "-"):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(a.out).write_bytes(data)
        print(f"wrote {a.out}: {len(report.rows)} groups by {a.by}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    """Add the ``report`` sub-command to the ``ledger`` parser."""
    p = sub.add_parser("report", help="period report per district, project, company or site (CSV, JSON, PNG)")
    p.add_argument("--db", required=True, help="database URL or SQLite file of a node")
    p.add_argument("--consortium", required=True, help="the trusted consortium (genesis) file")
    p.add_argument("--since", required=True, help="start, included: ISO 8601 with offset (2026-11-01T00:00:00+08:00)")
    p.add_argument("--until", required=True, help="end, excluded: ISO 8601 with offset")
    p.add_argument("--by", default="site", help="district, project, company or site (default site)")
    p.add_argument("--format", default="csv", help="csv (UTF-8 with BOM), json or png (default csv)")
    p.add_argument("--out", help="output file (default: standard output; required for png)")
    p.add_argument("--lang", default="zh", help="zh or en labels (default zh)")
    p.set_defaults(func=cmd_report)
