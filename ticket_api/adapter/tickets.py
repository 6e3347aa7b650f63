"""Permits and tickets on the ledger: apply, decide, issue, read, and the signed QR of a ticket."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from ledger.qrticket.gatecheck import EXIT
from ledger.qrticket.ticket import TicketClaims, encode_ticket
from ledger.wire import ProvenanceExport
from ticket_api.adapter import heights
from ticket_api.adapter.acts import decision_act
from ticket_api.adapter.gateway import Gateway, iso, new_id
from ticket_api.adapter.outbox import holds_claim
from ticket_api.errors import InvalidRequest, NotFound, ServiceUnavailable
from ticket_api.issuer import Keyring
from ticket_api.ledger_client import Finality, LedgerRefusal
from ticket_api.service_data import (
    DecisionView,
    History,
    PermitApplication,
    PermitDecision,
    PermitView,
    Revocation,
    TicketRequest,
    TicketView,
)
from ticket_api.services import Changed, Pending, Submission
from ticket_api.tokens import STAFF_ROLES, Principal

Clock = Callable[[], datetime]


def _owner_or_staff(principal: Principal, owner_org: str, what: str) -> None:
    """A contractor sees only its own objects (others get 404, so ids do not leak); staff see all."""
    if principal.role in STAFF_ROLES:
        return
    if principal.role == "contractor" and principal.tenant == owner_org:
        return
    raise NotFound(f"no such {what}")


ID_ATTEMPTS = 5  # draws of a server-chosen id before duplicate_id reaches the client


def change_with_fresh_id(gw: Gateway, principal: Principal, sub: Submission, *, type: str, prefix: str,
                         chosen: str | None, payload_for: Callable[[str], dict[str, Any]],
                         now: datetime) -> tuple[Pending | Finality, Mapping[str, Any]]:
    """Submit the change creating a record with the client's ``chosen`` id or a server-drawn one.

    A server-drawn id is the second plus random digits: issuers busy in the same second collide now
    and then (the ledger refuses ``duplicate_id``), so another is drawn, up to :data:`ID_ATTEMPTS`
    times; a clash of a chosen id reaches the client.  Returns the outcome and the payload it wrote
    (an adopted earlier attempt's, from the idempotency journal, when there was one)."""
    for attempt in range(ID_ATTEMPTS):
        payload = payload_for(chosen or new_id(prefix, now))
        try:
            done = gw.change(principal, sub, type=type, payload=payload, now=now)
        except LedgerRefusal as exc:
            if exc.reason != "duplicate_id" or chosen or attempt == ID_ATTEMPTS - 1:
                raise
            continue
        return done, (done.payload if isinstance(done, Finality) and done.payload else payload)
    raise AssertionError("unreachable: the last attempt returns or raises")


def scoped_id(principal: Principal, chosen: str | None, field: str) -> str | None:
    """A client-chosen permit or ticket id, which must lie in the caller's own namespace: ``<tenant>:<rest>``.

    Ids are one namespace on the ledger, so a clash with another tenant's id would answer ``duplicate_id``
    and reveal that the id exists.  Server-drawn ids (``PM…``/``ET…`` and digits) hold no ``:``, so a tenant's
    namespace meets neither the server's nor another tenant's: ``duplicate_id`` can only name the caller's own
    id, and an id outside the caller's namespace is refused 422 whether or not it exists.
    """
    if chosen is None:
        return None
    if not chosen.startswith(f"{principal.tenant}:") or chosen == f"{principal.tenant}:":
        raise InvalidRequest(f"{field} outside the caller's namespace",
                             fields={field: [f"a chosen id must start with '{principal.tenant}:'"]})
    return chosen


class LedgerPermits:
    """``PermitService`` over the consortium."""

    def __init__(self, *, gateway: Gateway, clock: Clock) -> None:
        self.gw = gateway
        self.clock = clock

    def view(self, p: Mapping[str, Any]) -> PermitView:
        decisions: list[DecisionView] = [
            {"department": d["department"], "decision": d["decision"], "comment": d["reason"], "at": d["time"],
             "key_id": d.get("key_id")}
            for d in p["decisions"]
        ]
        return {
            "id": p["permit_id"],
            "status": p["state"],
            "project_id": p["project_id"],
            "contractor_org_id": p["contractor_org_id"],
            "volume_m3": p["quota_m3"],
            "issued_m3": p["issued_m3"],
            "remaining_m3": p["remaining_m3"],
            "tickets": p["tickets"],
            "disposal_site_ids": p["site_ids"],
            "truck_plates": list(p["truck_plates"]),
            "company_ids": p["company_ids"],
            "valid_from": p["valid_from"],
            "valid_to": p["valid_to"],
            "applied_at": p["applied_at"],
            "decided_at": p["decided_at"],
            "approval_seconds": p["approval_seconds"],
            "closed_reason": p["closed_reason"],
            "required_approvals": [d["department"] for d in p["decisions"]],
            "decisions": decisions,
            "route": list(p.get("route") or []),
        }

    def create_permit(self, principal: Principal, data: PermitApplication, sub: Submission) -> Changed[PermitView]:
        now = self.clock()
        project = self.gw.query("project", project_id=data["project_id"])
        if project is None or project["contractor_org_id"] != principal.tenant:
            # another contractor's project answers exactly as an unknown one
            raise LedgerRefusal("no such project of this contractor", reason="unknown_project")
        chosen = scoped_id(principal, data.get("permit_id"), "permit_id")
        truck_ids = self.gw.truck_ids(list(data.get("truck_plates") or []))

        def permit_payload(permit_id: str) -> dict[str, Any]:
            return {
                "permit_id": permit_id,
                "project_id": data["project_id"],
                "volume_m3": str(data["volume_m3"]),
                "site_ids": list(data["disposal_site_ids"]),
                "truck_ids": truck_ids,
                "company_ids": list(data.get("company_ids") or []),
                "valid_from": iso(data["valid_from"]),
                "valid_to": iso(data["valid_to"]),
                "time": iso(now),
                **({"route": [{"lat": f"{w['lat']:.6f}", "lon": f"{w['lon']:.6f}"} for w in data["route"]]}
                   if data.get("route") else {}),
            }

        done, payload = change_with_fresh_id(self.gw, principal, sub, type="permit.apply", prefix="PM",
                                             chosen=chosen, payload_for=permit_payload, now=now)
        if isinstance(done, Pending):
            return done
        return self.get_permit(principal, str(payload["permit_id"]), done.height)

    def decide(self, principal: Principal, permit_id: str, data: PermitDecision,
               sub: Submission) -> Changed[PermitView]:
        now = self.clock()
        payload = decision_act("permit.decide", permit_id, principal.tenant, data, now)
        done = self.gw.change(principal, sub, type="permit.decide", payload=payload, now=now)
        return done if isinstance(done, Pending) else self.get_permit(principal, permit_id, done.height)

    def revoke(self, principal: Principal, permit_id: str, data: Revocation, sub: Submission) -> Changed[PermitView]:
        now = self.clock()
        payload = {"permit_id": permit_id, "reason": data["reason"], "time": iso(now)}
        done = self.gw.change(principal, sub, type="permit.revoke", payload=payload, now=now)
        return done if isinstance(done, Pending) else self.get_permit(principal, permit_id, done.height)

    def get_permit(self, principal: Principal, permit_id: str, min_height: int | None = None) -> PermitView:
        p = self.gw.query("permit", permit_id=permit_id, min_height=min_height)
        if p is None:
            raise NotFound("no such permit")
        _owner_or_staff(principal, p["contractor_org_id"], "permit")
        return self.view(p)


class LedgerTickets:
    """``TicketService`` over the consortium; the API's issuer key signs each ticket's QR."""

    def __init__(self, *, gateway: Gateway, keyring: Keyring, clock: Clock, engine: Engine | None = None) -> None:
        self.gw = gateway
        self.keyring = keyring
        self.clock = clock
        self.engine = engine  # the API database's gate claims (a void must not undo a claimed exit)

    def _qr(self, t: Mapping[str, Any]) -> str:
        key = self.keyring.signing_key
        if key is None:
            raise ServiceUnavailable("no QR signing key is configured", reason="ledger_unavailable")
        claims = TicketClaims(
            ticket_id=t["ticket_id"],
            permit_id=t["permit_id"],
            project_id=t["project"]["project_id"],
            plate=t["truck"]["plate"],
            disposal_site_id=t["site"]["site_id"],
            volume_m3=float(t["volume_m3"]),
            valid_from=datetime.fromisoformat(t["issued_at"]),
            valid_until=datetime.fromisoformat(t["valid_until"]),
        )
        return encode_ticket(claims, key)

    def view(self, t: Mapping[str, Any], *, with_qr: bool) -> TicketView:
        out: TicketView = {
            "id": t["ticket_id"],
            "status": t["state"],
            "permit_id": t["permit_id"],
            "project_id": t["project"]["project_id"],
            "project_name": t["project"]["name"],
            "truck_plate": t["truck"]["plate"],
            "company_id": t["truck"]["company_id"],
            "driver_id": t["driver_id"],
            "disposal_site_id": t["site"]["site_id"],
            "disposal_site_name": t["site"]["name"],
            "volume_m3": t["volume_m3"],
            "valid_from": t["issued_at"],
            "valid_until": t["valid_until"],
            "expected_minutes": t["expected_minutes"],
            "departed_at": t["departed_at"],
            "received_at": t["received_at"],
            "measured_m3": t["measured_m3"],
            "weight_t": t.get("weight_t"),
            "discrepancy": t["discrepancy"],
            "closed_reason": t["closed_reason"],
            "last_position": t["last_position"],
            "violations": t["violations"],
        }
        if with_qr and t["state"] in ("issued", "departed"):
            out["qr"] = self._qr(t)
        return out

    def _load(self, principal: Principal, ticket_id: str, min_height: int | None = None) -> dict[str, Any]:
        t = self.gw.query("ticket", ticket_id=ticket_id, min_height=min_height)
        if t is None:
            raise NotFound("no such ticket")
        if principal.role == "driver":  # tenant: the truck the driver was bound to
            if t["truck"]["truck_id"] != principal.tenant:
                raise NotFound("no such ticket")
        else:
            _owner_or_staff(principal, t["project"]["contractor_org_id"], "ticket")
        return dict(t)

    def issue_ticket(self, principal: Principal, data: TicketRequest, sub: Submission) -> Changed[TicketView]:
        now = self.clock()
        chosen = scoped_id(principal, data.get("ticket_id"), "ticket_id")
        permit = self.gw.query("permit", permit_id=data["permit_id"])
        if permit is None or permit["contractor_org_id"] != principal.tenant:
            # another contractor's permit answers exactly as an unknown one
            raise LedgerRefusal("no such permit", reason="unknown_permit")
        truck_id = self.gw.truck_id(data["truck_plate"])

        def ticket_payload(ticket_id: str) -> dict[str, Any]:
            payload: dict[str, Any] = {
                "ticket_id": ticket_id,
                "permit_id": data["permit_id"],
                "truck_id": truck_id,
                "site_id": data["disposal_site_id"],
                "volume_m3": str(data["volume_m3"]),
                "time": iso(now),
            }
            if data.get("driver_id"):
                payload["driver_id"] = data["driver_id"]
            return payload

        try:
            done, payload = change_with_fresh_id(self.gw, principal, sub, type="ticket.issue", prefix="ET",
                                                 chosen=chosen, payload_for=ticket_payload, now=now)
        except LedgerRefusal as exc:
            if exc.reason != "site_alarm":
                raise
            exc.extra["recommended_sites"] = self._recommended(permit, data)
            raise
        if isinstance(done, Pending):
            return done
        ticket_id = str(payload["ticket_id"])
        if self.engine is not None:  # a gate reads at this height or above (read your own writes)
            heights.record(self.engine, ticket_id, done.height)
        t = self._load(principal, ticket_id, done.height)
        out: TicketView = {**self.view(t, with_qr=True), "tx_id": done.tx_id, "block_height": done.height}
        if t["site"].get("alarm"):  # issued to a site in alarm: the consortium only warns (site_alarm_policy)
            out["warnings"] = [{"reason": "site_alarm", "site_id": data["disposal_site_id"],
                                "recommended_sites": self._recommended(permit, data)}]
        return out

    def _recommended(self, permit: Mapping[str, Any], data: TicketRequest) -> list[dict[str, Any]]:
        """What the ledger's ``site_alarm`` names: other sites with room for the volume under their alarm,
        nearest to the project first, each marked ``on_permit``."""
        found = self.gw.query("recommend_sites", project_id=permit["project_id"], volume_m3=str(data["volume_m3"]),
                              exclude=data["disposal_site_id"]) or []
        return [{**r, "on_permit": r["site_id"] in permit["site_ids"]} for r in found]

    def void(self, principal: Principal, ticket_id: str, data: Revocation, sub: Submission) -> Changed[TicketView]:
        """Void an unused ticket; refused ``already_departed`` once an exit gate claimed it (the gate answered
        202 and the truck is on the road, though the exit may not be in a block yet)."""
        self._load(principal, ticket_id)
        if self.engine is not None and holds_claim(self.engine, ticket_id, EXIT):
            raise LedgerRefusal("an exit gate has claimed the ticket", reason="already_departed")
        now = self.clock()
        done = self.gw.change(principal, sub, type="ticket.void",
                              payload={"ticket_id": ticket_id, "reason": data["reason"], "time": iso(now)}, now=now)
        return done if isinstance(done, Pending) else self.view(self._load(principal, ticket_id, done.height),
                                                                with_qr=False)

    def get_ticket(self, principal: Principal, ticket_id: str) -> TicketView:
        t = self._load(principal, ticket_id)
        return self.view(t, with_qr=principal.role in ("contractor", "driver"))

    def ticket_qr(self, principal: Principal, ticket_id: str) -> str:
        t = self._load(principal, ticket_id)
        if t["state"] not in ("issued", "departed"):
            raise LedgerRefusal(f"ticket is {t['state']}", reason=t["state"] if t["state"] != "received"
                                else "already_received")
        return self._qr(t)

    def provenance(self, principal: Principal, kind: str, key: str) -> ProvenanceExport:
        """The raw export (``ledger.verify.provenance``) that ``scripts/verify-export`` checks offline."""
        return self.gw.client.provenance(kind, key)

    def history(self, principal: Principal, ticket_id: str) -> History:
        self._load(principal, ticket_id)
        export = self.gw.client.provenance("ticket", ticket_id)
        return history_view(export)


def history_view(export: ProvenanceExport) -> History:
    """A provenance export as the history contract: records with hex proofs and the parsed checkpoint."""
    from ledger.core import checkpoint as cp

    note = str(export["checkpoint"])
    body, _ = cp.split_note(note)
    c = cp.Checkpoint.parse_body(body)
    signers = [line[2:].split(" ")[0] for line in note.split("\n\n", 1)[1].splitlines() if line.startswith("— ")]
    return {
        "subject": export.get("subject"),
        "records": list(export["records"]),
        "checkpoint": {"origin": c.origin, "size": c.size, "root": c.root.hex(), "signatures": signers,
                       "note": note},
    }
