"""Trip rules: GPS batches (speeding, off-route, suspicious stops) and the time-driven system tick."""

from __future__ import annotations

import heapq
from typing import Any

from ledger.eticket.errors import Refusal
from ledger.eticket.geo import Corridor, within
from ledger.eticket.params import Env, Event, need
from ledger.eticket.records import Permit, Project, Site, Ticket, Truck, evolve
from ledger.eticket.rules_camera import check_due_sightings
from ledger.eticket.rules_permit import expire_permits
from ledger.eticket.rules_roads import check_hours, check_zone
from ledger.eticket.rules_ticket import expire_tickets
from ledger.eticket.rules_violation import raise_violation
from ledger.eticket.state import Writes
from ledger.eticket.units import deg_text

_UDEG_PER_M = 9  # > 1e6 / 111195 µdeg per metre of latitude (a safe pre-filter)


def _route(w: Writes, ticket: Ticket) -> list[tuple[int, int]]:
    permit: Permit = w.get("permit", ticket.permit_id)
    project: Project = w.get("project", ticket.project_id)
    site: Site = w.get("site", ticket.site_id)
    return [(project.lat, project.lon), *permit.route, (site.lat, site.lon)]


def trip_positions(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """Record a GPS batch of a departed ticket and run the trip rules on its points."""
    params = env.params
    ticket: Ticket = need(w.get("ticket", p["ticket_id"]), "unknown_ticket", f"ticket={p['ticket_id']}")
    truck: Truck = w.get("truck", ticket.truck_id)
    if env.actor_kind == "gps" and truck.terminal_id is not None and env.actor_arg(0) != truck.terminal_id:
        raise Refusal("forbidden", f"terminal={env.actor_arg(0)} truck_terminal={truck.terminal_id}")
    if ticket.state == "received":
        raise Refusal("already_received", f"ticket={ticket.ticket_id}")
    if ticket.state != "departed":
        raise Refusal("not_departed", f"ticket={ticket.ticket_id} state={ticket.state}")
    if p["batch_id"] in ticket.batches:
        raise Refusal("duplicate_id", f"ticket={ticket.ticket_id} batch={p['batch_id']}")
    points: tuple[dict[str, Any], ...] = p["points"]
    events: list[Event] = []
    flags = list(ticket.flags)
    max_speed = ticket.max_speed_dkmh
    corridor: Corridor | None = None
    other_sites: list[Site] | None = None
    for pt in points:
        where, speed, t = (pt["lat"], pt["lon"]), pt["speed_kmh"], pt["t"]
        max_speed = max(max_speed, speed)
        if speed > params.speed_limit_dkmh and "speeding" not in flags:
            flags.append("speeding")
            events.append(
                raise_violation(
                    w,
                    "speeding",
                    ticket,
                    t,
                    where,
                    f"speed_kmh={speed / 10} limit_kmh={params.speed_limit_dkmh / 10}",
                )
            )
        if "off_route" not in flags:
            if corridor is None:
                corridor = Corridor(_route(w, ticket), params.corridor_m)
            if not corridor.contains(where):
                flags.append("off_route")
                events.append(raise_violation(w, "off_route", ticket, t, where, f"corridor_m={params.corridor_m}"))
        events += check_hours(w, env, ticket, flags, t, where)
        events += check_zone(w, env, ticket, flags, t, where)
        if speed <= params.stopped_speed_dkmh and "suspicious_stop" not in flags:
            if other_sites is None:
                table = w.state.tables["site"]
                other_sites = [table[k] for k in sorted(table) if k != ticket.site_id]
            box = params.stop_radius_m * _UDEG_PER_M
            for site in other_sites:
                if abs(site.lat - where[0]) <= box and within((site.lat, site.lon), where, params.stop_radius_m):
                    flags.append("suspicious_stop")
                    events.append(
                        raise_violation(
                            w,
                            "suspicious_stop",
                            ticket,
                            t,
                            where,
                            f"near_site={site.site_id} radius_m={params.stop_radius_m}",
                        )
                    )
                    break
    last = points[-1] if points else None
    new = evolve(
        ticket,
        batches=(*ticket.batches, p["batch_id"]),
        flags=tuple(flags),
        max_speed_dkmh=max_speed,
        points=ticket.points + (p["offchain"]["count"] if p["offchain"] else len(points)),
    )
    if last is not None and (ticket.last_t is None or last["t"] >= ticket.last_t):
        new = evolve(new, last_lat=last["lat"], last_lon=last["lon"], last_t=last["t"])
    w.put("ticket", ticket.ticket_id, new)
    return events


def system_tick(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """Run the time-driven rules at the block time: expiries, overdue trips (疑似偷倒), due camera sightings.

    The due-lists are popped from the state's deadline heaps; a tick is never refused once
    its handler runs, so the pops are always followed by the commit.  Only the block time counts
    (a tick's own time can never be more than ``max_clock_skew_s`` ahead of it: ``bad_time``), so
    two ticks at one block time have the effect of one.  A tick that names its scheduling node
    (actor ``system:scheduler:<node>``) must be signed by that node's member key.
    """
    if env.actor_kind == "system" and env.actor_arg(0) == "scheduler":
        node = env.actor_arg(1)
        if node is not None and (node != env.signer.name or "node" not in env.signer.roles):
            raise Refusal("forbidden", f"actor={env.actor} signer={env.signer.name}")
    now, st = env.now, w.state
    tickets = st.tables["ticket"]
    due: list[str] = []
    while st.expiry_heap and st.expiry_heap[0][0] < now:
        until, tid = heapq.heappop(st.expiry_heap)
        t = tickets.get(tid)
        if t is not None and t.state == "issued" and t.valid_until == until:
            due.append(tid)
    events = expire_tickets(w, due)
    permits: list[Permit] = []
    while st.permit_heap and st.permit_heap[0][0] < now:
        _, pid = heapq.heappop(st.permit_heap)
        permits.append(w.get("permit", pid))  # through the overlay: expiring tickets changed issued_l
    events += expire_permits(w, permits, now)
    margin = env.params.receipt_margin_s
    while st.overdue_heap and st.overdue_heap[0][0] + margin < now:
        _, tid = heapq.heappop(st.overdue_heap)
        t = w.get("ticket", tid)
        if t is None or t.state != "departed" or "suspected_dumping" in t.flags:
            continue
        if t.last_lat is not None and t.last_lon is not None:
            where = (t.last_lat, t.last_lon)
            detail = f"last_seen={deg_text(where[0])},{deg_text(where[1])}"
        else:
            project: Project = w.get("project", t.project_id)
            where, detail = (project.lat, project.lon), "no_position_since_departure"
        events.append(raise_violation(w, "suspected_dumping", t, now, where, detail))
        w.put("ticket", tid, evolve(t, flags=(*t.flags, "suspected_dumping")))
    events += check_due_sightings(w, env)  # camera sightings whose grace window for the gate scan ended
    return events
