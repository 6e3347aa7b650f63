"""Reconciliation (对账): per project exit and disposal site, per local day, what was seen against the tickets.

Each place-day has counts per **source**:

* ``tickets_issued`` — tickets issued that day for the project (exit) or bound for the site (site);
* ``exit_scans`` — departures recorded by the project's exit gate (exit places);
* ``receipts`` — receipts recorded by the site's gate (site places);
* ``sightings`` — trucks the place's exit or disposal-gate cameras saw (the camera rules' ``sighting``
  table; 0 where there is none).

The trips that happened are at least the most any source counted (``trips = max(scans, sightings)``); a
**gap** is trips beyond the tickets issued, and ``unscanned`` the trucks cameras saw that no gate scan
recorded.  A place-day with a gap above the tolerance, or any unscanned truck, is an **alarm** (a city once
found 31 trips against 8 tickets at one site).  Tickets issued late one evening and used after midnight
make small honest gaps, hence ``tolerance`` (``GAP_TOLERANCE`` trips by default).

The seam: :func:`reconcile` takes counts per source (``{source: {(kind, place, day): n}}``) and treats a
missing source as 0, so a new source (camera sightings) is one more mapping; :func:`ledger_counts` gives
the ledger's own, and :data:`COUNTERS` is where another source's counter is registered.  Pure: no
clock; days are local (+08:00) days of the event times.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.core.encoding import CHINA_TZ
from ledger.eticket.state import State

EXIT = "exit"
SITE = "site"
SOURCES = ("tickets_issued", "exit_scans", "receipts", "sightings")
#: trips beyond the tickets tolerated per place-day before it is an alarm
GAP_TOLERANCE = 2

#: (place kind, place id, local day "YYYY-MM-DD")
PlaceDay = tuple[str, str, str]
Counts = Mapping[PlaceDay, int]
#: a source's counter over the state for [since, until)
Counter = Callable[[State, int, int], Counts]


def local_day(t: int) -> str:
    """The local (+08:00) day of epoch second ``t``."""
    return datetime.fromtimestamp(t, CHINA_TZ).date().isoformat()


@dataclass(frozen=True)
class ReconRow:
    """One place-day: the counts, the trips, the gap and whether it is an alarm (with why)."""

    kind: str
    place_id: str
    day: str
    tickets_issued: int
    scans: int
    sightings: int
    trips: int
    gap: int
    unscanned: int
    alarm: bool
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in self.__dataclass_fields__}, "reasons": list(self.reasons)}


def row(kind: str, place_id: str, day: str, counts: Mapping[str, int], *, tolerance: int = GAP_TOLERANCE) -> ReconRow:
    """Reconcile one place-day's counts per source (missing sources are 0)."""
    issued = counts.get("tickets_issued", 0)
    scans = counts.get("exit_scans" if kind == EXIT else "receipts", 0)
    seen = counts.get("sightings", 0)
    trips = max(scans, seen)
    gap = max(0, trips - issued)
    unscanned = max(0, seen - scans)
    reasons = (("trips_over_tickets",) if gap > tolerance else ()) + (("seen_not_scanned",) if unscanned else ())
    return ReconRow(kind, place_id, day, issued, scans, seen, trips, gap, unscanned, bool(reasons), reasons)


def reconcile(sources: Mapping[str, Counts], *, tolerance: int = GAP_TOLERANCE) -> list[ReconRow]:
    """Every place-day any source counted, reconciled; by day, then kind, then place."""
    keys: set[PlaceDay] = set()
    for counts in sources.values():
        keys.update(counts)
    out = []
    for kind, place, day in sorted(keys, key=lambda k: (k[2], k[0], k[1])):
        per = {src: counts.get((kind, place, day), 0) for src, counts in sources.items()}
        out.append(row(kind, place, day, per, tolerance=tolerance))
    return out


def _bump(acc: dict[PlaceDay, int], key: PlaceDay) -> None:
    acc[key] = acc.get(key, 0) + 1


def tickets_issued(state: State, since: int, until: int) -> Counts:
    """Tickets issued in [since, until), counted at their project's exit and at their site."""
    acc: dict[PlaceDay, int] = {}
    for t in state.tables["ticket"].values():
        if since <= t.issued_at < until:
            day = local_day(t.issued_at)
            _bump(acc, (EXIT, t.project_id, day))
            _bump(acc, (SITE, t.site_id, day))
    return acc


