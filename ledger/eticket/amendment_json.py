"""Permit amendments as JSON (the read side of :mod:`.rules_amend`; queries ``amendment`` and ``amendments``)."""

from __future__ import annotations

from typing import Any

from ledger.eticket.record_json import decision_json, time_text
from ledger.eticket.records import Amendment
from ledger.eticket.state import State
from ledger.eticket.units import iso


def amendment_json(a: Amendment) -> dict[str, Any]:
    """An amendment with each concerned department's decision (or "pending")."""
    decided = {d.department: d for d in a.decisions}
    return {
        "amendment_id": a.amendment_id,
        "permit_id": a.permit_id,
        "contractor_org_id": a.contractor_org_id,
        "state": a.state,
        "add_site_ids": list(a.site_ids),
        "add_truck_ids": list(a.truck_ids),
        "add_company_ids": list(a.company_ids),
        "reason": a.reason,
        "requested_at": iso(a.requested_at),
        "decided_at": time_text(a.decided_at),
        "decisions": [decision_json(dept, decided.get(dept)) for dept in a.departments],
    }


def amendment_list(
    state: State, *, permit_id: str | None = None, awaiting: str | None = None, contractor: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Amendments, oldest request first: of one permit, of one contractor, and/or those still ``pending`` a
    decision of the department ``awaiting`` (its queue)."""
    out: list[Amendment] = []
    for a in state.tables["amendment"].values():
        if permit_id is not None and a.permit_id != permit_id:
            continue
        if contractor is not None and a.contractor_org_id != contractor:
            continue
        if awaiting is not None and (a.state != "pending" or awaiting not in a.departments
                                     or any(d.department == awaiting for d in a.decisions)):
            continue
        out.append(a)
    out.sort(key=lambda a: (a.requested_at, a.amendment_id))
    return [amendment_json(a) for a in out[: max(0, min(limit, 1000))]]
