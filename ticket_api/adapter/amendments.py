"""Permit amendments on the ledger (``permit.amend``, ``permit.amend_decide``; docs/ETICKET.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ticket_api.adapter.acts import decision_act
from ticket_api.adapter.gateway import Gateway, iso
from ticket_api.adapter.tickets import change_with_fresh_id, scoped_id
from ticket_api.errors import NotFound
from ticket_api.ledger_client import LedgerRefusal
from ticket_api.service_data import AmendmentRequest, PermitDecision
from ticket_api.services import Changed, Pending, Submission
from ticket_api.tokens import STAFF_ROLES, Principal

Clock = Callable[[], datetime]
View = dict[str, Any]


def view(a: Mapping[str, Any]) -> View:
    """The ledger's amendment as the API shows it."""
    return {
        "id": a["amendment_id"], "permit_id": a["permit_id"], "status": a["state"],
        "contractor_org_id": a["contractor_org_id"], "add_disposal_site_ids": a["add_site_ids"],
        "add_truck_ids": a["add_truck_ids"], "add_company_ids": a["add_company_ids"], "reason": a["reason"],
        "requested_at": a["requested_at"], "decided_at": a["decided_at"],
        "required_approvals": [d["department"] for d in a["decisions"]],
        "decisions": [{"department": d["department"], "decision": d["decision"], "comment": d["reason"],
                       "at": d["time"], "key_id": d.get("key_id")} for d in a["decisions"]],
    }


class LedgerAmendments:
    """``AmendmentService`` over the consortium."""

    def __init__(self, *, gateway: Gateway, clock: Clock) -> None:
        self.gw = gateway
        self.clock = clock

    def request(self, principal: Principal, permit_id: str, data: AmendmentRequest,
                sub: Submission) -> Changed[View]:
        """The permit's contractor asks for sites, trucks or companies to be added."""
        now = self.clock()
        permit = self.gw.query("permit", permit_id=permit_id)
        if permit is None or permit["contractor_org_id"] != principal.tenant:
            raise LedgerRefusal("no such permit of this contractor", reason="unknown_permit")
        chosen = scoped_id(principal, data.get("amendment_id"), "amendment_id")
        truck_ids = self.gw.truck_ids(list(data.get("add_truck_plates") or []))

        def payload_for(amendment_id: str) -> dict[str, Any]:
            payload: dict[str, Any] = {
                "amendment_id": amendment_id, "permit_id": permit_id,
                "add_site_ids": list(data.get("add_disposal_site_ids") or []), "add_truck_ids": truck_ids,
                "add_company_ids": list(data.get("add_company_ids") or []), "time": iso(now),
            }
            if data.get("reason"):
                payload["reason"] = data["reason"]
            return payload

        done, payload = change_with_fresh_id(self.gw, principal, sub, type="permit.amend", prefix="PA",
                                             chosen=chosen, payload_for=payload_for, now=now)
        if isinstance(done, Pending):
            return done
        return self.get(principal, str(payload["amendment_id"]), done.height)

    def decide(self, principal: Principal, amendment_id: str, data: PermitDecision,
               sub: Submission) -> Changed[View]:
        """One concerned department's decision (the principal's tenant is the department)."""
        now = self.clock()
        payload = decision_act("permit.amend_decide", amendment_id, principal.tenant, data, now)
        done = self.gw.change(principal, sub, type="permit.amend_decide", payload=payload, now=now)
        return done if isinstance(done, Pending) else self.get(principal, amendment_id, done.height)

    def get(self, principal: Principal, amendment_id: str, min_height: int | None = None) -> View:
        a = self.gw.query("amendment", amendment_id=amendment_id, min_height=min_height)
        if a is None or (principal.role not in STAFF_ROLES and a["contractor_org_id"] != principal.tenant):
            raise NotFound("no such amendment")
        return view(a)

    def list(self, principal: Principal, *, awaiting: str | None = None, permit_id: str | None = None) -> View:
        """A contractor's own amendments, an approver's queue (``awaiting=me``), or any for staff."""
        query: dict[str, Any] = {"permit_id": permit_id}
        if awaiting == "me":
            if principal.role != "approver":
                return {"items": []}
            query["awaiting"] = principal.tenant
        if principal.role not in STAFF_ROLES:
            query["contractor"] = principal.tenant
        return {"items": [view(a) for a in self.gw.query("amendments", **query) or []]}