def exit_scans(state: State, since: int, until: int) -> Counts:
    """Departures recorded in [since, until), at their project's exit."""
    acc: dict[PlaceDay, int] = {}
    for t in state.tables["ticket"].values():
        if t.departed_at is not None and since <= t.departed_at < until:
            _bump(acc, (EXIT, t.project_id, local_day(t.departed_at)))
    return acc


def receipts(state: State, since: int, until: int) -> Counts:
    """Receipts recorded in [since, until), at their site."""
    acc: dict[PlaceDay, int] = {}
    for t in state.tables["ticket"].values():
        if t.received_at is not None and since <= t.received_at < until:
            _bump(acc, (SITE, t.site_id, local_day(t.received_at)))
    return acc


#: sightings of one plate at one place closer together than this are one truck seen (it lingered)
SAME_TRUCK_S = 600


def sightings(state: State, since: int, until: int) -> Counts:
    """Trucks the exit and disposal-gate cameras saw in [since, until) (the ``sighting`` and ``camera``
    tables of the camera rules; none: nothing counted), one plate at one place once per ``SAME_TRUCK_S``."""
    cameras = state.tables.get("camera", {})
    last: dict[tuple[PlaceDay, str], int] = {}
    acc: dict[PlaceDay, int] = {}
    for sg in sorted(state.tables.get("sighting", {}).values(), key=lambda x: (x.time, x.sighting_id)):
        cam = cameras.get(sg.camera_id)
        if cam is None or not since <= sg.time < until:
            continue
        if cam.placement == "exit" and cam.project_id:
            key: PlaceDay = (EXIT, cam.project_id, local_day(sg.time))
        elif cam.placement == "disposal" and cam.site_id:
            key = (SITE, cam.site_id, local_day(sg.time))
        else:
            continue  # a road camera sees trips on the way, not at a place
        seen = last.get((key, sg.plate))
        last[(key, sg.plate)] = sg.time
        if seen is None or sg.time - seen >= SAME_TRUCK_S:
            _bump(acc, key)
    return acc


#: the counted sources (another one registers here: 0 everywhere while it counts nothing)
COUNTERS: dict[str, Counter] = {
    "tickets_issued": tickets_issued,
    "exit_scans": exit_scans,
    "receipts": receipts,
    "sightings": sightings,
}


def ledger_counts(state: State, since: int, until: int) -> dict[str, Counts]:
    """Every registered source's counts over [since, until)."""
    return {name: counter(state, since, until) for name, counter in COUNTERS.items()}


def reconciliation(state: State, since: int, until: int, *, tolerance: int = GAP_TOLERANCE) -> list[ReconRow]:
    """The place-days of [since, until) reconciled from every registered source."""
    return reconcile(ledger_counts(state, since, until), tolerance=tolerance)


def alarms(rows: Iterable[ReconRow]) -> list[ReconRow]:
    """Only the place-days in alarm."""
    return [r for r in rows if r.alarm]


def counts_for(r: ReconRow, by: str) -> bool:
    """Whether a place-day counts in a report by ``by``: exits for projects and districts, sites for sites
    (a company report has no place rows)."""
    return r.kind == (SITE if by == "site" else EXIT) and by in ("site", "project", "district")


def group_of(r: ReconRow, by: str, state: State) -> str | None:
    """The period report's group of a place-day that counts for it (None: the unattributed row, e.g. a
    project without a district)."""
    if by != "district":
        return r.place_id
    project = state.tables["project"].get(r.place_id)
    return None if project is None else project.district


def per_group(rows: Iterable[ReconRow], by: str, state: State) -> dict[str | None, tuple[int, int]]:
    """``{group: (trips beyond tickets, place-days in alarm)}`` of the rows that count for the grouping."""
    out: dict[str | None, tuple[int, int]] = {}
    for r in rows:
        if counts_for(r, by):
            group = group_of(r, by, state)
            gap, n = out.get(group, (0, 0))
            out[group] = (gap + r.gap, n + int(r.alarm))
    return out
