"""Period reports per district, project, transport company or disposal site, from a machine's state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ledger.eticket.errors import EticketError
from ledger.eticket.geo import pct_text
from ledger.eticket.machine import EticketMachine
from ledger.eticket.reconcile import ReconRow, per_group, reconciliation
from ledger.eticket.records import Penalty, Site, Ticket, Violation
from ledger.eticket.schema import VIOLATION_TYPES
from ledger.eticket.state import State
from ledger.eticket.units import fen_text, iso, m3_text, median

#: Groupings a report can be made by.
GROUPINGS = ("district", "project", "company", "site")
#: Site kinds whose intake counts as comprehensive utilisation (综合利用): recycled or reused.
REUSE_KINDS = frozenset({"recycling", "backfill"})


class ReportError(EticketError):
    """A report request with a bad period or grouping."""

    reason = "bad_report_request"
    exit_code = 2


@dataclass(frozen=True)
class ReportRow:
    """The figures of one group (``group`` None: events that belong to no group of this kind).

    Volumes are m³ strings, money yuan strings, rates percent strings with two decimals; the site
    fields (``site_kind`` … ``load_rate_pct``, load as of the period's end) are set only by site.
    """

    group: str | None
    name: str | None
    tickets_issued: int
    volume_issued_m3: str
    receipts: int
    received_m3: str
    reused_m3: str
    utilisation_rate_pct: str | None
    discrepancies: int
    violations: int
    violations_by_type: tuple[tuple[str, int], ...]
    violations_resolved: int
    violations_dismissed: int
    median_handling_seconds: float | None
    penalties: int
    penalty_amount_yuan: str
    site_kind: str | None = None
    capacity_m3: str | None = None
    load_m3: str | None = None
    load_rate_pct: str | None = None
    alarm_threshold_pct: int | None = None
    #: reconciliation (ledger.eticket.reconcile): trips beyond the tickets, place-days in alarm
    unticketed_trips: int = 0
    reconciliation_alarms: int = 0

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON-ready dict (``violations_by_type`` as an object over every type)."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["violations_by_type"] = dict(self.violations_by_type)
        return out


@dataclass(frozen=True)
class Report:
    """A report over the half-open period [since, until) in epoch seconds, one row per group."""

    by: str
    since: int
    until: int
    as_of: int
    rows: tuple[ReportRow, ...]
    totals: ReportRow
    #: every place-day of the period reconciled (exit scans, receipts, tickets, sightings)
    reconciliation: tuple[ReconRow, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict; times ISO 8601 in China time."""
        return {
            "by": self.by,
            "since": iso(self.since),
            "until": iso(self.until),
            "as_of": iso(self.as_of),
            "rows": [r.to_json() for r in self.rows],
            "totals": self.totals.to_json(),
            "reconciliation": [r.to_json() for r in self.reconciliation],
        }


@dataclass
class _Acc:
    """Integer accumulators of one group (litres, fen, seconds)."""

    tickets: int = 0
    issued_l: int = 0
    receipts: int = 0
    received_l: int = 0
    reused_l: int = 0
    discrepancies: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    resolved: int = 0
    dismissed: int = 0
    handling: list[int] = field(default_factory=list)
    penalties: int = 0
    fen: int = 0
    sites: list[Site] = field(default_factory=list)
    later_l: int = 0


class _Grouper:
    """Maps tickets, violations and penalties to the group they count for."""

    def __init__(self, state: State, by: str) -> None:
        self.t = state.tables
        self.by = by

    def _of_project(self, project_id: str | None) -> str | None:
        if project_id is None:
            return None
        if self.by == "project":
            return project_id
        project = self.t["project"].get(project_id)
        return None if project is None else project.district

    def _company_of_truck(self, truck_id: str | None) -> str | None:
        truck = self.t["truck"].get(truck_id) if truck_id is not None else None
        return None if truck is None else str(truck.company_id)

    def ticket(self, tk: Ticket) -> str | None:
        if self.by == "site":
            return tk.site_id
        if self.by == "company":
            return self._company_of_truck(tk.truck_id)
        return self._of_project(tk.project_id)

    def violation(self, v: Violation) -> str | None:
        tk: Ticket | None = self.t["ticket"].get(v.ticket_id) if v.ticket_id is not None else None
        if self.by == "site":
            return v.site_id or (tk.site_id if tk else None)
        if self.by == "company":
            return v.company_id or self._company_of_truck(v.truck_id or (tk.truck_id if tk else None))
        return self._of_project(v.project_id or (tk.project_id if tk else None))

    def penalty(self, p: Penalty) -> str | None:
        if self.by == "company":
            if p.target_kind == "company":
                return p.target_id
            if p.target_kind == "truck":
                return self._company_of_truck(p.target_id)
            if p.target_kind == "driver":
                driver = self.t["driver"].get(p.target_id)
                return None if driver is None else str(driver.company_id)
        for vid in p.violation_ids:  # the first linked violation that has a group
            v = self.t["violation"].get(vid)
            group = None if v is None else self.violation(v)
            if group is not None:
                return group
        return None

    def known(self) -> Iterable[tuple[str, str | None]]:
        """Every registered group with its display name (districts: those of the projects)."""
        if self.by == "district":
            names = {p.district for p in self.t["project"].values() if p.district is not None}
            return [(d, d) for d in sorted(names)]
        kind = self.by
        return [(key, self.t[kind][key].name) for key in sorted(self.t[kind])]


def build_report(m: EticketMachine, *, since: int, until: int, by: str) -> Report:
    """Figures per group for events in [since, until): tickets issued (by issue time), receipts,
    received and reused volume, utilisation rate (综合利用率 = recycling + backfill received / all
    received) and discrepancies (by receipt time), violations by type (by report time) with how many
    were resolved or dismissed and the median handling time (resolved − reported), penalties (by
    decision time) and, by site, the load rate (负荷率) as of ``until``.  Rows come in id order; the
    row of events that belong to no group (``group`` None) comes last and only when it has any.
    """
    if by not in GROUPINGS:
        raise ReportError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    if since >= until:
        raise ReportError(f"the period is empty: since {iso(since)} is not before until {iso(until)}")
    st = m.state
    g = _Grouper(st, by)
    accs: dict[str | None, _Acc] = {key: _Acc() for key, _ in g.known()}
    total = _Acc()

    def acc_of(group: str | None) -> _Acc:
        a = accs.get(group)
        if a is None:
            a = accs[group] = _Acc()
        return a

    site_kinds = {s.site_id: s.kind for s in st.tables["site"].values()}
    for tk in st.tables["ticket"].values():
        if since <= tk.issued_at < until:
            for a in (acc_of(g.ticket(tk)), total):
                a.tickets += 1
                a.issued_l += tk.volume_l
        if tk.received_at is None or tk.measured_l is None:
            continue
        if tk.received_at >= until:  # received after the period: not in the load at its end
            if by == "site":
                acc_of(tk.site_id).later_l += tk.measured_l
            total.later_l += tk.measured_l
        elif tk.received_at >= since:
            reused = tk.measured_l if site_kinds.get(tk.site_id) in REUSE_KINDS else 0
            for a in (acc_of(g.ticket(tk)), total):
                a.receipts += 1
                a.received_l += tk.measured_l
                a.reused_l += reused
                a.discrepancies += int(tk.discrepancy)
    for v in st.tables["violation"].values():
        if not since <= v.reported_at < until:
            continue
        for a in (acc_of(g.violation(v)), total):
            a.by_type[v.type] = a.by_type.get(v.type, 0) + 1
            if v.resolved_at is not None:
                a.resolved += 1
                a.handling.append(v.resolved_at - v.reported_at)
            elif v.dismissed_at is not None:
                a.dismissed += 1
    for p in st.tables["penalty"].values():
        if since <= p.time < until:
            for a in (acc_of(g.penalty(p)), total):
                a.penalties += 1
                a.fen += p.amount_fen
    if by == "site":
        for s in st.tables["site"].values():
            acc_of(s.site_id).sites.append(s)
            total.sites.append(s)
    recon = tuple(reconciliation(st, since, until))
    gaps = per_group(recon, by, st)
    for group in gaps:  # the unattributed row too, when only a gap is in it
        acc_of(group)
    names = dict(g.known())
    keys: list[str | None] = [*sorted(k for k in accs if k is not None)]
    if None in accs:
        keys.append(None)
    rows = tuple(_gaps(_row(k, names.get(k) if k is not None else None, accs[k], by), gaps.get(k)) for k in keys)
    totals = _gaps(_row(None, None, total, by), (sum(g for g, _ in gaps.values()), sum(n for _, n in gaps.values())))
    return Report(by=by, since=since, until=until, as_of=m.now, rows=rows, totals=totals, reconciliation=recon)


def _gaps(r: ReportRow, gaps: tuple[int, int] | None) -> ReportRow:
    return r if not gaps else replace(r, unticketed_trips=gaps[0], reconciliation_alarms=gaps[1])


def _row(group: str | None, name: str | None, a: _Acc, by: str) -> ReportRow:
    site_fields: dict[str, Any] = {}
    if by == "site" and a.sites:
        capacity = sum(s.capacity_l for s in a.sites)
        load = max(0, sum(s.load_l for s in a.sites) - a.later_l)
        site_fields = {
            "site_kind": a.sites[0].kind if len(a.sites) == 1 else None,
            "capacity_m3": m3_text(capacity),
            "load_m3": m3_text(load),
            "load_rate_pct": pct_text(load * 10000 // capacity),
            "alarm_threshold_pct": a.sites[0].alarm_pct if len(a.sites) == 1 else None,
        }
    return ReportRow(
        group=group,
        name=name,
        tickets_issued=a.tickets,
        volume_issued_m3=m3_text(a.issued_l),
        receipts=a.receipts,
        received_m3=m3_text(a.received_l),
        reused_m3=m3_text(a.reused_l),
        utilisation_rate_pct=pct_text(a.reused_l * 10000 // a.received_l) if a.received_l else None,
        discrepancies=a.discrepancies,
        violations=sum(a.by_type.values()),
        violations_by_type=tuple((t, a.by_type.get(t, 0)) for t in VIOLATION_TYPES),
        violations_resolved=a.resolved,
        violations_dismissed=a.dismissed,
        median_handling_seconds=median(a.handling),
        penalties=a.penalties,
        penalty_amount_yuan=fen_text(a.fen),
        **site_fields,
    )
