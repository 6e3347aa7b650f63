"""Camera rules: cameras placed on the chain and the plates they see, checked against the tickets.

A sighting at a project's exit or a disposal site's gate waits ``camera_grace_s`` for the gate's own scan
(checked at once when the scan is already there, else by the first ``system.tick`` at or after ``time +
grace``); a plate the registry does not know (a black truck, 黑车) and an uncovered load are events at once;
a road camera seeing a truck on an open trip outside its corridor raises ``off_route``, inside a forbidden
zone ``forbidden_zone`` and outside its district's transport hours ``outside_hours`` (each once per trip, as
the GPS rules do: the ticket's flags remember it).  Repeats of one type
for one plate within ``camera_dedup_s`` are one event (the repeat's photo joins its evidence).  Pure: times
are the sighting's and the block's.
"""

from __future__ import annotations

import heapq
from typing import Any

from ledger.eticket.errors import Refusal
from ledger.eticket.geo import Corridor
from ledger.eticket.params import Env, Event, Params, need
from ledger.eticket.records import Camera, Permit, Project, Sighting, Site, Ticket, Truck, Violation, evolve
from ledger.eticket.rules_roads import district_of
from ledger.eticket.rules_violation import new_violation_id, subjects_of_ticket
from ledger.eticket.state import Writes
from ledger.eticket.units import iso, location_json
from ledger.eticket.zones import in_forbidden_zone, outside_hours

#: How many of a truck's newest tickets a sighting is compared with (besides its open trip).
RECENT_TICKETS = 20
MAX_EVIDENCE = 20
Fresh = dict[tuple[str, str], str]


