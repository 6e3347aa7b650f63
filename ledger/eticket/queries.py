"""Read-side queries for the API and the dashboard: plain JSON-ready dicts from a machine's state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ledger.core.builder import TxContext
from ledger.core.transaction import Transaction
from ledger.eticket import lists
from ledger.eticket.amendment_json import amendment_json, amendment_list
from ledger.eticket.camera_json import camera_json, sighting_json
from ledger.eticket.geo import in_alarm, pct_text, recommend
from ledger.eticket.machine import EticketMachine
from ledger.eticket.record_json import decision_json, penalty_json, site_json, time_text, violation_json
from ledger.eticket.records import Company, Driver, Penalty, Permit, Project, Site, Ticket, Truck, Violation
from ledger.eticket.units import iso, litres, location_json, m3_text, median

HISTORY_KINDS = (
    "org",
    "project",
    "site",
    "company",
    "truck",
    "driver",
    "permit",
    "ticket",
    "violation",
    "penalty",
)


def _get(m: EticketMachine, kind: str, key: str) -> Any:
    return m.state.tables[kind].get(key)


def ticket(m: EticketMachine, ticket_id: str) -> dict[str, Any] | None:
    """A ticket with its project, site, truck, trip summary, receipt and violations; None if unknown."""
    t: Ticket | None = _get(m, "ticket", ticket_id)
    if t is None:
        return None
    truck: Truck = _get(m, "truck", t.truck_id)
    project: Project = _get(m, "project", t.project_id)
    site: Site = _get(m, "site", t.site_id)
    return {
        "ticket_id": t.ticket_id,
        "state": t.state,
        "permit_id": t.permit_id,
        "project": {
            "project_id": project.project_id,
            "name": project.name,
            "contractor_org_id": project.contractor_org_id,
        },
        "site": {"site_id": site.site_id, "name": site.name, "kind": site.kind, "alarm": site.alarm},
        "truck": {"truck_id": truck.truck_id, "plate": truck.plate, "company_id": truck.company_id},
        "driver_id": t.driver_id,
        "volume_m3": m3_text(t.volume_l),
        "issued_at": iso(t.issued_at),
        "valid_until": iso(t.valid_until),
        "expected_minutes": t.expected_s // 60,
        "departed_at": time_text(t.departed_at),
        "exit_gate": t.exit_gate,
        "exit_photo": t.exit_photo,
        "received_at": time_text(t.received_at),
        "receipt_gate": t.receipt_gate,
        "measured_m3": None if t.measured_l is None else m3_text(t.measured_l),
        "weight_t": None if t.weight_kg is None else m3_text(t.weight_kg),
        "discrepancy": t.discrepancy,
        "closed_reason": t.closed_reason,
        "last_position": location_json(t.last_lat, t.last_lon),
        "last_position_at": time_text(t.last_t),
        "gps_points": t.points,
        "max_speed_kmh": f"{t.max_speed_dkmh // 10}.{t.max_speed_dkmh % 10}",
        "flags": list(t.flags),
        "violations": [v["violation_id"] for v in violations(m, ticket_id=t.ticket_id)],
    }


def permit(m: EticketMachine, permit_id: str) -> dict[str, Any] | None:
    """A permit with each configured department's decision (or "pending"), quota use and approval time."""
    p: Permit | None = _get(m, "permit", permit_id)
    if p is None:
        return None
    decided = {d.department: d for d in p.decisions}
    return {
        "permit_id": p.permit_id,
        "project_id": p.project_id,
        "contractor_org_id": p.contractor_org_id,
        "state": p.state,
        "quota_m3": m3_text(p.quota_l),
        "issued_m3": m3_text(p.issued_l),
        "remaining_m3": m3_text(max(0, p.quota_l - p.issued_l)),
        "tickets": p.tickets,
        "site_ids": list(p.site_ids),
        "truck_ids": list(p.truck_ids),
        # the plates with the ids: the API shows plates, and one query beats one per truck
        "truck_plates": [_plate(m, t) for t in p.truck_ids],
        "company_ids": list(p.company_ids),
        "valid_from": iso(p.valid_from),
        "valid_to": iso(p.valid_to),
        "applied_at": iso(p.applied_at),
        "decided_at": time_text(p.decided_at),
        "approval_seconds": p.approval_s,
        "closed_reason": p.closed_reason,
        "route": [location_json(lat, lon) for lat, lon in p.route],
        "decisions": [decision_json(dept, decided.get(dept)) for dept in p.departments],
    }


