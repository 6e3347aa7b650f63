"""JSON forms of the e-ticket records that several queries share (times as ISO 8601 +08:00, volumes in m³)."""

from __future__ import annotations

from typing import Any

from ledger.eticket.geo import in_alarm, load_rate_bp, pct_text, room_l
from ledger.eticket.records import Decision, Penalty, Site, Violation
from ledger.eticket.units import fen_text, iso, location_json, m3_text


def time_text(seconds: int | None) -> str | None:
    """Epoch seconds as ISO 8601 in China time, or None."""
    return None if seconds is None else iso(seconds)


def decision_json(department: str, d: Decision | None) -> dict[str, Any]:
    """One department's decision on a permit or an amendment ("pending" until it decides), with the key that
    signed it (``key_id``: the department's own, ``ledger.eticket.acts``; None for an unsigned act)."""
    if d is None:
        return {"department": department, "decision": "pending", "time": None, "reason": None, "actor": None,
                "key_id": None}
    return {"department": department, "decision": d.decision, "time": iso(d.time), "reason": d.reason,
            "actor": d.actor, "key_id": d.key_id}


def site_json(s: Site) -> dict[str, Any]:
    """A disposal site with its load, room and alarm state, as the API and the dashboard show it."""
    return {
        "site_id": s.site_id,
        "name": s.name,
        "kind": s.kind,
        "location": location_json(s.lat, s.lon),
        "capacity_m3": m3_text(s.capacity_l),
        "load_m3": m3_text(s.load_l),
        "pending_m3": m3_text(s.pending_l),
        "received_m3": m3_text(s.received_l),
        "receipts": s.receipts,
        "room_m3": m3_text(room_l(s)),
        "load_rate_pct": pct_text(load_rate_bp(s)),
        "alarm_threshold_pct": s.alarm_pct,
        "alarm": in_alarm(s),
        "town": s.town,
        "operator_org_id": s.operator_org_id,
    }


def violation_json(v: Violation) -> dict[str, Any]:
    """A violation with its whole handling (confirm, dismiss, dispatch, resolve) and how long it took."""
    end = v.resolved_at if v.resolved_at is not None else v.dismissed_at
    return {
        "violation_id": v.violation_id,
        "type": v.type,
        "source": v.source,
        "state": v.state,
        "reported_at": iso(v.reported_at),
        "location": location_json(v.lat, v.lon),
        "evidence": list(v.evidence),
        "ticket_id": v.ticket_id,
        "truck_id": v.truck_id,
        "plate": v.plate,
        "company_id": v.company_id,
        "driver_id": v.driver_id,
        "project_id": v.project_id,
        "site_id": v.site_id,
        "town": v.town,
        "description": v.description,
        "confirmed_at": time_text(v.confirmed_at),
        "dismissed_at": time_text(v.dismissed_at),
        "dispatched_at": time_text(v.dispatched_at),
        "centre": v.centre,
        "resolved_at": time_text(v.resolved_at),
        "result": v.result,
        "note": v.note,
        "penalty_ids": list(v.penalty_ids),
        "handling_seconds": None if end is None else end - v.reported_at,
    }


def penalty_json(p: Penalty) -> dict[str, Any]:
    """A penalty with its target, amount, measures and credit points."""
    return {
        "penalty_id": p.penalty_id,
        "target_kind": p.target_kind,
        "target_id": p.target_id,
        "violation_ids": list(p.violation_ids),
        "amount_yuan": fen_text(p.amount_fen),
        "measures": [{"kind": k, "days": d or None} for k, d in p.measures],
        "time": iso(p.time),
        "suspended_until": time_text(p.suspended_until),
        "credit_points": p.credit_points,
        "decision_no": p.decision_no,
    }
