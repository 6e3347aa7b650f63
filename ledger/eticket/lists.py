"""Work lists: one page of permits, tickets, projects, trucks, violations or penalties, tenant-scoped.

Pure (read from a machine's state, no clock): the API's list endpoints call :func:`page` on a node through
``ledger.eticket.queries.list_page``.  Pagination is by key (keyset), not offset: every record of a list has an
immutable sort key ``[n, id]`` (``n`` = minus its time for newest first, its time for oldest first, 0 for the
lists in id order) and a page holds the records whose key is greater than the cursor's ``after``.  A record
that exists when the first page is read is therefore on exactly one page however many records arrive in
between (new ones sort before the cursor or after it, never move an old one).

``scope`` is the caller's tenant as the API knows it: ``{"org": id}`` (a contractor: its projects and what
happens on them), ``{"company": id}`` (a transport company: its trucks and drivers), ``{"truck": id}`` (a
driver: that truck's tickets) or None (staff: everything).  A filter naming another tenant's object finds
nothing, exactly like an unknown one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ledger.eticket.machine import EticketMachine
from ledger.eticket.record_json import penalty_json, site_json, time_text, violation_json
from ledger.eticket.records import Penalty, Permit, Project, Truck, Violation
from ledger.eticket.units import location_json

KINDS = ("permit", "ticket", "project", "truck", "violation", "penalty")
ORDERS = ("newest", "oldest")
MAX_LIMIT = 200
FILTERS: Mapping[str, frozenset[str]] = {
    "permit": frozenset({"status", "project_id", "truck_id", "plate", "company_id", "since", "until",
                         "awaiting_department"}),
    "ticket": frozenset({"status", "project_id", "permit_id", "truck_id", "plate", "company_id", "site_id",
                         "since", "until"}),
    "project": frozenset({"town", "district"}),
    "truck": frozenset({"status", "company_id", "truck_id", "plate"}),
    "violation": frozenset({"status", "states", "type", "project_id", "ticket_id", "truck_id", "plate",
                            "company_id", "site_id", "town", "since", "until"}),
    "penalty": frozenset({"target_kind", "target_id", "violation_id", "project_id", "truck_id", "plate",
                          "company_id", "since", "until"}),
}
Key = tuple[int, str]
#: the immutable time each list sorts by (the others are in id order)
TIME_FIELDS = {"permit": "applied_at", "ticket": "issued_at", "violation": "reported_at", "penalty": "time"}


class ListArgumentError(ValueError):
    """A page request the API should never send (unknown kind, filter, order or cursor shape)."""


def _time(kind: str, rec: Any) -> int:
    """The immutable time a list sorts by (0: the list is in id order)."""
    attr = TIME_FIELDS.get(kind)
    return 0 if attr is None else int(getattr(rec, attr))


def _id(kind: str, rec: Any) -> str:
    return str(getattr(rec, f"{kind}_id"))


def sort_key(kind: str, rec: Any, order: str = "newest") -> Key:
    """A record's place in its list: ``(-time, id)`` newest first, ``(time, id)`` oldest first."""
    t = _time(kind, rec)
    return (-t if order == "newest" else t, _id(kind, rec))


class _Scope:
    """What a tenant may see, computed once per page."""

    def __init__(self, m: EticketMachine, scope: Mapping[str, str] | None) -> None:
        self.m = m
        self.kind: str | None = None
        self.tenant: str | None = None
        if scope:
            self.kind, self.tenant = next(iter(scope.items()))
        if self.kind not in (None, "org", "company", "truck"):
            raise ListArgumentError(f"unknown scope {self.kind!r}")
        t = m.state.tables
        self.projects: set[str] = set()
        self.trucks: set[str] = set()
        self.drivers: set[str] = set()
        if self.kind == "org":
            self.projects = {k for k, p in t["project"].items() if p.contractor_org_id == self.tenant}
            permits = [p for p in t["permit"].values() if p.contractor_org_id == self.tenant]
            companies = {c for p in permits for c in p.company_ids}
            self.trucks = {x for p in permits for x in p.truck_ids}
            self.trucks |= {k for k, tr in t["truck"].items() if tr.company_id in companies}
        elif self.kind == "company":
            self.trucks = {k for k, tr in t["truck"].items() if tr.company_id == self.tenant}
            self.drivers = {k for k, d in t["driver"].items() if d.company_id == self.tenant}
        elif self.kind == "truck":
            self.trucks = {str(self.tenant)}

    def violation(self, v: Violation) -> bool:
        if self.kind is None:
            return True
        if self.kind == "org":
            return v.project_id in self.projects
        if self.kind == "company":
            return v.company_id == self.tenant or v.truck_id in self.trucks
        return False

    def allows(self, kind: str, rec: Any) -> bool:
        if self.kind is None:
            return True
        if kind == "permit":
            return self.kind == "org" and rec.contractor_org_id == self.tenant
        if kind == "ticket":
            return rec.project_id in self.projects if self.kind == "org" else rec.truck_id in self.trucks
        if kind == "project":
            return self.kind == "org" and rec.contractor_org_id == self.tenant
        if kind == "truck":
            return self.kind in ("org", "company") and rec.truck_id in self.trucks
        if kind == "violation":
            return self.violation(rec)
        if kind == "penalty":
            return self._penalty(rec)
        return False

    def _penalty(self, p: Penalty) -> bool:
        target = (p.target_kind, p.target_id)
        if self.kind == "org" and target == ("contractor", self.tenant):
            return True
        if self.kind == "company" and (target == ("company", self.tenant)
                                       or (p.target_kind == "truck" and p.target_id in self.trucks)
                                       or (p.target_kind == "driver" and p.target_id in self.drivers)):
            return True
        if self.kind not in ("org", "company"):
            return False
        vs = self.m.state.tables["violation"]
        return any(v is not None and self.violation(v) for v in (vs.get(i) for i in p.violation_ids))