def project(m: EticketMachine, project_id: str) -> dict[str, Any] | None:
    """A project with its permits and ticket totals."""
    pr: Project | None = _get(m, "project", project_id)
    if pr is None:
        return None
    ids = m.state.tickets_by.get(f"project:{project_id}", [])
    tickets = [m.state.tables["ticket"][i] for i in ids]
    permits = sorted(p.permit_id for p in m.state.tables["permit"].values() if p.project_id == project_id)
    return {
        "project_id": pr.project_id,
        "name": pr.name,
        "contractor_org_id": pr.contractor_org_id,
        "location": location_json(pr.lat, pr.lon),
        "address": pr.address,
        "district": pr.district,
        "town": pr.town,
        "planned_volume_m3": m3_text(pr.planned_l),
        "permits": permits,
        "tickets": len(tickets),
        "received_m3": m3_text(sum(t.measured_l or 0 for t in tickets if t.state == "received")),
    }


def truck(m: EticketMachine, truck_id: str, *, at: int | None = None) -> dict[str, Any] | None:
    """A truck with company, credit, suspension (as of ``at``, default: last block time) and open ticket."""
    tr: Truck | None = _get(m, "truck", truck_id)
    if tr is None:
        return None
    now = m.now if at is None else at
    company: Company | None = _get(m, "company", tr.company_id)
    until = max(tr.suspended_until, company.suspended_until if company else 0)
    return {
        "truck_id": tr.truck_id,
        "plate": tr.plate,
        "company_id": tr.company_id,
        "capacity_m3": m3_text(tr.capacity_l),
        "status": tr.status,
        "terminal_id": tr.terminal_id,
        "credit": tr.credit,
        "suspended": until > now,
        "suspended_until": time_text(until) if until else None,
        "open_ticket": m.state.departed_by_truck.get(truck_id),
        "tickets": len(m.state.tickets_by.get(f"truck:{truck_id}", [])),
    }


def _plate(m: EticketMachine, truck_id: str) -> str:
    tr: Truck | None = _get(m, "truck", truck_id)
    return tr.plate if tr is not None else truck_id


def truck_ids_by_plate(m: EticketMachine, plates: list[str]) -> dict[str, str | None]:
    """``{plate: truck_id or None}`` for many plates in one query."""
    return {p: m.state.plates.get(p) for p in plates}


def trucks_by_plate(m: EticketMachine, plates: list[str]) -> dict[str, dict[str, Any] | None]:
    """``{plate: {"truck_id", "terminal_id"} or None}`` for many plates in one query (device provisioning)."""
    found = {p: _get(m, "truck", m.state.plates[p]) if p in m.state.plates else None for p in plates}
    return {p: None if tr is None else {"truck_id": tr.truck_id, "terminal_id": tr.terminal_id}
            for p, tr in found.items()}


def truck_by_plate(m: EticketMachine, plate: str) -> dict[str, Any] | None:
    """The truck registered with ``plate``, or None."""
    truck_id = m.state.plates.get(plate)
    return None if truck_id is None else truck(m, truck_id)


def site(m: EticketMachine, site_id: str) -> dict[str, Any] | None:
    """A disposal site with its load rate (负荷率), alarm and room."""
    s: Site | None = _get(m, "site", site_id)
    return None if s is None else site_json(s)


def sites(m: EticketMachine) -> list[dict[str, Any]]:
    """Every disposal site in id order (the load-rate board)."""
    return [site_json(s) for s in m.state.records("site")]


