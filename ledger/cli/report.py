"""``ledger report``: period figures per district, project, company or site as CSV, JSON or PNG charts."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import IO, Any

from ledger.errors import LedgerError
from ledger.eticket.reports import Report, ReportError, ReportRow
from ledger.eticket.units import iso
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
    for r in (r for r in report.reconciliation if r.alarm):  # the gaps, on the operator's terminal as well
        print(f"reconciliation alarm: {r.kind} {r.place_id} {r.day}: {r.trips} trips, {r.tickets_issued} tickets, "
              f"{r.sightings} seen ({', '.join(r.reasons)})", file=sys.stderr)
    if a.format == "png":
        from ledger.cli.report import render_png

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


#: Font files tried first (Debian's fonts-noto-cjk, fonts-wqy-microhei, fonts-wqy-zenhei).
FONT_FILES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)
#: Family names of CJK-capable fonts, best first.
FONT_NAMES = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
)
#: Groups shown per chart; the others are left out (the CSV and JSON have every group).
MAX_GROUPS = 15
#: Violation types in Chinese (English labels use the type codes).
TYPE_NAMES_ZH = {
    "no_ticket": "无票运输",
    "unapproved_disposal": "未经核准擅自处置",
    "uncovered_load": "未密闭覆盖",
    "overloaded": "超载",
    "spilling": "抛洒滴漏",
    "speeding": "超速",
    "off_route": "偏离路线",
    "suspicious_stop": "异常停靠",
    "suspected_dumping": "疑似偷倒",
    "other": "其他",
    "outside_hours": "非规定时段运输",
    "forbidden_zone": "驶入禁行区域",
}

_TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "电子渣票统计报表 {since} 至 {until} · 按{by}",
        "district": "区县", "project": "工程", "company": "运输企业", "site": "消纳场",
        "tickets": "出票与消纳（张）", "issued": "出票", "receipts": "消纳凭证",
        "volume": "消纳量（m³）与综合利用率", "reused": "资源化利用/回填", "landfill": "填埋",
        "violations": "违规事件（按类型）", "none_v": "本期无违规事件",
        "load": "处置负荷率（%，期末）", "alarm": "报警阈值",
        "handling": "违规处置时长中位数（分钟）",
        "top": "（前{n}个）", "unattributed": "未归属",
        "footer": "合计：出票 {tickets} 张 {issued} m³，消纳 {receipts} 张 {received} m³，综合利用率 {util}%，"
                  "量差 {disc} 起，违规 {viol} 起，处罚 {pen} 起 {yuan} 元",
    },
    "en": {
        "title": "E-ticket report {since} to {until} · by {by}",
        "district": "district", "project": "project", "company": "transport company", "site": "disposal site",
        "tickets": "Tickets issued and receipts", "issued": "issued", "receipts": "receipts",
        "volume": "Received volume (m³) and utilisation rate", "reused": "recycled/backfill", "landfill": "landfill",
        "violations": "Violations by type", "none_v": "no violations in the period",
        "load": "Site load rate (%, at period end)", "alarm": "alarm threshold",
        "handling": "Median violation handling time (minutes)",
        "top": " (top {n})", "unattributed": "unattributed",
        "footer": "Totals: {tickets} tickets issued ({issued} m³), {receipts} receipts ({received} m³), "
                  "utilisation {util}%, {disc} discrepancies, {viol} violations, {pen} penalties ({yuan} yuan)",
    },
}


def cjk_font() -> str | None:
    """The family name of an installed CJK-capable font known to matplotlib, or None."""
    from matplotlib import font_manager

    for path in FONT_FILES:
        if Path(path).exists():
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):
                continue
    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((n for n in FONT_NAMES if n in names), None)


def _pick(rows: tuple[ReportRow, ...]) -> list[ReportRow]:
    """The busiest groups (at most MAX_GROUPS), in the report's order."""
    if len(rows) <= MAX_GROUPS:
        return list(rows)
    busy = sorted(rows, key=lambda r: -(r.tickets_issued + r.receipts + r.violations))[:MAX_GROUPS]
    keep = {id(r) for r in busy}
    return [r for r in rows if id(r) in keep]


def _label(row: ReportRow, i: int, cjk: bool, text: dict[str, str]) -> str:
    if row.group is None:
        return text["unattributed"]
    label = row.name if cjk and row.name else row.group
    return label if cjk or label.isascii() else f"G{i + 1}"