def _matcher(m: EticketMachine, kind: str, f: Mapping[str, Any]) -> Callable[[Any], bool]:
    """A predicate for every given filter of ``kind`` (``plate`` becomes a truck id; an unknown one, nothing)."""
    unknown = set(f) - FILTERS[kind]
    if unknown:
        raise ListArgumentError(f"unknown filters for {kind}: {sorted(unknown)}")
    truck_id = f.get("truck_id")
    if f.get("plate") is not None:
        by_plate = m.state.plates.get(str(f["plate"]), "\x00no truck")
        truck_id = by_plate if truck_id in (None, by_plate) else "\x00no truck"
    tables = m.state.tables
    since, until = f.get("since"), f.get("until")
    checks: list[Callable[[Any], bool]] = []
    if since is not None:
        checks.append(lambda r: _time(kind, r) >= int(since))
    if until is not None:
        checks.append(lambda r: _time(kind, r) < int(until))
    if f.get("status") is not None:
        checks.append(lambda r: r.state == f["status"] if kind != "truck" else r.status == f["status"])
    if f.get("states") is not None:
        states = frozenset(f["states"])
        checks.append(lambda r: r.state in states)
    for name in ("type", "ticket_id", "site_id", "town", "district", "permit_id", "target_kind", "target_id"):
        if f.get(name) is not None:
            checks.append(_equals(name, f[name]))
    company = f.get("company_id")
    project = f.get("project_id")
    if kind == "permit":
        if project is not None:
            checks.append(lambda r: r.project_id == project)
        if truck_id is not None:
            checks.append(lambda r: truck_id in r.truck_ids)
        if company is not None:
            checks.append(lambda r: company in r.company_ids)
        dept = f.get("awaiting_department")
        if dept is not None:
            checks.append(lambda r: r.state == "pending" and dept in r.departments
                          and all(d.department != dept for d in r.decisions))
    elif kind in ("ticket", "truck", "violation"):
        if project is not None:
            checks.append(lambda r: r.project_id == project)
        if truck_id is not None:
            checks.append(lambda r: r.truck_id == truck_id)
        if company is not None and kind == "ticket":
            checks.append(lambda r: getattr(tables["truck"].get(r.truck_id), "company_id", None) == company)
        elif company is not None:
            checks.append(lambda r: r.company_id == company)
    elif kind == "penalty":
        checks.extend(_penalty_checks(m, f, truck_id))
    return lambda r: all(c(r) for c in checks)


def _equals(attr: str, value: Any) -> Callable[[Any], bool]:
    return lambda r: bool(getattr(r, attr) == value)


def _penalty_checks(m: EticketMachine, f: Mapping[str, Any], truck_id: str | None) -> list[Callable[[Any], bool]]:
    """Penalties by violation, or by the project, truck or company they concern (as target or through one of
    their violations)."""
    vs = m.state.tables["violation"]

    def through(p: Penalty, attr: str, value: str) -> bool:
        return any(getattr(vs.get(i), attr, None) == value for i in p.violation_ids)

    out: list[Callable[[Any], bool]] = []
    if f.get("violation_id") is not None:
        out.append(lambda p: f["violation_id"] in p.violation_ids)
    if f.get("project_id") is not None:
        out.append(lambda p: through(p, "project_id", f["project_id"]))
    if truck_id is not None:
        out.append(lambda p: (p.target_kind, p.target_id) == ("truck", truck_id) or through(p, "truck_id", truck_id))
    if f.get("company_id") is not None:
        c = f["company_id"]
        out.append(lambda p: (p.target_kind, p.target_id) == ("company", c) or through(p, "company_id", c))
    return out


