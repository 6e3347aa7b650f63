"""Events and who they concern, derived from a final block's transactions (pure but for ``lookup``).

``lookup(name, **kwargs)`` runs a ledger query (``NodeClient.query``); the unit tests give a dict-backed
one.  An event's id names the business fact (``permit_approved:P-1``, ``violation:WZ…``), not the
transaction that revealed it, so a fact seen twice (two blocks, a replay after a crash) is one event:
the outbox keeps one row per event id and recipient.

Recipients ("audiences"): ``tenant:<role>:<tenant>`` (everyone of that role and tenant, e.g. a
contractor's organisation) or ``role:<role>`` (every user of a staff role).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.core.encoding import CHINA_TZ

Lookup = Callable[..., Any]

#: the kinds of event people are told about
KINDS = ("permit_approved", "permit_rejected", "gate_held", "violation_raised", "penalty_recorded", "site_alarm")
#: transaction types whose valid outcome may raise rule violations on the ticket they name
_RAISES_ON_TICKET = ("trip.positions", "gate.receipt", "gate.exit")
#: how long before a tick a camera's no_ticket may be dated (the grace window, 120 s, and a tick interval)
CAMERA_MARGIN_S = 900


@dataclass(frozen=True)
class Event:
    """One thing to tell: ``facts`` are what the messages show (ids, plate, reason code, ...)."""

    event_id: str
    kind: str
    height: int
    time: str  # ISO 8601, +08:00
    facts: Mapping[str, Any] = field(default_factory=dict)
    audiences: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "kind": self.kind, "height": self.height, "time": self.time,
                "facts": dict(self.facts), "audiences": list(self.audiences)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Event:
        return cls(str(d["event_id"]), str(d["kind"]), int(d["height"]), str(d["time"]), dict(d.get("facts") or {}),
                   tuple(d.get("audiences") or ()))


def tenant(role: str, tenant_id: str) -> str:
    return f"tenant:{role}:{tenant_id}"


def role(role_name: str) -> str:
    return f"role:{role_name}"


def audiences_for(kind: str, facts: Mapping[str, Any]) -> tuple[str, ...]:
    """Who is told of an event of ``kind`` (pure): the contractor organisation it concerns, and the staff
    roles whose work it is."""
    out: list[str] = []
    contractor = facts.get("contractor_org_id")
    if contractor and kind != "site_alarm":
        out.append(tenant("contractor", str(contractor)))
    staff = {
        "permit_approved": (),
        "permit_rejected": (),
        "gate_held": ("operator",),
        "violation_raised": ("enforcement", "operator"),
        "penalty_recorded": ("enforcement", "operator", "regulator"),
        "site_alarm": ("operator", "regulator"),
    }[kind]
    out += [role(r) for r in staff]
    if kind in ("gate_held", "violation_raised", "penalty_recorded") and facts.get("company_id"):
        out.append(tenant("company", str(facts["company_id"])))  # the truck's transport company
    if kind in ("gate_held", "violation_raised") and facts.get("truck_id"):
        out.append(tenant("driver", str(facts["truck_id"])))  # whoever drives that truck
    if kind == "site_alarm" and facts.get("site_id"):
        out.append(tenant("disposal_gate", str(facts["site_id"])))
    return tuple(out)


def _event(event_id: str, kind: str, height: int, time: str, facts: Mapping[str, Any]) -> Event:
    clean = {k: v for k, v in facts.items() if v is not None}
    return Event(event_id, kind, height, time, clean, audiences_for(kind, clean))


def block_time(block: Mapping[str, Any]) -> str:
    """The block's timestamp as ISO 8601 +08:00."""
    raw = str(block["header"]["timestamp"])
    return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(CHINA_TZ).isoformat(timespec="seconds")


def events_of_block(block: Mapping[str, Any], lookup: Lookup) -> list[Event]:
    """Every event of one final block, in transaction order (duplicates by id removed)."""
    height = int(block["header"]["height"])
    at = block_time(block)
    seen: dict[str, Event] = {}
    for entry in block.get("transactions", []):
        for e in events_of_tx(entry, height=height, at=at, lookup=lookup):
            seen.setdefault(e.event_id, e)
    return list(seen.values())


def events_of_tx(entry: Mapping[str, Any], *, height: int, at: str, lookup: Lookup) -> list[Event]:
    """The events one block entry (``{"tx_id", "code", "tx"}``) reveals."""
    tx = entry.get("tx") or {}
    kind, p, code = str(tx.get("type", "")), dict(tx.get("payload") or {}), entry.get("code") or "valid"
    tx_id = str(entry.get("tx_id", ""))
    if kind in ("gate.exit", "gate.receipt") and code != "valid":
        return [_held(tx_id, kind, p, str(code), height, at, lookup)]
    if code != "valid":
        return []
    if kind == "permit.decide":
        return _permit(p, height, at, lookup)
    if kind == "violation.report":
        return _violations([lookup("violation", violation_id=p.get("violation_id"))], height, lookup)
    if kind == "penalty.record":
        return _penalty(p, height, at, lookup)
    if kind == "camera.sighting":  # the events the camera's sighting raised at once
        return _violations((lookup("sighting", sighting_id=p.get("sighting_id")) or {}).get("violations") or [],
                           height, lookup)
    out: list[Event] = []
    if kind in _RAISES_ON_TICKET and p.get("ticket_id"):
        out += _violations(lookup("violations", ticket_id=p["ticket_id"]) or [], height, lookup)
    if kind == "system.tick":
        out += _violations(lookup("violations", type="suspected_dumping", limit=1000) or [], height, lookup,
                           since=at)
        # a camera sighting whose grace window ended: dated at the sighting, up to the window + a tick earlier
        out += _violations(lookup("violations", type="no_ticket", limit=1000) or [], height, lookup, since=at,
                           margin_s=CAMERA_MARGIN_S)
    if kind == "gate.receipt":
        out += _alarm(p, height, at, lookup)
    return out


