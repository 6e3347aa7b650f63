"""Violation rules: reports, rule-raised events, their handling steps, penalties and credit scores."""

from __future__ import annotations

from typing import Any

from ledger.eticket.errors import Refusal
from ledger.eticket.params import Env, Event, need
from ledger.eticket.records import Company, Counters, Driver, Org, Penalty, Project, Ticket, Truck, Violation, evolve
from ledger.eticket.schema import VIOLATION_TYPES
from ledger.eticket.state import Writes
from ledger.eticket.units import compact_local, iso, location_json

_NEXT = {
    "confirm": ("reported",),
    "dismiss": ("reported",),
    "dispatch": ("confirmed",),
    "resolve": ("dispatched",),
}


def new_violation_id(w: Writes, vtype: str, at: int) -> str:
    """Number a rule-raised violation: type prefix, local YYYYMMDDHHMMSS, 5-digit machine serial."""
    serial = w.counters().violation_serial
    while True:
        serial += 1
        vid = f"{VIOLATION_TYPES[vtype]}{compact_local(at)}{serial % 100000:05d}"
        if w.get("violation", vid) is None:
            break
    w.put("meta", "counters", Counters(violation_serial=serial))
    return vid


def subjects_of_ticket(w: Writes, ticket: Ticket) -> dict[str, Any]:
    """The truck, plate, company, driver, project, site and town a ticket's violation concerns."""
    truck: Truck | None = w.get("truck", ticket.truck_id)
    project: Project | None = w.get("project", ticket.project_id)
    return {
        "ticket_id": ticket.ticket_id,
        "truck_id": ticket.truck_id,
        "plate": truck.plate if truck else None,
        "company_id": truck.company_id if truck else None,
        "driver_id": ticket.driver_id,
        "project_id": ticket.project_id,
        "site_id": ticket.site_id,
        "town": project.town if project else None,
    }


def raise_violation(
    w: Writes, vtype: str, ticket: Ticket, at: int, where: tuple[int, int] | None, description: str
) -> Event:
    """Record a violation raised by a rule against ``ticket``'s trip; return its event."""
    vid = new_violation_id(w, vtype, at)
    v = Violation(
        vid,
        vtype,
        "rule",
        at,
        where[0] if where else None,
        where[1] if where else None,
        description=description,
        **subjects_of_ticket(w, ticket),
    )
    w.put("violation", vid, v)
    w.touch("ticket", ticket.ticket_id)
    w.touch("truck", ticket.truck_id)
    return {
        "event": "violation_raised",
        "violation_id": vid,
        "type": vtype,
        "ticket_id": ticket.ticket_id,
        "time": iso(at),
        "location": location_json(*where) if where else None,
    }