def _check_after(after: Sequence[Any] | None) -> Key | None:
    if after is None:
        return None
    if (not isinstance(after, (list, tuple)) or len(after) != 2 or not isinstance(after[0], int)
            or isinstance(after[0], bool) or not isinstance(after[1], str)):
        raise ListArgumentError("after must be [int, str]")
    return (after[0], after[1])


def page(
    m: EticketMachine,
    kind: str,
    *,
    scope: Mapping[str, str] | None = None,
    filters: Mapping[str, Any] | None = None,
    order: str = "newest",
    after: Sequence[Any] | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """``{"items": [...], "last": [n, id] | None, "more": bool}``: up to ``limit`` records of ``kind`` the
    scope may see, matching every filter, whose key is after ``after``; ``last`` is the key to continue from."""
    if kind not in KINDS or order not in ORDERS:
        raise ListArgumentError(f"unknown list {kind!r} or order {order!r}")
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ListArgumentError(f"limit must be 1 to {MAX_LIMIT}")
    start = _check_after(after)
    sc = _Scope(m, scope)
    match = _matcher(m, kind, filters or {})
    keyed = sorted((sort_key(kind, r, order), r) for r in m.state.tables[kind].values()
                   if (start is None or sort_key(kind, r, order) > start) and sc.allows(kind, r) and match(r))
    chosen = keyed[:limit]
    return {
        "items": [item_json(m, kind, r) for _, r in chosen],
        "last": list(chosen[-1][0]) if chosen else None,
        "more": len(keyed) > limit,
    }


def item_json(m: EticketMachine, kind: str, rec: Any) -> dict[str, Any]:
    """One list item: the record's usual query form (permits also name their project and sites)."""
    from ledger.eticket import queries

    if kind == "permit":
        out = queries.permit(m, rec.permit_id)
        assert out is not None
        return {**out, **permit_context(m, rec)}
    if kind == "ticket":
        return queries.ticket(m, rec.ticket_id) or {}
    if kind == "project":
        return queries.project(m, rec.project_id) or {}
    if kind == "truck":
        company = m.state.tables["company"].get(rec.company_id)
        return {**(queries.truck(m, rec.truck_id) or {}), "company_credit": None if company is None else company.credit}
    if kind == "violation":
        return violation_json(rec)
    return penalty_json(rec)


def permit_context(m: EticketMachine, p: Permit) -> dict[str, Any]:
    """What a department needs to decide a permit beside the permit itself: the project (name, place) and the
    disposal sites (name, kind, load)."""
    pr: Project | None = m.state.tables["project"].get(p.project_id)
    sites = [m.state.tables["site"].get(s) for s in p.site_ids]
    return {
        "project": None if pr is None else {
            "project_id": pr.project_id, "name": pr.name, "location": location_json(pr.lat, pr.lon),
            "address": pr.address, "district": pr.district, "town": pr.town,
        },
        "sites": [{k: site_json(s)[k] for k in ("site_id", "name", "kind", "load_rate_pct", "alarm")}
                  for s in sites if s is not None],
    }


def credit(m: EticketMachine, kind: str, key: str, *, scope: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The credit score of a company, truck or driver the scope may see (None: unknown or not the tenant's)."""
    if kind not in ("company", "truck", "driver"):
        return None
    rec = m.state.tables[kind].get(key)
    if rec is None:
        return None
    sc = _Scope(m, scope)
    if sc.kind == "company" and not (
        (kind == "company" and key == sc.tenant) or (kind == "truck" and key in sc.trucks)
        or (kind == "driver" and key in sc.drivers)):
        return None
    if sc.kind == "org" and not ((kind == "truck" and key in sc.trucks)
                                 or (kind == "company" and key in _companies(sc))):
        return None
    if sc.kind == "truck":
        return None
    return {"kind": kind, "id": key, "credit": rec.credit, "suspended_until": time_text(rec.suspended_until or None),
            "company_id": getattr(rec, "company_id", None) if kind != "company" else key}


def _companies(sc: _Scope) -> set[str]:
    trucks: Iterable[Truck | None] = (sc.m.state.tables["truck"].get(t) for t in sc.trucks)
    return {t.company_id for t in trucks if t is not None}

