"""Acts their actors sign themselves (``ledger.eticket.acts``): a department's decisions, a gate's scans, a
camera's sightings, a GPS terminal's batches.  The API builds the same payload the actor signed and relays it
with its ``act_sig``; it holds no actor's key, so it cannot make one up."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ledger.eticket import acts
from ticket_api.adapter.gateway import iso
from ticket_api.errors import InvalidRequest, Refused
from ticket_api.service_data import PermitDecision

#: how far the time a department signed at may lie from the server's clock
ACT_LEEWAY = timedelta(minutes=5)


def decision_act(tx_type: str, object_id: str, department: str, data: PermitDecision,
                 now: datetime) -> dict[str, Any]:
    """The ``permit.decide`` or ``permit.amend_decide`` payload, with the department's signature when the
    request carries one (without, the consortium refuses ``act_unsigned`` where its policy wants decisions
    signed)."""
    at = signed_time(data, now, "decision")
    payload = acts.decision_payload(tx_type, object_id, department, data["decision"], data.get("comment"), iso(at))
    return relay(payload, data.get("act_sig"))


def signed_time(data: Mapping[str, Any], now: datetime, what: str) -> datetime:
    """The time an act was signed at (``data["time"]``, required with ``act_sig``; within :data:`ACT_LEEWAY`
    of ``now``: else refused ``clock_skew``), or ``now`` for an unsigned request that names none."""
    at: datetime | None = data.get("time")
    if data.get("act_sig") is not None and at is None:
        raise InvalidRequest(f"a signed {what} names the time it was signed",
                             fields={"time": ["required with act_sig"]})
    if at is None:
        return now
    if abs(at - now) > ACT_LEEWAY:
        raise Refused(f"{what} time {at.isoformat()} is too far from the server's clock", reason="clock_skew")
    return at


def relay(payload: dict[str, Any], sig: Mapping[str, str] | None) -> dict[str, Any]:
    """``payload`` with the actor's ``act_sig`` as the request carried it (unchanged without one)."""
    if sig:
        payload[acts.ACT_FIELD] = dict(sig)
    return payload
