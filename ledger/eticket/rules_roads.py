"""Road rules of a trip: transport hours per district and forbidden zones (parameters: :mod:`.zones`).

Each raises its violation once per ticket (the ticket's ``flags`` remember it), like the other trip rules.
"""

from __future__ import annotations

from ledger.eticket.params import Env, Event
from ledger.eticket.records import Project, Ticket
from ledger.eticket.rules_violation import raise_violation
from ledger.eticket.state import Writes
from ledger.eticket.units import iso
from ledger.eticket.zones import in_forbidden_zone, outside_hours


def district_of(w: Writes, ticket: Ticket) -> str | None:
    """The district of the ticket's project (whose transport hours apply)."""
    project: Project | None = w.get("project", ticket.project_id)
    return project.district if project is not None else None


def check_hours(
    w: Writes, env: Env, ticket: Ticket, flags: list[str], t: int, where: tuple[int, int] | None
) -> list[Event]:
    """``outside_hours`` when ``t`` is outside the district's transport window (once per ticket)."""
    if "outside_hours" in flags or not env.params.transport_hours:
        return []
    district = district_of(w, ticket)
    window = outside_hours(env.params, district, t)
    if window is None:
        return []
    flags.append("outside_hours")
    detail = f"district={district or '-'} hours={window.text()} at={iso(t)}"
    return [raise_violation(w, "outside_hours", ticket, t, where, detail)]


def check_zone(w: Writes, env: Env, ticket: Ticket, flags: list[str], t: int, where: tuple[int, int]) -> list[Event]:
    """``forbidden_zone`` when ``where`` (lat, lon) is inside a forbidden zone (once per ticket)."""
    if "forbidden_zone" in flags or not env.params.forbidden_zones:
        return []
    zone = in_forbidden_zone(env.params, where[1], where[0])
    if zone is None:
        return []
    flags.append("forbidden_zone")
    return [raise_violation(w, "forbidden_zone", ticket, t, where, f"zone={zone.zone_id}")]
