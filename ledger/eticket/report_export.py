"""Period reports as CSV (UTF-8 with BOM, for Excel) and JSON text."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ledger.eticket.reports import Report, ReportRow
from ledger.eticket.schema import VIOLATION_TYPES
from ledger.eticket.units import iso

#: Labels of the rows that are not a group, per language.
LABELS: dict[str, dict[str, str]] = {
    "zh": {"total": "合计", "none": "未归属"},
    "en": {"total": "total", "none": "unattributed"},
}

_FIELDS = (
    "tickets_issued",
    "volume_issued_m3",
    "receipts",
    "received_m3",
    "reused_m3",
    "utilisation_rate_pct",
    "discrepancies",
    "violations",
)
_AFTER_TYPES = (
    "violations_resolved",
    "violations_dismissed",
    "median_handling_seconds",
    "penalties",
    "penalty_amount_yuan",
    "site_kind",
    "capacity_m3",
    "load_m3",
    "load_rate_pct",
    "alarm_threshold_pct",
    "unticketed_trips",
    "reconciliation_alarms",
)
#: CSV header: English field names; one ``violations_<type>`` column per violation type.
CSV_COLUMNS: tuple[str, ...] = (
    "period_since",
    "period_until",
    "by",
    "group",
    "name",
    *_FIELDS,
    *(f"violations_{t}" for t in VIOLATION_TYPES),
    *_AFTER_TYPES,
)


def _label(lang: str, key: str) -> str:
    return LABELS.get(lang, LABELS["zh"])[key]


def _csv_row(report: Report, row: ReportRow, group: str, name: str) -> list[Any]:
    types = dict(row.violations_by_type)
    median = row.median_handling_seconds
    values: list[Any] = [iso(report.since), iso(report.until), report.by, group, name]
    values += [getattr(row, f) for f in _FIELDS]
    values += [types.get(t, 0) for t in VIOLATION_TYPES]
    for f in _AFTER_TYPES:
        v = getattr(row, f)
        if f == "median_handling_seconds" and median is not None and median == int(median):
            v = int(median)
        values.append(v)
    return ["" if v is None else v for v in values]


def csv_text(report: Report, *, lang: str = "zh") -> str:
    """The report as CSV text: a header of English field names, one line a group, then the totals
    (``group`` ``TOTAL``); the line of events without a group has an empty ``group``."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for row in report.rows:
        if row.group is None:
            w.writerow(_csv_row(report, row, "", _label(lang, "none")))
        else:
            w.writerow(_csv_row(report, row, row.group, row.name or ""))
    w.writerow(_csv_row(report, report.totals, "TOTAL", _label(lang, "total")))
    return buf.getvalue()


def csv_bytes(report: Report, *, lang: str = "zh") -> bytes:
    """:func:`csv_text` encoded as UTF-8 with a byte-order mark, which Excel needs to read Chinese."""
    return csv_text(report, lang=lang).encode("utf-8-sig")


def json_text(report: Report) -> str:
    """The report as indented JSON (Chinese kept as is)."""
    return json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n"