def render_png(report: Report, out: str | Path | IO[bytes], *, lang: str = "zh", dpi: int = 100) -> str:
    """Draw the report's charts into ``out`` as a PNG; returns the language used.

    Chinese needs a CJK font (:func:`cjk_font`); without one the charts fall back to English,
    and group names that are not ASCII become ``G1``, ``G2`` … (the CSV has the real names).
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise ReportError("PNG charts need matplotlib: pip install 'muck-ledger[charts]' "
                          "(or use --format csv or json)") from exc

    family = cjk_font() if lang == "zh" else None
    used = "zh" if family is not None else "en"
    text = _TEXT[used]
    rows = _pick(report.rows)
    cjk = used == "zh"
    labels = [_label(r, i, cjk, text) for i, r in enumerate(rows)]
    xs = list(range(len(rows)))
    rc: Any = {"axes.unicode_minus": False}
    if family is not None:
        rc["font.family"] = [family, "DejaVu Sans"]
    import matplotlib

    with matplotlib.rc_context(rc), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        fig = Figure(figsize=(14, 9), dpi=dpi, layout="constrained")
        axes = fig.subplots(2, 2)
        top = text["top"].format(n=MAX_GROUPS) if len(report.rows) > MAX_GROUPS else ""

        ax = axes[0][0]
        ax.bar([x - 0.2 for x in xs], [r.tickets_issued for r in rows], width=0.4, label=text["issued"])
        ax.bar([x + 0.2 for x in xs], [r.receipts for r in rows], width=0.4, label=text["receipts"])
        ax.set_title(text["tickets"] + top)
        ax.legend()

        ax = axes[0][1]
        reused = [float(r.reused_m3) for r in rows]
        other = [float(r.received_m3) - u for r, u in zip(rows, reused, strict=True)]
        ax.bar(xs, reused, label=text["reused"], color="tab:green")
        ax.bar(xs, other, bottom=reused, label=text["landfill"], color="tab:gray")
        for x, r in zip(xs, rows, strict=True):
            if r.utilisation_rate_pct is not None:
                ax.annotate(f"{float(r.utilisation_rate_pct):.0f}%", (x, float(r.received_m3)), ha="center",
                            va="bottom", fontsize=8)
        ax.set_title(text["volume"] + top)
        ax.legend()

        ax = axes[1][0]
        types = [t for t, n in report.totals.violations_by_type if n]
        bottom = [0] * len(rows)
        for t in types:
            counts = [dict(r.violations_by_type)[t] for r in rows]
            ax.bar(xs, counts, bottom=bottom, label=TYPE_NAMES_ZH.get(t, t) if cjk else t)
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        if types:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, text["none_v"], ha="center", va="center", transform=ax.transAxes)
        ax.set_title(text["violations"] + top)

        ax = axes[1][1]
        if report.by == "site":
            ax.bar(xs, [float(r.load_rate_pct or 0) for r in rows], color="tab:orange")
            marks = [(x, r.alarm_threshold_pct) for x, r in zip(xs, rows, strict=True) if r.alarm_threshold_pct]
            ax.scatter([x for x, _ in marks], [p for _, p in marks], marker="_", s=400, color="tab:red",
                       label=text["alarm"], zorder=3)
            ax.set_ylim(0, 105)
            ax.legend()
            ax.set_title(text["load"] + top)
        else:
            ax.bar(xs, [(r.median_handling_seconds or 0) / 60 for r in rows], color="tab:purple")
            ax.set_title(text["handling"] + top)
        for row_axes in axes:
            for a in row_axes:
                a.set_xticks(xs, labels, rotation=30, ha="right", fontsize=8)
        for a in (axes[0][0], axes[1][0]):
            a.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.suptitle(text["title"].format(since=iso(report.since)[:10], until=iso(report.until)[:10],
                                          by=text[report.by]), fontsize=14)
        tot = report.totals
        fig.supxlabel(text["footer"].format(
            tickets=tot.tickets_issued, issued=tot.volume_issued_m3, receipts=tot.receipts,
            received=tot.received_m3, util=tot.utilisation_rate_pct or "-", disc=tot.discrepancies,
            viol=tot.violations, pen=tot.penalties, yuan=tot.penalty_amount_yuan), fontsize=10)
        fig.savefig(out, format="png")
    return used
