"""Acts a department signs itself (``ledger.eticket.acts``): the API builds the same payload the department
signed and relays it with its ``act_sig``; it holds no department's key, so it cannot make one up."""

from __future__ import annotations

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
    sig = data.get("act_sig")
    at = data.get("time")
    if sig is not None and at is None:
        raise InvalidRequest("a signed decision names the time it was signed",
                             fields={"time": ["required with act_sig"]})
    if at is None:
        at = now
    elif abs(at - now) > ACT_LEEWAY:
        raise Refused(f"decision time {at.isoformat()} is too far from the server's clock", reason="clock_skew")
    payload = acts.decision_payload(tx_type, object_id, department, data["decision"], data.get("comment"), iso(at))
    if sig is not None:
        payload[acts.ACT_FIELD] = dict(sig)
    return payload
