"""Ticket rules: issue, void, site exit, disposal receipt and expiry."""

from __future__ import annotations

from typing import Any

from ledger.eticket.errors import Refusal
from ledger.eticket.geo import distance_m, in_alarm, load_rate_bp, pct_text, recommend
from ledger.eticket.params import Env, Event, need
from ledger.eticket.records import Company, Driver, Permit, Project, Site, Ticket, Truck, evolve
from ledger.eticket.rules_permit import contractor_active
from ledger.eticket.rules_revoked import (
    offline_exit_after_revocation,
    offline_exit_after_void,
    revoked_at_scan,
    revoked_before,
)
from ledger.eticket.rules_roads import check_hours
from ledger.eticket.rules_violation import raise_violation
from ledger.eticket.state import Writes
from ledger.eticket.units import iso, location_json, m3_text


def truck_active(w: Writes, truck: Truck, at: int) -> None:
    """Refuse with ``truck_suspended`` while the truck or its company is suspended."""
    if truck.suspended_until > at:
        raise Refusal("truck_suspended", f"truck={truck.truck_id} until={iso(truck.suspended_until)}")
    company: Company | None = w.get("company", truck.company_id)
    if company is not None and company.suspended_until > at:
        raise Refusal("truck_suspended", f"company={company.company_id} until={iso(company.suspended_until)}")


def permit_in_force(permit: Permit, at: int) -> None:
    """Refuse unless the permit is approved and ``at`` is inside its window."""
    if permit.state == "expired" or (permit.state == "approved" and at > permit.valid_to):
        raise Refusal("expired", f"permit={permit.permit_id} valid_to={iso(permit.valid_to)}")
    if permit.state != "approved":
        raise Refusal("permit_not_approved", f"permit={permit.permit_id} state={permit.state}")
    if at < permit.valid_from:
        raise Refusal("permit_not_approved", f"permit={permit.permit_id} valid_from={iso(permit.valid_from)}")


