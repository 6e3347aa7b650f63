"""Read side of the actors' keys on the chain (``registry.key``): who may sign which acts, since when."""

from __future__ import annotations

from typing import Any, Protocol

from ledger.eticket.acts import actor_matches
from ledger.eticket.record_json import time_text
from ledger.eticket.records import ActorKey
from ledger.eticket.state import State


class _Machine(Protocol):
    state: State
    now: int


def key_json(k: ActorKey, now: int) -> dict[str, Any]:
    """A key with its validity and whether it signs now (``active``)."""
    active = k.revoked_at is None and k.valid_from <= now <= k.valid_until
    return {"key_id": k.key_id, "actor": k.actor, "public_key": {"alg": k.alg, "value": k.public_key},
            "valid_from": time_text(k.valid_from), "valid_until": time_text(k.valid_until),
            "registered_by": k.registered_by, "registered_at": time_text(k.registered_at),
            "revoked_at": time_text(k.revoked_at), "revoked_reason": k.revoked_reason, "active": active}


def actor_key(m: _Machine, key_id: str) -> dict[str, Any] | None:
    """One registered key, or None."""
    k = m.state.tables["actor_key"].get(key_id)
    return None if k is None else key_json(k, m.now)


def actor_keys(m: _Machine, actor: str | None = None) -> list[dict[str, Any]]:
    """Every registered key (of ``actor`` and its users when given), by actor then registration time."""
    keys = [k for k in m.state.tables["actor_key"].values() if actor is None or actor_matches(k.actor, actor)
            or actor_matches(actor, k.actor)]
    return [key_json(k, m.now) for k in sorted(keys, key=lambda k: (k.actor, k.registered_at, k.key_id))]
