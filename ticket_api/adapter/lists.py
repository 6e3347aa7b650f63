"""Work lists over the consortium: one node query per page (``ledger.eticket.queries.list_page``).

The caller's tenant becomes the ledger's scope (``ledger.eticket.lists``): a contractor sees its own projects
and what happens on them, a transport company its trucks and drivers, staff everything.  The scope is applied
by the query on the node, so another tenant's items never leave it; a filter naming another tenant's object
finds nothing, like an unknown one.  Cursors are :mod:`ticket_api.cursor`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ledger.core.encoding import CHINA_TZ
from ticket_api import cursor
from ticket_api.adapter.gateway import Gateway
from ticket_api.adapter.tickets import LedgerPermits, LedgerTickets
from ticket_api.errors import ApiError, Forbidden, NotFound
from ticket_api.ledger_client import LedgerRefusal
from ticket_api.list_data import Credit, ListQuery, Page
from ticket_api.tokens import STAFF_ROLES, Principal

Clock = Callable[[], datetime]

#: ``awaiting=me`` of violations: the states each handler acts on next (confirm/dismiss, dispatch, resolve).
VIOLATION_QUEUES = {"operator": ["reported", "confirmed"], "enforcement": ["confirmed", "dispatched"]}
#: query parameters that are not ledger filters
PAGING = ("limit", "cursor", "awaiting", "since", "until")


class NoQueue(ApiError):
    reason = "no_queue"


def scope_of(principal: Principal) -> dict[str, str] | None:
    """The ledger scope of a caller: None for staff (everything), else its tenant."""
    if principal.role in STAFF_ROLES:
        return None
    if principal.role == "contractor":
        return {"org": principal.tenant}
    if principal.role == "company":
        return {"company": principal.tenant}
    if principal.role == "driver":  # tenant: the truck the transport company bound the driver to
        return {"truck": principal.tenant}
    raise Forbidden(f"role {principal.role} reads no work list")


def _epoch(t: datetime | None) -> int | None:
    return None if t is None else int(t.timestamp())


class LedgerLists:
    """``ListService`` over the consortium."""

    def __init__(self, *, gateway: Gateway, clock: Clock, permits: LedgerPermits, tickets: LedgerTickets) -> None:
        self.gw = gateway
        self.clock = clock
        self.permit_view = permits.view
        self.ticket_view = tickets.view

    def _page(self, principal: Principal, kind: str, query: ListQuery, *, order: str = "newest",
              extra: Mapping[str, Any] | None = None,
              shape: Callable[[dict[str, Any]], dict[str, Any]] = dict) -> Page:
        given: Mapping[str, Any] = query
        filters: dict[str, Any] = {k: v for k, v in given.items() if k not in PAGING and v is not None}
        filters.update({k: _epoch(given.get(k)) for k in ("since", "until") if given.get(k) is not None})
        filters.update(extra or {})
        scope = scope_of(principal)
        fp = cursor.fingerprint(f"{kind}:{order}", scope, filters)
        after = cursor.decode(given["cursor"], kind, fp) if given.get("cursor") else None
        got = self.gw.query("list_page", kind=kind, scope=scope, filters=filters, order=order,
                            after=None if after is None else list(after), limit=int(given.get("limit") or 50))
        last = got.get("last")
        nxt = cursor.encode(kind, fp, (int(last[0]), str(last[1]))) if got.get("more") and last else None
        return {"items": [shape(dict(i)) for i in got["items"]], "next": nxt}

    def _age(self, item: dict[str, Any], at_field: str) -> dict[str, Any]:
        now = self.clock().astimezone(CHINA_TZ)
        at = item.get(at_field)
        item["age_seconds"] = max(0, int((now - datetime.fromisoformat(at)).total_seconds())) if at else None
        return item

    def permits(self, principal: Principal, query: ListQuery) -> Page:
        """Newest first; ``awaiting=me``: an approver's department's undecided permits, oldest first."""
        def shape(p: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {**self.permit_view(p), "project": p.get("project"), "sites": p.get("sites")}
            return self._age(out, "applied_at") if query.get("awaiting") else out

        if query.get("awaiting") == "me":
            if principal.role != "approver":
                raise NoQueue("awaiting=me for permits is an approver's queue", fields={"awaiting": ["approver"]})
            return self._page(principal, "permit", query, order="oldest",
                              extra={"awaiting_department": principal.tenant}, shape=shape)
        return self._page(principal, "permit", query, shape=shape)

    def tickets(self, principal: Principal, query: ListQuery) -> Page:
        return self._page(principal, "ticket", query, shape=lambda t: dict(self.ticket_view(t, with_qr=False)))

    def projects(self, principal: Principal, query: ListQuery) -> Page:
        return self._page(principal, "project", query, order="oldest")

    def trucks(self, principal: Principal, query: ListQuery) -> Page:
        return self._page(principal, "truck", query, order="oldest")

    def violations(self, principal: Principal, query: ListQuery) -> Page:
        """Newest first; ``awaiting=me``: a handler's queue, oldest first, each with its age."""
        if query.get("awaiting") == "me":
            states = VIOLATION_QUEUES.get(principal.role)
            if states is None:
                raise NoQueue("awaiting=me for violations is an operator's or enforcement's queue",
                              fields={"awaiting": ["operator", "enforcement"]})
            return self._page(principal, "violation", query, order="oldest", extra={"states": states},
                              shape=lambda v: self._age(v, "reported_at"))
        return self._page(principal, "violation", query, shape=lambda v: self._age(v, "reported_at"))

    def penalties(self, principal: Principal, query: ListQuery) -> Page:
        return self._page(principal, "penalty", query)

    def credit(self, principal: Principal, kind: str, key: str) -> Credit:
        """A company's, truck's or driver's credit score: staff any; a company its own, its trucks' and
        drivers'; a contractor those of the trucks and companies on its permits (others: 404 like unknown)."""
        if kind not in ("company", "truck", "driver"):
            raise NotFound(f"no credit kind {kind}")
        found = self.gw.query("credit_of", kind=kind, key=key, scope=scope_of(principal))
        if found is None:
            raise NotFound(f"no such {kind}")
        return {"kind": kind, "id": key, "credit": int(found["credit"]),
                "suspended_until": found.get("suspended_until"), "company_id": found.get("company_id")}

    def company_truck(self, principal: Principal, plate: str) -> str:
        truck = self.gw.query("truck_by_plate", plate=plate)
        if truck is None or principal.role != "company" or truck["company_id"] != principal.tenant:
            raise LedgerRefusal(f"no truck with plate {plate} of this company", reason="unknown_truck")
        return str(truck["truck_id"])
