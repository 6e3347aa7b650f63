"""What a rule sees besides the payload and the state: parameters, actor, signer, times."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger.core.consortium import Member
from ledger.eticket.errors import Refusal
from ledger.eticket.params import Params

Event = dict[str, Any]

#: Actor kinds (the part of ``tx.actor`` before the first colon) allowed per transaction type.
ACTOR_KINDS: Mapping[str, frozenset[str]] = {
    "registry.org": frozenset({"operator", "admin"}),
    "registry.project": frozenset({"operator", "admin", "contractor"}),
    "registry.site": frozenset({"operator", "admin"}),
    "registry.company": frozenset({"operator", "admin"}),
    "registry.truck": frozenset({"operator", "admin", "company"}),
    "registry.driver": frozenset({"operator", "admin", "company"}),
    "permit.apply": frozenset({"contractor", "operator"}),
    "permit.decide": frozenset({"approver"}),
    "permit.revoke": frozenset({"operator", "approver", "enforcement", "admin"}),
    "ticket.issue": frozenset({"contractor", "operator"}),
    "ticket.void": frozenset({"contractor", "operator"}),
    "gate.exit": frozenset({"gate", "operator"}),
    "trip.positions": frozenset({"gps", "operator", "system"}),
    "gate.receipt": frozenset({"gate", "operator"}),
    "violation.report": frozenset({"camera", "gate", "operator", "enforcement", "system"}),
    "violation.confirm": frozenset({"operator", "enforcement"}),
    "violation.dismiss": frozenset({"operator", "enforcement"}),
    "violation.dispatch": frozenset({"operator", "enforcement"}),
    "violation.resolve": frozenset({"operator", "enforcement", "centre"}),
    "penalty.record": frozenset({"enforcement"}),
    "system.tick": frozenset({"system", "operator", "admin"}),
}


@dataclass(frozen=True, slots=True)
class Env:
    """The environment of one transaction; ``time`` is the event time, ``now`` the block time."""

    params: Params
    actor: str
    actor_kind: str
    actor_parts: tuple[str, ...]
    signer: Member
    time: int
    now: int
    tx_id: str

    def actor_arg(self, index: int) -> str | None:
        """The ``index``-th colon-separated part after the kind (``gate:exit:P-1`` → 0: exit, 1: P-1)."""
        return self.actor_parts[index] if len(self.actor_parts) > index else None

    def require_own(self, kind: str, owner: str, what: str) -> None:
        """Refuse with ``forbidden`` when the actor is of ``kind`` and names another owner."""
        if self.actor_kind == kind and self.actor_arg(0) != owner:
            raise Refusal("forbidden", f"actor={self.actor} {what}={owner}")


def need(record: Any, code: str, detail: str) -> Any:
    """Return ``record`` or refuse with ``code`` when it is None."""
    if record is None:
        raise Refusal(code, detail)
    return record


def parse_actor(actor: str) -> tuple[str, tuple[str, ...]]:
    """Split ``kind:a:b`` into ("kind", ("a", "b"))."""
    kind, _, rest = actor.partition(":")
    return kind, tuple(rest.split(":")) if rest else ()