def _truck_of(plate: Any, lookup: Lookup, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``truck_id`` and ``company_id`` of the truck with ``plate`` (from ``known`` when it has them)."""
    tr = known if known and known.get("company_id") else (lookup("truck_by_plate", plate=plate) if plate else None)
    tr = tr or {}
    return {"truck_id": tr.get("truck_id"), "company_id": tr.get("company_id")}


def _contractor_of_project(project_id: Any, lookup: Lookup) -> str | None:
    if not project_id:
        return None
    pr = lookup("project", project_id=project_id) or {}
    return pr.get("contractor_org_id")


def _permit(p: Mapping[str, Any], height: int, at: str, lookup: Lookup) -> list[Event]:
    permit = lookup("permit", permit_id=p.get("permit_id"))
    if not permit:
        return []
    decisions = permit.get("decisions") or []
    facts = {"permit_id": permit["permit_id"], "project_id": permit.get("project_id"),
             "contractor_org_id": permit.get("contractor_org_id")}
    if p.get("decision") == "reject":
        facts |= {"department": p.get("department"), "reason_text": p.get("reason")}
        return [_event(f"permit_rejected:{permit['permit_id']}", "permit_rejected", height, at, facts)]
    if decisions and all(d.get("decision") == "approve" for d in decisions):
        return [_event(f"permit_approved:{permit['permit_id']}", "permit_approved", height, at, facts)]
    return []


def _held(tx_id: str, kind: str, p: Mapping[str, Any], code: str, height: int, at: str, lookup: Lookup) -> Event:
    t = lookup("ticket", ticket_id=p.get("ticket_id")) if p.get("ticket_id") else None
    t = t or {}
    facts = {"ticket_id": p.get("ticket_id"), "plate": p.get("plate"), "gate_id": p.get("gate_id"),
             "gate": "exit" if kind == "gate.exit" else "disposal", "reason": code,
             "project_id": (t.get("project") or {}).get("project_id"),
             "contractor_org_id": (t.get("project") or {}).get("contractor_org_id"),
             **_truck_of(p.get("plate") or (t.get("truck") or {}).get("plate"), lookup, t.get("truck"))}
    return _event(f"gate_held:{tx_id}", "gate_held", height, at, facts)


def _violations(found: Iterable[Any], height: int, lookup: Lookup, *, since: str | None = None,
                margin_s: int = 120) -> list[Event]:
    out = []
    for v in found:
        if not v or (since is not None and _epoch(str(v.get("reported_at"))) < _epoch(since) - margin_s):
            continue
        facts = {"violation_id": v["violation_id"], "type": v.get("type"), "plate": v.get("plate"),
                 "ticket_id": v.get("ticket_id"), "project_id": v.get("project_id"), "site_id": v.get("site_id"),
                 "contractor_org_id": _contractor_of_project(v.get("project_id"), lookup),
                 **_truck_of(v.get("plate"), lookup)}
        out.append(_event(f"violation:{v['violation_id']}", "violation_raised", height,
                          str(v.get("reported_at")), facts))
    return out


def _penalty(p: Mapping[str, Any], height: int, at: str, lookup: Lookup) -> list[Event]:
    contractor = p.get("target_id") if p.get("target_kind") == "contractor" else None
    plate = None
    for vid in p.get("violation_ids") or []:
        v = lookup("violation", violation_id=vid) or {}
        contractor = contractor or _contractor_of_project(v.get("project_id"), lookup)
        plate = plate or v.get("plate")
    company = p.get("target_id") if p.get("target_kind") == "company" else _truck_of(plate, lookup)["company_id"]
    facts = {"penalty_id": p.get("penalty_id"), "target_kind": p.get("target_kind"), "target_id": p.get("target_id"),
             "amount_yuan": p.get("amount_yuan"), "plate": plate, "contractor_org_id": contractor,
             "company_id": company,
             "violation_ids": list(p.get("violation_ids") or []) or None}
    return [_event(f"penalty:{p.get('penalty_id')}", "penalty_recorded", height, at, facts)]


def _alarm(p: Mapping[str, Any], height: int, at: str, lookup: Lookup) -> list[Event]:
    site_id = p.get("site_id")
    if not site_id:
        t = lookup("ticket", ticket_id=p.get("ticket_id")) or {}
        site_id = (t.get("site") or {}).get("site_id")
    s = lookup("site", site_id=site_id) if site_id else None
    if not s or not s.get("alarm"):
        return []
    # one alarm notice per site and (China) day: a site stays in alarm for many receipts
    facts = {"site_id": site_id, "site_name": s.get("name"), "load_rate_pct": s.get("load_rate_pct")}
    return [_event(f"site_alarm:{site_id}:{at[:10]}", "site_alarm", height, at, facts)]


def _epoch(iso_time: str) -> float:
    try:
        return datetime.fromisoformat(iso_time).timestamp()
    except ValueError:
        return 0.0