def ticket_issue(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """Issue a single-use ticket for one trip; see docs/ETICKET.md for the order of the checks."""
    at, vol = env.time, p["volume_m3"]
    permit: Permit = need(w.get("permit", p["permit_id"]), "unknown_permit", f"permit={p['permit_id']}")
    env.require_own("contractor", permit.contractor_org_id, "permit contractor")
    contractor_active(w.get("org", permit.contractor_org_id), at)
    permit_in_force(permit, at)
    truck: Truck = need(w.get("truck", p["truck_id"]), "unknown_truck", f"truck={p['truck_id']}")
    if truck.status != "active":
        raise Refusal("truck_retired", f"truck={truck.truck_id}")
    if truck.truck_id not in permit.truck_ids and truck.company_id not in permit.company_ids:
        raise Refusal("wrong_truck", f"truck={truck.truck_id} permit={permit.permit_id}")
    truck_active(w, truck, at)
    if vol > truck.capacity_l:
        raise Refusal("over_capacity", f"volume={m3_text(vol)} capacity={m3_text(truck.capacity_l)}")
    busy = w.state.departed_by_truck.get(truck.truck_id)
    if busy is not None:
        raise Refusal("truck_busy", f"truck={truck.truck_id} ticket={busy}")
    if p["driver_id"] is not None:
        driver: Driver = need(w.get("driver", p["driver_id"]), "unknown_driver", f"driver={p['driver_id']}")
        if driver.suspended_until > at:
            raise Refusal("driver_suspended", f"driver={driver.driver_id} until={iso(driver.suspended_until)}")
    site: Site = need(w.get("site", p["site_id"]), "unknown_site", f"site={p['site_id']}")
    if site.site_id not in permit.site_ids:
        raise Refusal("wrong_site", f"site={site.site_id} permit={permit.permit_id}")
    if site.load_l + site.pending_l + vol > site.capacity_l:
        raise Refusal(
            "site_full",
            f"site={site.site_id} room={m3_text(max(0, site.capacity_l - site.load_l - site.pending_l))}",
        )
    warning = site_alarm_check(w, permit, site, vol, env)
    if permit.issued_l + vol > permit.quota_l:
        raise Refusal(
            "quota_exceeded",
            f"permit={permit.permit_id} issued={m3_text(permit.issued_l)} quota={m3_text(permit.quota_l)}",
        )
    if w.get("ticket", p["ticket_id"]) is not None:
        raise Refusal("duplicate_id", f"ticket={p['ticket_id']}")
    expected = p["expected_minutes"] * 60 if p["expected_minutes"] else expected_seconds(w, permit, site, env)
    ticket = Ticket(
        p["ticket_id"],
        permit.permit_id,
        permit.project_id,
        truck.truck_id,
        site.site_id,
        vol,
        at,
        min(at + env.params.ticket_validity_s, permit.valid_to),
        expected,
        p["driver_id"],
    )
    w.put("ticket", ticket.ticket_id, ticket)
    w.put(
        "permit",
        permit.permit_id,
        evolve(permit, issued_l=permit.issued_l + vol, tickets=permit.tickets + 1),
    )
    w.put("site", site.site_id, evolve(site, pending_l=site.pending_l + vol))
    w.touch("truck", truck.truck_id)
    w.touch("project", permit.project_id)
    w.touch("driver", p["driver_id"])
    issued: Event = {"event": "ticket_issued", "ticket_id": ticket.ticket_id, "valid_until": iso(ticket.valid_until)}
    return [issued, warning] if warning else [issued]


def site_alarm_check(w: Writes, permit: Permit, site: Site, vol: int, env: Env) -> Event | None:
    """A site at its alarm threshold: refuse ``site_alarm`` (policy ``refuse``) or return a warning event
    (policy ``warn``); either names the recommended sites (:func:`recommended_sites`)."""
    if not in_alarm(site):
        return None
    recommended = recommended_sites(w, permit, site, vol)
    event: Event = {
        "event": "site_alarm",
        "site_id": site.site_id,
        "load_rate_pct": pct_text(load_rate_bp(site)),
        "recommended_sites": recommended,
    }
    if env.params.site_alarm_policy == "refuse":
        names = ",".join(r["site_id"] for r in recommended) or "-"
        raise Refusal("site_alarm", f"site={site.site_id} load_rate_pct={event['load_rate_pct']} recommended={names}",
                      events=(event,))
    return event


def recommended_sites(w: Writes, permit: Permit, site: Site, vol: int) -> list[dict[str, Any]]:
    """Other sites with room for ``vol`` under their alarm, nearest to the project first (ties by id), each
    marked ``on_permit`` (usable at once) or not (needs the permit amended)."""
    project: Project | None = w.get("project", permit.project_id)
    origin = (project.lat, project.lon) if project else (site.lat, site.lon)
    found = recommend(w.state.records("site"), origin, vol, exclude=site.site_id)
    return [{**r, "on_permit": r["site_id"] in permit.site_ids} for r in found]


def expected_seconds(w: Writes, permit: Permit, site: Site, env: Env) -> int:
    """Expected trip time: 1.4 × the straight line at ``avg_speed_kmh``, at least ``min_trip_minutes``."""
    project: Project | None = w.get("project", permit.project_id)
    if project is None:
        return env.params.min_trip_s
    metres = distance_m((project.lat, project.lon), (site.lat, site.lon))
    return max(env.params.min_trip_s, metres * 14 * 3600 // (10 * 1000 * env.params.avg_speed_kmh))


def _release(w: Writes, ticket: Ticket) -> None:
    """Give an unused ticket's volume back to its permit's quota and its site's room."""
    permit: Permit = w.get("permit", ticket.permit_id)
    w.put("permit", permit.permit_id, evolve(permit, issued_l=permit.issued_l - ticket.volume_l))
    site: Site = w.get("site", ticket.site_id)
    w.put("site", site.site_id, evolve(site, pending_l=site.pending_l - ticket.volume_l))


_STATE_CODES = {
    "voided": "voided",
    "received": "already_received",
    "departed": "already_departed",
    "expired": "expired",
}


def ticket_void(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """Void an issued ticket (by its contractor or an operator)."""
    ticket: Ticket = need(w.get("ticket", p["ticket_id"]), "unknown_ticket", f"ticket={p['ticket_id']}")
    permit: Permit = w.get("permit", ticket.permit_id)
    env.require_own("contractor", permit.contractor_org_id, "ticket contractor")
    if ticket.state != "issued":
        raise Refusal(_STATE_CODES[ticket.state], f"ticket={ticket.ticket_id} state={ticket.state}")
    w.put("ticket", ticket.ticket_id, evolve(ticket, state="voided", closed_reason=p["reason"], voided_at=env.time))
    _release(w, ticket)
    return [{"event": "ticket_voided", "ticket_id": ticket.ticket_id}]


def gate_exit(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """The site-exit gate scans the ticket, reads the plate and checks the cover."""
    at = env.time
    ticket: Ticket = need(w.get("ticket", p["ticket_id"]), "unknown_ticket", f"ticket={p['ticket_id']}")
    if env.actor_kind == "gate":
        if env.actor_arg(0) != "exit":
            raise Refusal("forbidden", f"actor={env.actor} is not a site-exit gate")
        if env.actor_arg(1) != ticket.project_id:
            raise Refusal("wrong_project", f"gate={env.actor_arg(1)} ticket_project={ticket.project_id}")
    if p.get("offline") and revoked_before(ticket, at):
        return offline_exit_after_void(w, ticket, p, env)
    if ticket.state != "issued":
        raise Refusal(_STATE_CODES[ticket.state], f"ticket={ticket.ticket_id} state={ticket.state}")
    if at > ticket.valid_until:
        raise Refusal("expired", f"ticket={ticket.ticket_id} valid_until={iso(ticket.valid_until)}")
    truck: Truck = w.get("truck", ticket.truck_id)
    if p["plate"] != truck.plate:
        raise Refusal("wrong_truck", f"plate={p['plate']} ticket_plate={truck.plate}")
    permit: Permit = w.get("permit", ticket.permit_id)
    # An offline scan is judged by what the gate could know at its time: a revocation before it is a
    # violation (the exit is still recorded), one after it changes nothing.
    revoked = revoked_at_scan(w, truck, permit, at) if p.get("offline") else None
    if not p.get("offline"):
        truck_active(w, truck, at)
    # Two tickets may be issued to one truck before either is used; it can still carry only one load.
    busy = w.state.departed_by_truck.get(truck.truck_id)
    if busy is not None and busy != ticket.ticket_id:
        raise Refusal("truck_busy", f"truck={truck.truck_id} open_ticket={busy}")
    if permit.state != "approved" and not (p.get("offline") and permit.state == "revoked"):
        raise Refusal("permit_not_approved", f"permit={permit.permit_id} state={permit.state}")
    if not p["covered"]:
        project: Project | None = w.get("project", ticket.project_id)
        suggestion = {
            "type": "uncovered_load",
            "source": "gate",
            "time": iso(at),
            "ticket_id": ticket.ticket_id,
            "plate": truck.plate,
            "project_id": ticket.project_id,
            "evidence": [p["photo_digest"]] if p.get("photo_digest") else [],
            "location": location_json(project.lat, project.lon) if project else None,
        }
        raise Refusal(
            "uncovered_load",
            f"ticket={ticket.ticket_id} plate={truck.plate}",
            events=({"event": "violation_suggested", "report": suggestion},),
        )
    flags = list(ticket.flags)
    exit_project: Project | None = w.get("project", ticket.project_id)
    late = check_hours(w, env, ticket, flags, at, (exit_project.lat, exit_project.lon) if exit_project else None)
    if revoked is not None:
        late += offline_exit_after_revocation(w, ticket, flags, revoked, p["gate_id"], at)
    w.put(
        "ticket",
        ticket.ticket_id,
        evolve(ticket, state="departed", departed_at=at, exit_gate=p["gate_id"], exit_photo=p.get("photo_digest"),
               flags=tuple(flags)),
    )
    w.touch("truck", truck.truck_id)
    return [{"event": "ticket_departed", "ticket_id": ticket.ticket_id, "time": iso(at)}, *late]


def gate_receipt(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """The disposal-site gate records the receipt (消纳凭证); the site's load grows."""
    at, params = env.time, env.params
    ticket: Ticket = need(w.get("ticket", p["ticket_id"]), "unknown_ticket", f"ticket={p['ticket_id']}")
    gate_site = env.actor_arg(1) if env.actor_kind == "gate" else None
    if env.actor_kind == "gate" and env.actor_arg(0) != "disposal":
        raise Refusal("forbidden", f"actor={env.actor} is not a disposal-site gate")
    for claimed in (gate_site, p["site_id"]):
        if claimed is not None and claimed != ticket.site_id:
            raise Refusal("wrong_site", f"site={claimed} ticket_site={ticket.site_id}")
    if ticket.state != "departed":
        code = {"received": "already_received", "voided": "voided"}.get(ticket.state, "not_departed")
        raise Refusal(code, f"ticket={ticket.ticket_id} state={ticket.state}")
    truck: Truck = w.get("truck", ticket.truck_id)
    if p["plate"] != truck.plate:
        raise Refusal("wrong_truck", f"plate={p['plate']} ticket_plate={truck.plate}")
    weight_kg = p["weight_t"]
    measured = p["volume_m3"] if p["volume_m3"] is not None else weight_kg * 1000 // params.density_kg_per_m3
    discrepancy = abs(measured - ticket.volume_l) * 100 > params.volume_tolerance_pct * ticket.volume_l
    events: list[Event] = [
        {
            "event": "ticket_received",
            "ticket_id": ticket.ticket_id,
            "time": iso(at),
            "measured_m3": m3_text(measured),
        }
    ]
    if discrepancy:
        events.append(
            {
                "event": "discrepancy",
                "ticket_id": ticket.ticket_id,
                "expected_m3": m3_text(ticket.volume_l),
                "measured_m3": m3_text(measured),
            }
        )
    new_ticket = evolve(
        ticket,
        state="received",
        received_at=at,
        receipt_gate=p["gate_id"],
        measured_l=measured,
        weight_kg=weight_kg,
        discrepancy=discrepancy,
    )
    if measured * 100 > truck.capacity_l * (100 + params.volume_tolerance_pct) and "overloaded" not in ticket.flags:
        site_rec: Site = w.get("site", ticket.site_id)
        events.append(
            raise_violation(
                w,
                "overloaded",
                ticket,
                at,
                (site_rec.lat, site_rec.lon),
                f"measured={m3_text(measured)} capacity={m3_text(truck.capacity_l)}",
            )
        )
        new_ticket = evolve(new_ticket, flags=(*new_ticket.flags, "overloaded"))
    w.put("ticket", ticket.ticket_id, new_ticket)
    site: Site = w.get("site", ticket.site_id)
    was_alarm = site.alarm
    site = evolve(
        site,
        pending_l=site.pending_l - ticket.volume_l,
        load_l=site.load_l + measured,
        received_l=site.received_l + measured,
        receipts=site.receipts + 1,
    )
    site = evolve(site, alarm=in_alarm(site))
    w.put("site", site.site_id, site)
    w.touch("truck", truck.truck_id)
    if site.alarm and not was_alarm:
        project: Project | None = w.get("project", ticket.project_id)
        origin = (project.lat, project.lon) if project else (site.lat, site.lon)
        others = [s for s in w.state.tables["site"].values() if s.site_id != site.site_id]
        events.append(
            {
                "event": "site_alarm",
                "site_id": site.site_id,
                "load_rate_pct": pct_text(load_rate_bp(site)),
                "alternatives": recommend(others, origin, ticket.volume_l),
            }
        )
    return events


def expire_tickets(w: Writes, due: list[str]) -> list[Event]:
    """Expire the given issued tickets (system.tick), returning their volume to quota and site."""
    events: list[Event] = []
    for ticket_id in due:
        ticket: Ticket = w.get("ticket", ticket_id)
        w.put("ticket", ticket_id, evolve(ticket, state="expired", closed_reason="valid_until passed"))
        _release(w, ticket)
        events.append({"event": "ticket_expired", "ticket_id": ticket_id})
    return events