def recommend_sites(
    m: EticketMachine,
    project_id: str,
    volume_m3: str | int | float,
    *,
    kinds: Iterable[str] | None = None,
    exclude: str | None = None,
    limit: int = 5,
) -> list[dict[str, Any]]:
    """Sites with room for the volume that stay under their alarm threshold, nearest to the project first."""
    pr: Project | None = _get(m, "project", project_id)
    if pr is None:
        return []
    vol = litres(volume_m3, what="volume_m3")
    return recommend(m.state.records("site"), (pr.lat, pr.lon), vol, exclude=exclude, kinds=kinds, limit=limit)


def violations(
    m: EticketMachine,
    *,
    type: str | None = None,
    state: str | None = None,
    ticket_id: str | None = None,
    truck_id: str | None = None,
    plate: str | None = None,
    company_id: str | None = None,
    project_id: str | None = None,
    site_id: str | None = None,
    town: str | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Violations matching every given filter, newest first (ties by id); ``since``/``until`` in epoch s."""
    want = {
        "type": type,
        "state": state,
        "ticket_id": ticket_id,
        "truck_id": truck_id,
        "plate": plate,
        "company_id": company_id,
        "project_id": project_id,
        "site_id": site_id,
        "town": town,
    }
    want = {k: v for k, v in want.items() if v is not None}
    found = [
        v
        for v in m.state.tables["violation"].values()
        if all(getattr(v, k) == val for k, val in want.items())
        and (since is None or v.reported_at >= since)
        and (until is None or v.reported_at < until)
    ]
    found.sort(key=lambda v: (-v.reported_at, v.violation_id))
    return [violation_json(v) for v in found[offset : offset + limit]]


def violation(m: EticketMachine, violation_id: str) -> dict[str, Any] | None:
    """One violation, or None."""
    v: Violation | None = _get(m, "violation", violation_id)
    return None if v is None else violation_json(v)


def camera(m: EticketMachine, camera_id: str) -> dict[str, Any] | None:
    """A camera's placement, or None."""
    c = _get(m, "camera", camera_id)
    return None if c is None else camera_json(c)


def sighting(m: EticketMachine, sighting_id: str) -> dict[str, Any] | None:
    """A camera sighting with its state and the events it raised, or None."""
    s = _get(m, "sighting", sighting_id)
    return None if s is None else sighting_json(s, [_get(m, "violation", v) for v in s.violations])


def penalties(
    m: EticketMachine,
    *,
    target_kind: str | None = None,
    target_id: str | None = None,
    violation_id: str | None = None,
) -> list[dict[str, Any]]:
    """Penalties matching the filters, by time then id."""
    out: list[Penalty] = [
        p
        for p in m.state.tables["penalty"].values()
        if (target_kind is None or p.target_kind == target_kind)
        and (target_id is None or p.target_id == target_id)
        and (violation_id is None or violation_id in p.violation_ids)
    ]
    out.sort(key=lambda p: (p.time, p.penalty_id))
    return [penalty_json(p) for p in out]


def credit(m: EticketMachine, kind: str, key: str) -> int | None:
    """The credit score of a company, truck or driver (None if unknown)."""
    if kind not in ("company", "truck", "driver"):
        return None
    rec: Company | Truck | Driver | None = _get(m, kind, key)
    return None if rec is None else rec.credit


def credit_scores(m: EticketMachine, kind: str) -> list[dict[str, Any]]:
    """Every company, truck or driver with its credit score, lowest first (ties by id)."""
    if kind not in ("company", "truck", "driver"):
        return []
    rows = sorted(m.state.tables[kind].items(), key=lambda kv: (kv[1].credit, kv[0]))
    return [{"kind": kind, "id": k, "credit": r.credit} for k, r in rows]


def history(m: EticketMachine, kind: str, key: str) -> list[str]:
    """Ids (hex) of the valid transactions that touched the object, in chain order (for Merkle proofs)."""
    if kind not in HISTORY_KINDS:
        return []
    return [raw.hex() for raw in m.state.history.get(f"{kind}:{key}", [])]


def object_proof(m: EticketMachine, kind: str, key: str, height: int) -> dict[str, Any] | None:
    """The object's ``(count, head)`` after the block at ``height`` with its inclusion proof in the object map
    (:meth:`ledger.eticket.heads.ObjectHeads.proof_at`), or None if it had no record by then."""
    if kind not in HISTORY_KINDS:
        return None
    return m.state.heads.proof_at(f"{kind}:{key}", int(height))


def tickets_of(m: EticketMachine, kind: str, key: str) -> list[str]:
    """Ticket ids of a project, truck or permit, in issue order."""
    return list(m.state.tickets_by.get(f"{kind}:{key}", []))


def statistics(m: EticketMachine) -> dict[str, Any]:
    """City-wide figures: tickets, coverage, utilisation rate (综合利用率), violations, handling times."""
    st = m.state
    tickets = st.tables["ticket"].values()
    by_state: dict[str, int] = {}
    projects: set[str] = set()
    trucks: set[str] = set()
    site_ids: set[str] = set()
    for t in tickets:
        by_state[t.state] = by_state.get(t.state, 0) + 1
        projects.add(t.project_id)
        trucks.add(t.truck_id)
        site_ids.add(t.site_id)
    received = reused = 0
    for s in st.tables["site"].values():
        received += s.received_l
        if s.kind in ("recycling", "backfill"):
            reused += s.received_l
    by_type: dict[str, int] = {}
    handling: list[int] = []
    for v in st.tables["violation"].values():
        by_type[v.type] = by_type.get(v.type, 0) + 1
        if v.resolved_at is not None:
            handling.append(v.resolved_at - v.reported_at)
    approvals = [p.approval_s for p in st.tables["permit"].values() if p.approval_s is not None]
    return {
        "tickets_issued": len(st.tables["ticket"]),
        "tickets_by_state": dict(sorted(by_state.items())),
        "projects": len(st.tables["project"]),
        "projects_covered": len(projects),
        "trucks": len(st.tables["truck"]),
        "trucks_covered": len(trucks),
        "sites": len(st.tables["site"]),
        "sites_covered": len(site_ids),
        "received_m3": m3_text(received),
        "reused_m3": m3_text(reused),
        "utilisation_rate_pct": pct_text(reused * 10000 // received) if received else None,
        "violations": len(st.tables["violation"]),
        "violations_by_type": dict(sorted(by_type.items())),
        "permits": len(st.tables["permit"]),
        "median_approval_seconds": median(approvals),
        "median_violation_handling_seconds": median(handling),
    }


def on_the_road(m: EticketMachine, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Departed tickets (trucks on the road): truck, route ends and last GPS position, oldest departure first.

    ``overdue`` compares the expected arrival with the last block time (the machine's "now").
    """
    rows: list[Ticket] = [m.state.tables["ticket"][i] for i in m.state.open_departed]
    rows.sort(key=lambda t: (t.departed_at or 0, t.ticket_id))
    out: list[dict[str, Any]] = []
    for t in rows[: max(0, limit)]:
        truck_rec: Truck | None = _get(m, "truck", t.truck_id)
        due = None if t.departed_at is None else t.departed_at + t.expected_s
        out.append(
            {
                "ticket_id": t.ticket_id,
                "truck_id": t.truck_id,
                "plate": truck_rec.plate if truck_rec is not None else None,
                "project_id": t.project_id,
                "site_id": t.site_id,
                "volume_m3": m3_text(t.volume_l),
                "departed_at": time_text(t.departed_at),
                "due_at": time_text(due),
                "overdue": due is not None and m.now > due,
                "last_position": location_json(t.last_lat, t.last_lon),
                "last_position_at": time_text(t.last_t),
                "flags": list(t.flags),
            }
        )
    return out


def projects(m: EticketMachine) -> list[dict[str, Any]]:
    """Every project in id order with its location (for the dashboard's map)."""
    return [
        {
            "project_id": p.project_id,
            "name": p.name,
            "contractor_org_id": p.contractor_org_id,
            "location": location_json(p.lat, p.lon),
            "district": p.district,
            "town": p.town,
        }
        for p in m.state.records("project")
    ]


OPEN_VIOLATION_STATES = ("reported", "confirmed", "dispatched")


def live_counts(m: EticketMachine, since: int) -> dict[str, Any]:
    """The governance screen's counters: tickets issued since ``since`` (epoch s), trucks on the road,
    open violations (not dismissed or resolved) by state, sites in alarm; ``as_of`` is the last block time."""
    tickets_since = sum(1 for t in m.state.tables["ticket"].values() if t.issued_at >= since)
    open_by_state = {s: 0 for s in OPEN_VIOLATION_STATES}
    for v in m.state.tables["violation"].values():
        if v.state in open_by_state:
            open_by_state[v.state] += 1
    return {
        "since": iso(since),
        "as_of": time_text(m.now) if m.now else None,
        "tickets_since": tickets_since,
        "on_the_road": len(m.state.open_departed),
        "open_violations": sum(open_by_state.values()),
        "open_violations_by_state": open_by_state,
        "sites_in_alarm": sum(1 for s in m.state.tables["site"].values() if in_alarm(s)),
    }


def site_alternatives(
    m: EticketMachine,
    site_id: str,
    volume_m3: str | int | float = "20",
    *,
    kinds: Iterable[str] | None = None,
    limit: int = 3,
) -> list[dict[str, Any]]:
    """Other sites with room for ``volume_m3`` that stay under their alarm, nearest to ``site_id`` first.

    What the screen offers when a site reaches its alarm (快速匹配新的消纳场); [] for an unknown site.
    """
    s: Site | None = _get(m, "site", site_id)
    if s is None:
        return []
    vol = litres(volume_m3, what="volume_m3")
    return recommend(m.state.records("site"), (s.lat, s.lon), vol, exclude=site_id, kinds=kinds, limit=limit)


def preview(m: EticketMachine, tx: Any) -> dict[str, Any]:
    """The verdict the rules would give a signed transaction (a ``Transaction.to_dict``) ordered now.

    The transaction passes the admission checks first (shape, signer's membership and role, signature:
    ``Transaction.check``, then :meth:`EticketMachine.admit`); its own timestamp stands for the block time,
    so the answer depends only on the state and the transaction.  Nothing changes; the verdict that counts
    is the one the ordered block gives.  Answers ``{"tx_id", "code", "message", "events"}`` with ``code``
    ``"valid"`` or a reason code.
    """
    t = Transaction.from_dict(tx)
    signer = t.check(m.consortium)
    m.admit(t, m.consortium)
    ctx = TxContext(height=0, position=0, block_time=t.time, tx_id=t.tx_id, signer=signer, consortium=m.consortium)
    out = m.preview(t, ctx)
    return {"tx_id": t.tx_id, "code": out.code, "message": out.message, "events": list(out.events)}


def list_page(m: EticketMachine, kind: str, **kwargs: Any) -> dict[str, Any]:
    """One page of a work list (``ledger.eticket.lists.page``: keyset cursor, tenant scope, filters)."""
    try:
        return lists.page(m, kind, **kwargs)
    except lists.ListArgumentError as exc:
        raise TypeError(str(exc)) from exc


def credit_of(m: EticketMachine, kind: str, key: str, scope: dict[str, str] | None = None) -> dict[str, Any] | None:
    """A company's, truck's or driver's credit score as the scope may see it (``ledger.eticket.lists.credit``)."""
    return lists.credit(m, kind, key, scope=scope)


def amendment(m: EticketMachine, amendment_id: str) -> dict[str, Any] | None:
    """A permit amendment with the concerned departments' decisions; None if unknown."""
    a = _get(m, "amendment", amendment_id)
    return None if a is None else amendment_json(a)


def amendments(m: EticketMachine, *, permit_id: str | None = None, awaiting: str | None = None,
               contractor: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Amendments oldest first, by permit, contractor and/or a department's queue (``awaiting``)."""
    return amendment_list(m.state, permit_id=permit_id, awaiting=awaiting, contractor=contractor, limit=limit)
