"""What an offline gate must refuse: the entries of the revocation list (pure, read side).

Voided tickets still inside their validity, trucks and companies suspended now (a company's entry names its
trucks' plates: a gate sees plates, not companies) and revoked permits still inside their window.  Each
entry carries ``version``, the block height of its object's latest record, and the list its own ``version``
(the height of the last block); a delta ``since_version`` holds only entries whose object changed after that
height, a delta ``since_time`` (epoch s) those changed in a block after that time.  Entries only ever get
added or expire by themselves (a suspension carries its ``until``), so a gate merges a delta into its list.
The API signs the answer (``ledger.qrticket.revocations``).
"""

from __future__ import annotations

import bisect
from typing import Any, Protocol

from ledger.eticket.records import Company, Permit, Ticket, Truck
from ledger.eticket.state import State
from ledger.eticket.units import iso


class _Machine(Protocol):
    state: State
    now: int
    applied: int
    block_times: list[tuple[int, int]]
    read_cache: dict[str, Any]


def height_at(block_times: list[tuple[int, int]], t: int) -> int:
    """The height of the last block at or before time ``t`` (-1: before the first block)."""
    i = bisect.bisect_right([bt for _, bt in block_times], t)
    return block_times[i - 1][0] if i else -1


def entries(m: _Machine, *, since_version: int | None = None, since_time: int | None = None) -> dict[str, Any]:
    """The list (or, with ``since_version`` / ``since_time``, the delta) as JSON-ready data."""
    since = since_version
    if since_time is not None:
        since = max(since if since is not None else -1, height_at(m.block_times, since_time))
    key = (m.applied, m.now)  # the full list is kept while the state is unchanged: gates poll often
    kept = m.read_cache.get("revocations")
    if kept is None or kept[0] != key:
        kept = m.read_cache["revocations"] = (key, _full(m))
    full: dict[str, Any] = kept[1]
    if since is None:
        return full
    return {**full, "since_version": since,
            **{kind: [e for e in full[kind] if e["version"] > since] for kind in KINDS}}


#: the entry lists of a revocation list
KINDS = ("tickets", "trucks", "companies", "permits")


def _full(m: _Machine) -> dict[str, Any]:
    """Every entry in force now."""
    state, now = m.state, m.now
    version = m.block_times[-1][0] if m.block_times else 0

    def changed(name: str) -> int:
        """The object's version: the height of its latest record."""
        h = state.heads.last_height(name)
        return 0 if h is None else h

    tickets: list[dict[str, Any]] = []
    for t in state.tables["ticket"].values():
        assert isinstance(t, Ticket)
        if t.state == "voided" and t.valid_until > now:
            at = t.voided_at
            tickets.append({"ticket_id": t.ticket_id, "voided_at": iso(at) if at else None,
                            "version": changed(f"ticket:{t.ticket_id}")})
    trucks: list[dict[str, Any]] = []
    for tr in state.tables["truck"].values():
        assert isinstance(tr, Truck)
        if tr.suspended_until > now:
            trucks.append({"truck_id": tr.truck_id, "plate": tr.plate, "until": iso(tr.suspended_until),
                           "version": changed(f"truck:{tr.truck_id}")})
    plates: dict[str, list[str]] = {}
    for tr in state.tables["truck"].values():
        assert isinstance(tr, Truck)
        if tr.status == "active":
            plates.setdefault(tr.company_id, []).append(tr.plate)
    companies: list[dict[str, Any]] = []
    for c in state.tables["company"].values():
        assert isinstance(c, Company)
        if c.suspended_until > now:
            companies.append({"company_id": c.company_id, "until": iso(c.suspended_until),
                              "plates": sorted(plates.get(c.company_id, [])),
                              "version": changed(f"company:{c.company_id}")})
    permits: list[dict[str, Any]] = []
    for p in state.tables["permit"].values():
        assert isinstance(p, Permit)
        if p.state == "revoked" and p.valid_to > now:
            permits.append({"permit_id": p.permit_id, "version": changed(f"permit:{p.permit_id}")})
    return {
        "version": version,
        "as_of": iso(now) if now else None,
        "since_version": None,
        "tickets": sorted(tickets, key=lambda e: e["ticket_id"]),
        "trucks": sorted(trucks, key=lambda e: e["truck_id"]),
        "companies": sorted(companies, key=lambda e: e["company_id"]),
        "permits": sorted(permits, key=lambda e: e["permit_id"]),
    }
