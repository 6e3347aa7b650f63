"""Permit rules: application, parallel department decisions, revocation and expiry."""

from __future__ import annotations

from typing import Any

from ledger.eticket.errors import Refusal
from ledger.eticket.params import Env, Event, need
from ledger.eticket.records import Decision, Org, Permit, Project, evolve


def contractor_active(org: Org | None, at: int) -> None:
    """Refuse with ``contractor_suspended`` while the contractor's suspension runs."""
    if org is not None and org.suspended_until > at:
        raise Refusal("contractor_suspended", f"org={org.org_id} until={org.suspended_until}")


def permit_apply(w: Any, p: dict[str, Any], env: Env) -> list[Event]:
    """A contractor applies for a permit; departments are frozen from the parameters."""
    project: Project = need(w.get("project", p["project_id"]), "unknown_project", f"project={p['project_id']}")
    env.require_own("contractor", project.contractor_org_id, "project contractor")
    contractor_active(w.get("org", project.contractor_org_id), env.time)
    for site_id in p["site_ids"]:
        need(w.get("site", site_id), "unknown_site", f"site={site_id}")
    for truck_id in p["truck_ids"] or ():
        need(w.get("truck", truck_id), "unknown_truck", f"truck={truck_id}")
    for company_id in p["company_ids"] or ():
        need(w.get("company", company_id), "unknown_company", f"company={company_id}")
    if w.get("permit", p["permit_id"]) is not None:
        raise Refusal("duplicate_id", f"permit={p['permit_id']}")
    permit = Permit(
        permit_id=p["permit_id"],
        project_id=project.project_id,
        contractor_org_id=project.contractor_org_id,
        quota_l=p["volume_m3"],
        site_ids=p["site_ids"],
        truck_ids=p["truck_ids"] or (),
        company_ids=p["company_ids"] or (),
        valid_from=p["valid_from"],
        valid_to=p["valid_to"],
        route=p["route"] or (),
        departments=env.params.departments,
        applied_at=env.time,
    )
    w.put("permit", permit.permit_id, permit)
    w.touch("project", project.project_id)
    return [{"event": "permit_applied", "permit_id": permit.permit_id, "departments": list(permit.departments)}]


def permit_decide(w: Any, p: dict[str, Any], env: Env) -> list[Event]:
    """One department decides; all approvals → approved, any rejection → rejected."""
    dept = p["department"]
    if env.actor_arg(0) != dept:
        raise Refusal("forbidden", f"actor={env.actor} department={dept}")
    roles = env.signer.roles
    if "approver" in roles and "gateway" not in roles and env.signer.name != dept:
        raise Refusal("forbidden", f"signer={env.signer.name} department={dept}")
    permit: Permit = need(w.get("permit", p["permit_id"]), "unknown_permit", f"permit={p['permit_id']}")
    if dept not in permit.departments:
        raise Refusal("unknown_department", f"department={dept} permit={permit.permit_id}")
    if permit.state != "pending":
        raise Refusal("permit_closed", f"permit={permit.permit_id} state={permit.state}")
    if any(d.department == dept for d in permit.decisions):
        raise Refusal("already_decided", f"permit={permit.permit_id} department={dept}")
    decision = Decision(dept, p["decision"], env.time, env.actor, p["reason"], p.get("act_key"))
    decisions = tuple(sorted((*permit.decisions, decision), key=lambda d: permit.departments.index(d.department)))
    events: list[Event] = []
    if p["decision"] == "reject":
        permit = evolve(permit, decisions=decisions, state="rejected", decided_at=env.time, closed_reason=p["reason"])
        events.append(
            {
                "event": "permit_rejected",
                "permit_id": permit.permit_id,
                "department": dept,
                "reason": p["reason"],
            }
        )
    elif len(decisions) == len(permit.departments):
        last = max(d.time for d in decisions)
        permit = evolve(
            permit,
            decisions=decisions,
            state="approved",
            decided_at=last,
            approval_s=max(0, last - permit.applied_at),
        )
        events.append(
            {"event": "permit_approved", "permit_id": permit.permit_id, "approval_seconds": permit.approval_s}
        )
    else:
        permit = evolve(permit, decisions=decisions)
    w.put("permit", permit.permit_id, permit)
    return events


def permit_revoke(w: Any, p: dict[str, Any], env: Env) -> list[Event]:
    """Revoke a pending or approved permit; its issued tickets can no longer leave a site."""
    permit: Permit = need(w.get("permit", p["permit_id"]), "unknown_permit", f"permit={p['permit_id']}")
    if permit.state not in ("pending", "approved"):
        raise Refusal("permit_closed", f"permit={permit.permit_id} state={permit.state}")
    w.put(
        "permit",
        permit.permit_id,
        evolve(permit, state="revoked", closed_reason=p["reason"], decided_at=permit.decided_at or env.time,
               revoked_at=env.time),
    )
    return [{"event": "permit_revoked", "permit_id": permit.permit_id}]


def expire_permits(w: Any, permits: list[Permit], now: int) -> list[Event]:
    """Turn pending/approved permits whose window has ended into ``expired`` (system.tick)."""
    events: list[Event] = []
    for permit in permits:
        if permit.state in ("pending", "approved") and permit.valid_to < now:
            w.put("permit", permit.permit_id, evolve(permit, state="expired", closed_reason="valid_to passed"))
            events.append({"event": "permit_expired", "permit_id": permit.permit_id})
    return events