def registry_camera(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """Place (or, with ``update``, move) a camera: a project's exit, a disposal site's gate or a road point."""
    old = w.get("camera", p["camera_id"])
    if p["update"]:
        need(old, "unknown_camera", f"camera={p['camera_id']}")
    elif old is not None:
        raise Refusal("duplicate_id", f"camera={p['camera_id']}")
    placement = p["placement"]
    where: tuple[int, int] | None = p["location"]
    town: str | None = p["town"]
    project_id = site_id = None
    if placement == "exit":
        project: Project = need(w.get("project", p["project_id"]), "unknown_project", f"project={p['project_id']}")
        project_id, where, town = project.project_id, where or (project.lat, project.lon), town or project.town
    elif placement == "disposal":
        site: Site = need(w.get("site", p["site_id"]), "unknown_site", f"site={p['site_id']}")
        site_id, where, town = site.site_id, where or (site.lat, site.lon), town or site.town
    assert where is not None  # the schema requires a road camera's location
    w.put("camera", p["camera_id"], Camera(p["camera_id"], placement, where[0], where[1], project_id, site_id, town))
    return [{"event": "camera_registered", "camera_id": p["camera_id"], "placement": placement}]


def camera_sighting(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """A camera saw a plate: events known at once are raised, a missing gate scan is waited for."""
    cam: Camera = need(w.get("camera", p["camera_id"]), "unknown_camera", f"camera={p['camera_id']}")
    env.require_own("camera", cam.camera_id, "camera")
    if w.get("sighting", p["sighting_id"]) is not None:
        raise Refusal("duplicate_id", f"sighting={p['sighting_id']}")
    at, params = env.time, env.params
    truck_id = w.state.plates.get(p["plate"])
    s = Sighting(p["sighting_id"], cam.camera_id, p["plate"], p["covered"], at, p["photo_digest"], truck_id)
    events: list[Event] = []
    fresh: Fresh = {}
    open_trip = _open_ticket(w, truck_id)
    if not s.covered:
        events.append(_event(w, params, s, cam, "uncovered_load", open_trip, "covered=false", fresh))
    if cam.placement in ("exit", "disposal"):
        if truck_id is None:
            events.append(_event(w, params, s, cam, "unapproved_disposal", None, "plate_not_registered", fresh))
        else:
            found = _ticket_for(w, cam, truck_id, at, params.camera_grace_s)
            if found is not None:
                s = evolve(s, ticket_id=found.ticket_id)
            else:
                s = evolve(s, state="pending", due=at + params.camera_grace_s)
    elif open_trip is not None:
        events.extend(_road_rules(w, params, s, cam, open_trip, fresh))
        s = evolve(s, ticket_id=open_trip.ticket_id)
    s = evolve(s, violations=tuple(str(e["violation_id"]) for e in events))
    w.put("sighting", s.sighting_id, s)
    w.touch("camera", cam.camera_id)
    w.touch("truck", truck_id)
    return [{"event": "camera_sighted", "sighting_id": s.sighting_id, "state": s.state,
             "due": None if s.due is None else iso(s.due)}, *events]


def check_due_sightings(w: Writes, env: Env) -> list[Event]:
    """At a tick: every pending sighting whose grace window ended (``due <= block time``) is cleared by a
    gate scan inside the window or raises ``no_ticket``."""
    st, now, params = w.state, env.now, env.params
    events: list[Event] = []
    fresh: Fresh = {}
    while st.sighting_heap and st.sighting_heap[0][0] <= now:
        _, sid = heapq.heappop(st.sighting_heap)
        s: Sighting | None = w.get("sighting", sid)
        if s is None or s.state != "pending" or s.truck_id is None:
            continue
        cam: Camera = w.get("camera", s.camera_id)
        found = _ticket_for(w, cam, s.truck_id, s.time, params.camera_grace_s)
        if found is not None:
            w.put("sighting", sid, evolve(s, state="cleared", ticket_id=found.ticket_id))
            continue
        where = "exit" if cam.placement == "exit" else f"site={cam.site_id}"
        ev = _event(w, params, s, cam, "no_ticket", _open_ticket(w, s.truck_id) if cam.placement == "disposal"
                    else None, f"no_ticket_scan_at={where} grace_s={params.camera_grace_s}", fresh)
        events.append(ev)
        w.put("sighting", sid, evolve(s, state="checked", violations=(*s.violations, str(ev["violation_id"]))))
    return events


def _road_rules(w: Writes, params: Params, s: Sighting, cam: Camera, trip: Ticket, fresh: Fresh) -> list[Event]:
    """What a road camera sees of a truck on an open trip: off its corridor, inside a forbidden zone, outside
    its district's transport hours.  The zone and hours events are flagged on the ticket so that the GPS
    track does not raise them a second time (and a second camera neither)."""
    events: list[Event] = []
    corridor = Corridor(_route(w, trip), params.corridor_m)
    if not corridor.contains((cam.lat, cam.lon)):
        detail = f"road_camera={cam.camera_id} corridor_m={params.corridor_m}"
        events.append(_event(w, params, s, cam, "off_route", trip, detail, fresh))
    flags = list(trip.flags)
    zone = in_forbidden_zone(params, cam.lon, cam.lat) if params.forbidden_zones else None
    if zone is not None and "forbidden_zone" not in flags:
        flags.append("forbidden_zone")
        detail = f"road_camera={cam.camera_id} zone={zone.zone_id}"
        events.append(_event(w, params, s, cam, "forbidden_zone", trip, detail, fresh))
    district = district_of(w, trip)
    window = outside_hours(params, district, s.time) if params.transport_hours else None
    if window is not None and "outside_hours" not in flags:
        flags.append("outside_hours")
        detail = f"road_camera={cam.camera_id} district={district or '-'} hours={window.text()} at={iso(s.time)}"
        events.append(_event(w, params, s, cam, "outside_hours", trip, detail, fresh))
    if len(flags) != len(trip.flags):
        current: Ticket = w.get("ticket", trip.ticket_id)
        w.put("ticket", trip.ticket_id, evolve(current, flags=tuple(flags)))
    return events


# -- helpers ----------------------------------------------------------------------------------------
def _open_ticket(w: Writes, truck_id: str | None) -> Ticket | None:
    tid = w.state.departed_by_truck.get(truck_id) if truck_id is not None else None
    ticket: Ticket | None = w.get("ticket", tid)
    return ticket


def _route(w: Writes, ticket: Ticket) -> list[tuple[int, int]]:
    permit: Permit = w.get("permit", ticket.permit_id)
    project: Project = w.get("project", ticket.project_id)
    site: Site = w.get("site", ticket.site_id)
    return [(project.lat, project.lon), *permit.route, (site.lat, site.lon)]


def _ticket_for(w: Writes, cam: Camera, truck_id: str, at: int, grace: int) -> Ticket | None:
    """The truck's ticket that explains the sighting: at an exit, one that left this project within
    ``grace`` of ``at``; at a disposal site, one for this site on the road at ``at`` (left before ``at +
    grace``, not received before ``at - grace``)."""
    names = w.state.tickets_by.get(f"truck:{truck_id}", [])
    open_id = w.state.departed_by_truck.get(truck_id)
    candidates = ([open_id] if open_id else []) + names[-1 : -RECENT_TICKETS - 1 : -1]
    for tid in candidates:
        t: Ticket | None = w.get("ticket", tid)
        if t is None or t.departed_at is None:
            continue
        if cam.placement == "exit":
            if t.project_id == cam.project_id and abs(t.departed_at - at) <= grace:
                return t
        elif (t.site_id == cam.site_id and t.departed_at <= at + grace
              and (t.received_at is None or t.received_at >= at - grace)):
            return t
    return None


def _event(w: Writes, params: Params, s: Sighting, cam: Camera, vtype: str, ticket: Ticket | None,
           detail: str, fresh: Fresh) -> Event:
    """A new numbered event for the sighting, or the one it repeats (same plate and type within the dedup
    window: the photo is added to that event's evidence)."""
    key = (s.plate, vtype)
    prior = fresh.get(key)
    if prior is None:
        seen = w.state.last_event.get(key)
        if seen is not None and abs(s.time - seen[0]) < params.camera_dedup_s:
            prior = seen[1]
    if prior is not None:
        v: Violation = w.get("violation", prior)
        if s.photo_digest not in v.evidence and len(v.evidence) < MAX_EVIDENCE:
            w.put("violation", prior, evolve(v, evidence=(*v.evidence, s.photo_digest)))
        return {"event": "violation_repeated", "violation_id": prior, "type": vtype, "sighting_id": s.sighting_id}
    vid = new_violation_id(w, vtype, s.time)
    subj: dict[str, Any] = {"ticket_id": None, "truck_id": None, "plate": s.plate, "company_id": None,
                            "driver_id": None, "project_id": cam.project_id, "site_id": cam.site_id, "town": None}
    if ticket is not None:
        subj.update(subjects_of_ticket(w, ticket))
        subj["plate"] = s.plate
    elif s.truck_id is not None:
        truck: Truck = w.get("truck", s.truck_id)
        subj.update(truck_id=truck.truck_id, company_id=truck.company_id)
    subj["town"] = cam.town or subj["town"]
    v = Violation(vid, vtype, "camera", s.time, cam.lat, cam.lon, (s.photo_digest,),
                  description=f"camera={cam.camera_id} sighting={s.sighting_id} {detail}", **subj)
    w.put("violation", vid, v)
    fresh[key] = vid
    for kind in ("ticket", "truck", "project", "site"):
        w.touch(kind, subj[f"{kind}_id"])
    return {"event": "violation_raised", "violation_id": vid, "type": vtype, "ticket_id": subj["ticket_id"],
            "time": iso(s.time), "location": location_json(cam.lat, cam.lon), "sighting_id": s.sighting_id}