def violation_report(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """A camera, gate, patrol or member of the public reports a violation."""
    if w.get("violation", p["violation_id"]) is not None:
        raise Refusal("duplicate_id", f"violation={p['violation_id']}")
    subj: dict[str, Any] = {
        "ticket_id": None,
        "truck_id": None,
        "plate": p["plate"],
        "company_id": None,
        "driver_id": None,
        "project_id": p["project_id"],
        "site_id": p["site_id"],
        "town": p["town"],
    }
    if p["ticket_id"] is not None:
        ticket: Ticket = need(w.get("ticket", p["ticket_id"]), "unknown_ticket", f"ticket={p['ticket_id']}")
        subj.update({k: v for k, v in subjects_of_ticket(w, ticket).items() if v is not None})
    truck_id = p["truck_id"] or subj["truck_id"] or (w.state.plates.get(p["plate"]) if p["plate"] else None)
    if truck_id is not None:
        truck: Truck = need(w.get("truck", truck_id), "unknown_truck", f"truck={truck_id}")
        subj.update(truck_id=truck.truck_id, plate=truck.plate, company_id=truck.company_id)
    if subj["project_id"] is not None:
        project: Project = need(
            w.get("project", subj["project_id"]), "unknown_project", f"project={subj['project_id']}"
        )
        subj["town"] = subj["town"] or project.town
    if subj["site_id"] is not None:
        need(w.get("site", subj["site_id"]), "unknown_site", f"site={subj['site_id']}")
    lat, lon = p["location"] if p["location"] else (None, None)
    v = Violation(
        p["violation_id"],
        p["type"],
        p["source"],
        env.time,
        lat,
        lon,
        p["evidence"] or (),
        description=p["description"],
        **subj,
    )
    w.put("violation", v.violation_id, v)
    for kind in ("ticket", "truck", "project", "site"):
        w.touch(kind, subj[f"{kind}_id"])
    return [
        {
            "event": "violation_raised",
            "violation_id": v.violation_id,
            "type": v.type,
            "ticket_id": v.ticket_id,
            "time": iso(v.reported_at),
            "location": location_json(lat, lon),
        }
    ]


def _deduct(w: Writes, kind: str, key: str | None, points: int) -> None:
    rec: Truck | Company | Driver | None = w.get(kind, key)
    if rec is not None and points:
        w.put(kind, key or "", evolve(rec, credit=max(0, rec.credit - points)))


def violation_step(step: str) -> Any:
    """The handler of violation.confirm / dismiss / dispatch / resolve."""

    def handle(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
        v: Violation = need(
            w.get("violation", p["violation_id"]), "unknown_violation", f"violation={p['violation_id']}"
        )
        if v.state not in _NEXT[step]:
            raise Refusal("bad_state", f"violation={v.violation_id} state={v.state} step={step}")
        if step == "confirm":
            new = evolve(v, state="confirmed", confirmed_at=env.time, note=p["note"])
            points = env.params.credit_deductions.get(v.type, 0)
            _deduct(w, "truck", v.truck_id, points)
            _deduct(w, "company", v.company_id, points)
            _deduct(w, "driver", v.driver_id, points)
        elif step == "dismiss":
            new = evolve(v, state="dismissed", dismissed_at=env.time, note=p["note"])
        elif step == "dispatch":
            new = evolve(v, state="dispatched", dispatched_at=env.time, centre=p["centre"])
        else:
            new = evolve(v, state="resolved", resolved_at=env.time, result=p["result"])
        w.put("violation", v.violation_id, new)
        w.touch("ticket", v.ticket_id)
        w.touch("truck", v.truck_id)
        return [{"event": f"violation_{new.state}", "violation_id": v.violation_id}]

    return handle


def penalty_record(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """An enforcement officer records a penalty; ``suspend`` measures stop new tickets for N days."""
    kind, target_id = p["target_kind"], p["target_id"]
    table = {
        "contractor": ("org", "unknown_org"),
        "company": ("company", "unknown_company"),
        "truck": ("truck", "unknown_truck"),
        "driver": ("driver", "unknown_driver"),
    }[kind]
    target: Org | Company | Truck | Driver = need(w.get(table[0], target_id), table[1], f"{kind}={target_id}")
    if isinstance(target, Org) and target.kind != "contractor":
        raise Refusal("unknown_org", f"org={target_id} is not a contractor")
    vids: tuple[str, ...] = p["violation_ids"] or ()
    for vid in vids:
        v: Violation = need(w.get("violation", vid), "unknown_violation", f"violation={vid}")
        if v.state not in ("confirmed", "dispatched", "resolved"):
            raise Refusal("bad_state", f"violation={vid} state={v.state}")
    if w.get("penalty", p["penalty_id"]) is not None:
        raise Refusal("duplicate_id", f"penalty={p['penalty_id']}")
    measures = tuple((m["kind"], m["days"] or 0) for m in p["measures"] or ())
    days = max((d for k, d in measures if k == "suspend"), default=0)
    until = env.time + days * 86400 if days else None
    penalty = Penalty(
        p["penalty_id"],
        kind,
        target_id,
        vids,
        p["amount_yuan"],
        measures,
        env.time,
        until,
        p["credit_points"] or 0,
        p["decision_no"],
    )
    w.put("penalty", penalty.penalty_id, penalty)
    if until is not None:
        if isinstance(target, (Truck, Company)) and target.suspended_until <= env.time:
            target = evolve(target, suspended_since=env.time)
        target = evolve(target, suspended_until=max(target.suspended_until, until))
    if penalty.credit_points and not isinstance(target, Org):
        target = evolve(target, credit=max(0, target.credit - penalty.credit_points))
    w.put(table[0], target_id, target)
    for vid in vids:
        v = w.get("violation", vid)
        w.put("violation", vid, evolve(v, penalty_ids=(*v.penalty_ids, penalty.penalty_id)))
    return [
        {
            "event": "penalty_recorded",
            "penalty_id": penalty.penalty_id,
            "target_kind": kind,
            "target_id": target_id,
            "suspended_until": None if until is None else iso(until),
        }
    ]
