"""An offline gate's acceptance of a ticket revoked before the scan, synced later: a violation, once.

A gate that is offline cannot know of a void made after its last revocation list; it lets the truck out, and
the scan reaches the ledger at sync (``gate.exit`` with ``offline: true`` and the scan's own time).  When the
ticket was voided at or before that time the exit is not a departure on a valid ticket: the rules accept the
transaction as a record of what happened, raise a ``no_ticket`` violation (the load left without a valid
ticket) and charge the ticket's volume to its permit again (the void had given it back to the quota, but the
load did leave under that permit).  The ticket stays ``voided``; its flag ``used_after_void`` makes a second
sync of the same (or another) offline scan an ordinary ``voided`` refusal, so neither the violation nor the
quota change happens twice.  A scan made before the void is the ordinary refusal too (``voided``).

A ticket whose truck or company was suspended, or whose permit was revoked, at or before the offline scan
is on the revocation list the gate should have had: the exit is recorded as a departure (the load did
leave; its receipt may follow) flagged ``used_after_revocation``, with one ``no_ticket`` violation.  A
suspension or revocation that began after the scan does not make the gate's decision wrong: the exit is an
ordinary departure.
"""

from __future__ import annotations

from typing import Any

from ledger.eticket.params import Env, Event
from ledger.eticket.records import Company, Permit, Project, Ticket, Truck, evolve
from ledger.eticket.rules_violation import raise_violation
from ledger.eticket.state import Writes
from ledger.eticket.units import iso, m3_text

#: the ticket flag that marks a voided ticket an offline gate let through (once)
USED_AFTER_VOID = "used_after_void"
#: the ticket flag of a departure an offline gate allowed after its truck, company or permit was revoked
USED_AFTER_REVOCATION = "used_after_revocation"


def revoked_before(ticket: Ticket, at: int) -> bool:
    """True when ``ticket`` was voided at or before ``at`` and no offline use of it was recorded yet."""
    return (
        ticket.state == "voided"
        and ticket.voided_at is not None
        and ticket.voided_at <= at
        and USED_AFTER_VOID not in ticket.flags
    )


def offline_exit_after_void(w: Writes, ticket: Ticket, p: dict[str, Any], env: Env) -> list[Event]:
    """Record the offline exit of a voided ticket: the violation and the volume charged to the permit again."""
    at = env.time
    project: Project | None = w.get("project", ticket.project_id)
    where = (project.lat, project.lon) if project else None
    violation = raise_violation(
        w,
        "no_ticket",
        ticket,
        at,
        where,
        f"离线闸机放行了已作废的电子渣票 (an offline gate let out a voided ticket): ticket={ticket.ticket_id} "
        f"voided={iso(ticket.voided_at or at)} scanned={iso(at)} gate={p['gate_id']}",
    )
    w.put("ticket", ticket.ticket_id, evolve(ticket, flags=(*ticket.flags, USED_AFTER_VOID)))
    permit: Permit = w.get("permit", ticket.permit_id)
    w.put("permit", permit.permit_id, evolve(permit, issued_l=permit.issued_l + ticket.volume_l))
    return [
        {
            "event": "ticket_used_after_void",
            "ticket_id": ticket.ticket_id,
            "time": iso(at),
            "volume_m3": m3_text(ticket.volume_l),
        },
        violation,
    ]


def revoked_at_scan(w: Writes, truck: Truck, permit: Permit, at: int) -> str | None:
    """What of the ticket's truck, company or permit was revoked at ``at`` (an offline scan's time), as a
    detail for the violation; None when nothing was."""
    if truck.suspended_since <= at < truck.suspended_until:
        return f"truck={truck.truck_id} suspended={iso(truck.suspended_since or at)}"
    company: Company | None = w.get("company", truck.company_id)
    if company is not None and company.suspended_since <= at < company.suspended_until:
        return f"company={company.company_id} suspended={iso(company.suspended_since or at)}"
    if permit.state == "revoked" and (permit.revoked_at is None or permit.revoked_at <= at):
        return f"permit={permit.permit_id} revoked={iso(permit.revoked_at or at)}"
    return None


def offline_exit_after_revocation(
    w: Writes, ticket: Ticket, flags: list[str], revoked: str, gate_id: str, at: int
) -> list[Event]:
    """Flag the departure and raise its ``no_ticket`` violation (the caller records the departure)."""
    project: Project | None = w.get("project", ticket.project_id)
    where = (project.lat, project.lon) if project else None
    flags.append(USED_AFTER_REVOCATION)
    violation = raise_violation(
        w,
        "no_ticket",
        ticket,
        at,
        where,
        f"离线闸机放行了已列入撤销清单的电子渣票 (an offline gate let out a revoked ticket): ticket={ticket.ticket_id} "
        f"{revoked} scanned={iso(at)} gate={gate_id}",
    )
    return [{"event": "ticket_used_after_revocation", "ticket_id": ticket.ticket_id, "time": iso(at)}, violation]
