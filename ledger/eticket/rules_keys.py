"""Keys of actors on the chain (``registry.key``, ``registry.key_revoke``) and the check of an act's own
signature (:mod:`ledger.eticket.acts`).

Who may register a key is the point: a department's approvers' and enforcement officers' keys (actor
``approver:<department>``, ``enforcement:<department>``) only by a transaction that department's member signed
itself (never the gateway's), the governance centre's operators' key (actor ``operator``) by a department's
member likewise; a device's key (``gate:…``, ``camera:…``, ``gps:…``) by an operator.  Pure: times
are the transaction's and the block's.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from ledger.eticket.acts import (
    CENTRE_KIND,
    DEPARTMENT_KINDS,
    DEVICE_KINDS,
    TOWN_CENTRE_KIND,
    ActSignature,
    actor_matches,
    verifies,
)
from ledger.eticket.errors import PayloadError, Refusal
from ledger.eticket.params import Env, Event, need, parse_actor
from ledger.eticket.records import ActorKey, evolve
from ledger.eticket.state import Writes
from ledger.eticket.units import iso


def _authority(env: Env, actor: str) -> None:
    """Refuse unless the transaction's signer may register or revoke keys of ``actor``."""
    kind, parts = parse_actor(actor)
    if kind in DEPARTMENT_KINDS:
        if len(parts) != 1 or parts[0] not in env.params.departments:
            raise PayloadError(f"actor must be {kind}:<department> of {', '.join(env.params.departments)}")
        if env.signer.name != parts[0] or "gateway" in env.signer.roles:
            raise Refusal("forbidden", f"signer={env.signer.name}: a department registers its {kind} keys "
                                       f"with its own member key ({parts[0]})")
    elif kind == CENTRE_KIND:
        if parts:
            raise PayloadError("the governance centre's operators' key is for actor 'operator'")
        if env.signer.name not in env.params.departments or "gateway" in env.signer.roles:
            raise Refusal("forbidden", f"signer={env.signer.name}: the governance centre's operators' key is "
                                       "registered by a department with its own member key")
    elif kind == TOWN_CENTRE_KIND:
        if len(parts) != 1 or not parts[0]:
            raise PayloadError("a town centre's key is for actor centre:<centre id>")
        if env.signer.name not in env.params.departments or "gateway" in env.signer.roles:
            raise Refusal("forbidden", f"signer={env.signer.name}: a town centre's key is registered by a "
                                       "department with its own member key")
    elif kind in DEVICE_KINDS:
        if not parts:
            raise PayloadError("a device key's actor names the device, e.g. gate:exit:P-001")
        if env.actor_kind not in ("operator", "admin"):
            raise Refusal("forbidden", f"actor={env.actor}: devices' keys are registered by an operator")
    else:
        raise PayloadError("actor kind must be approver, enforcement, operator, centre, gate, camera or gps")


def registry_key(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """Register an actor's public key with its validity period."""
    alg, raw, key_id = p["public_key"]
    if p["key_id"] != key_id:
        raise PayloadError(f"key_id must be the public key's id {key_id}")
    if w.get("actor_key", key_id) is not None:
        raise Refusal("duplicate_id", f"key={key_id}")
    _authority(env, p["actor"])
    if p["valid_until"] <= p["valid_from"]:
        raise PayloadError("valid_until must be after valid_from")
    key = ActorKey(key_id, p["actor"], alg, base64.b64encode(raw).decode("ascii"), p["valid_from"],
                   p["valid_until"], env.signer.name, env.time)
    w.put("actor_key", key_id, key)
    return [{"event": "key_registered", "key_id": key_id, "actor": key.actor, "valid_until": iso(key.valid_until)}]


def registry_key_revoke(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """Revoke a key (lost, compromised, its holder gone): acts it signs are refused from then on."""
    key: ActorKey = need(w.get("actor_key", p["key_id"]), "unknown_act_key", f"key={p['key_id']}")
    _authority(env, key.actor)
    if key.revoked_at is not None:
        raise Refusal("key_revoked", f"key={key.key_id} revoked={iso(key.revoked_at)}")
    w.put("actor_key", key.key_id, evolve(key, revoked_at=env.time, revoked_reason=p["reason"]))
    return [{"event": "key_revoked", "key_id": key.key_id, "actor": key.actor}]


def check_act(w: Writes, tx_type: str, payload: Mapping[str, Any], sig: ActSignature | None,
              env: Env) -> str | None:
    """An act of a type the consortium lists in ``act_signed`` carries its actor's valid signature; any act
    that carries one has it checked the same way.  Returns the signing key's id (None: not signed)."""
    if sig is None:
        if tx_type in env.params.act_signed:
            raise Refusal("act_unsigned", f"{tx_type} by {env.actor} needs its actor's signature (act_sig)")
        return None
    key: ActorKey | None = w.get("actor_key", sig.key_id)
    if key is None:
        raise Refusal("unknown_act_key", f"key={sig.key_id}")
    if not actor_matches(key.actor, env.actor):
        raise Refusal("act_key_mismatch", f"key={key.key_id} actor={key.actor} act_actor={env.actor}")
    if key.revoked_at is not None and key.revoked_at <= env.now:
        raise Refusal("key_revoked", f"key={key.key_id} revoked={iso(key.revoked_at)}")
    if env.time < key.valid_from:
        raise Refusal("key_not_yet_valid", f"key={key.key_id} valid_from={iso(key.valid_from)}")
    if env.time > key.valid_until:
        raise Refusal("key_expired", f"key={key.key_id} valid_until={iso(key.valid_until)}")
    if not verifies(key.alg, base64.b64decode(key.public_key), tx_type, payload, sig):
        raise Refusal("bad_act_signature", f"key={key.key_id}")
    return key.key_id
