"""An offline gate's acceptance of a ticket voided before the scan, synced later: a violation, once.

A gate that is offline cannot know of a void made after its last revocation list; it lets the truck out, and
the scan reaches the ledger at sync (``gate.exit`` with ``offline: true`` and the scan's own time).  When the
ticket was voided at or before that time the exit is not a departure on a valid ticket: the rules accept the
transaction as a record of what happened, raise a ``no_ticket`` violation (the load left without a valid
ticket) and charge the ticket's volume to its permit again (the void had given it back to the quota, but the
load did leave under that permit).  The ticket stays ``voided``; its flag ``used_after_void`` makes a second
sync of the same (or another) offline scan an ordinary ``voided`` refusal, so neither the violation nor the
quota change happens twice.  A scan made before the void is the ordinary refusal too (``voided``).
"""

from __future__ import annotations

from typing import Any

from ledger.eticket.params import Env, Event
from ledger.eticket.records import Permit, Project, Ticket, evolve
from ledger.eticket.rules_violation import raise_violation
from ledger.eticket.state import Writes
from ledger.eticket.units import iso, m3_text

#: the ticket flag that marks a voided ticket an offline gate let through (once)
USED_AFTER_VOID = "used_after_void"


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
