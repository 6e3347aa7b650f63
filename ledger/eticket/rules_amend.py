"""Permit amendments: a contractor asks to add disposal sites, trucks or companies to an approved permit; the
departments concerned (parameter ``amend_departments``) decide in parallel, and the permit grows once every
one approved (any rejection closes the amendment)."""

from __future__ import annotations

from typing import Any

from ledger.eticket.errors import Refusal
from ledger.eticket.params import Env, Event, need
from ledger.eticket.records import Amendment, Decision, Permit, evolve
from ledger.eticket.rules_permit import contractor_active
from ledger.eticket.units import iso


def concerned(env: Env, permit: Permit, sites: bool, trucks: bool) -> tuple[str, ...]:
    """The permit's departments concerned by what the amendment adds, in the permit's order (all of them when
    the parameter names none of the permit's)."""
    table = dict(env.params.amend_departments)
    wanted = set(table.get("sites", ()) if sites else ()) | set(table.get("trucks", ()) if trucks else ())
    return tuple(d for d in permit.departments if d in wanted) or permit.departments


def _new(items: tuple[str, ...] | None, have: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(i for i in items or () if i not in have)


def permit_amend(w: Any, p: dict[str, Any], env: Env) -> list[Event]:
    """Request an amendment of an approved permit in force; only what the permit lacks is kept."""
    permit: Permit = need(w.get("permit", p["permit_id"]), "unknown_permit", f"permit={p['permit_id']}")
    env.require_own("contractor", permit.contractor_org_id, "permit contractor")
    contractor_active(w.get("org", permit.contractor_org_id), env.time)
    if permit.state != "approved" or env.time > permit.valid_to:
        raise Refusal("permit_closed", f"permit={permit.permit_id} state={permit.state}")
    if w.get("amendment", p["amendment_id"]) is not None:
        raise Refusal("duplicate_id", f"amendment={p['amendment_id']}")
    sites = _new(p["add_site_ids"], permit.site_ids)
    trucks = _new(p["add_truck_ids"], permit.truck_ids)
    companies = _new(p["add_company_ids"], permit.company_ids)
    for site_id in sites:
        need(w.get("site", site_id), "unknown_site", f"site={site_id}")
    for truck_id in trucks:
        need(w.get("truck", truck_id), "unknown_truck", f"truck={truck_id}")
    for company_id in companies:
        need(w.get("company", company_id), "unknown_company", f"company={company_id}")
    if not (sites or trucks or companies):
        raise Refusal("bad_state", f"permit={permit.permit_id} already has every site, truck and company asked")
    depts = concerned(env, permit, bool(sites), bool(trucks or companies))
    amendment = Amendment(p["amendment_id"], permit.permit_id, permit.contractor_org_id, sites, trucks, companies,
                          depts, env.time, env.actor, p["reason"])
    w.put("amendment", amendment.amendment_id, amendment)
    w.touch("permit", permit.permit_id)
    return [{"event": "amendment_requested", "amendment_id": amendment.amendment_id, "permit_id": permit.permit_id,
             "departments": list(depts)}]


def permit_amend_decide(w: Any, p: dict[str, Any], env: Env) -> list[Event]:
    """One concerned department decides; the last approval applies the amendment to the permit."""
    dept = p["department"]
    if env.actor_arg(0) != dept:
        raise Refusal("forbidden", f"actor={env.actor} department={dept}")
    roles = env.signer.roles
    if "approver" in roles and "gateway" not in roles and env.signer.name != dept:
        raise Refusal("forbidden", f"signer={env.signer.name} department={dept}")
    a: Amendment = need(w.get("amendment", p["amendment_id"]), "unknown_amendment",
                        f"amendment={p['amendment_id']}")
    if dept not in a.departments:
        raise Refusal("unknown_department", f"department={dept} amendment={a.amendment_id}")
    if a.state != "pending":
        raise Refusal("permit_closed", f"amendment={a.amendment_id} state={a.state}")
    if any(d.department == dept for d in a.decisions):
        raise Refusal("already_decided", f"amendment={a.amendment_id} department={dept}")
    permit: Permit = w.get("permit", a.permit_id)
    decisions = tuple(sorted((*a.decisions, Decision(dept, p["decision"], env.time, env.actor, p["reason"],
                                                          p.get("act_key"))),
                             key=lambda d: a.departments.index(d.department)))
    events: list[Event] = []
    if p["decision"] == "reject":
        a = evolve(a, decisions=decisions, state="rejected", decided_at=env.time)
        events.append({"event": "amendment_rejected", "amendment_id": a.amendment_id, "permit_id": a.permit_id,
                       "department": dept, "reason": p["reason"]})
    elif len(decisions) == len(a.departments):
        if permit.state != "approved" or env.time > permit.valid_to:
            raise Refusal("permit_closed", f"permit={permit.permit_id} state={permit.state}")
        a = evolve(a, decisions=decisions, state="applied", decided_at=env.time)
        w.put("permit", permit.permit_id, evolve(
            permit,
            site_ids=(*permit.site_ids, *_new(a.site_ids, permit.site_ids)),
            truck_ids=(*permit.truck_ids, *_new(a.truck_ids, permit.truck_ids)),
            company_ids=(*permit.company_ids, *_new(a.company_ids, permit.company_ids)),
        ))
        events.append({"event": "amendment_applied", "amendment_id": a.amendment_id, "permit_id": a.permit_id,
                       "time": iso(env.time)})
    else:
        a = evolve(a, decisions=decisions)
    w.put("amendment", a.amendment_id, a)
    w.touch("permit", a.permit_id)
    return events
