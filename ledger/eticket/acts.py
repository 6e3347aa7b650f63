"""Acts signed by their actors: a department's approvers and enforcement officers, a gate, a camera, a GPS
terminal (pure: no I/O, no clock).

The envelope of every transaction is signed by the consortium member that submits it (the API's gateway for
mini-program and staff requests).  That proves who *relayed* an act, not who *did* it.  An act of a type the
consortium lists in ``eticket.act_signed`` (by default a department's permit and amendment decisions) must
also carry ``act_sig`` in its payload: the actor's own signature over the transaction type and the rest of
the payload, by a key registered on the chain for that actor (``registry.key``).  A department registers
its approvers' keys itself, with its own member key; the gateway can neither register such a key nor sign
with one, so it cannot write a department's decision.

``act_sig`` is ``{"key_id": "<16 hex>", "alg": "ed25519", "value": "<base64 signature>"}`` over::

    b"muck-ledger/act/v1\\n" + RFC 8785 canonical JSON of {"type": <tx type>, "payload": <payload without act_sig>}

The helpers that build a payload (:func:`decision_payload`, :func:`exit_payload`, :func:`receipt_payload`,
:func:`sighting_payload`, :func:`positions_payload`) are shared by the API and the clients that sign, so both
put the same bytes under the signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger.core.crypto import ED25519, PrivateKey, key_id_for, verify_raw
from ledger.core.encoding import canonical
from ledger.eticket.errors import PayloadError

#: Prefix of every act-signature message (domain separation from transactions and headers).
ACT_CONTEXT = b"muck-ledger/act/v1\n"
#: The payload field holding the actor's signature.
ACT_FIELD = "act_sig"
#: Actor kinds whose keys a department registers itself (``<kind>:<department>``: its approvers, its
#: enforcement officers), and those an operator registers (devices).
DEPARTMENT_KINDS = frozenset({"approver", "enforcement"})
DEVICE_KINDS = frozenset({"gate", "camera", "gps"})
#: The governance centre's operators (actor ``operator``, its users ``operator:<pseudonym>``): they confirm,
#: dismiss and dispatch events; their key is registered by a department's own member (the centre's
#: department), never by the gateway, whose API holds the operators' tokens.
CENTRE_KIND = "operator"
#: A town's grassroots governance centre (基层治理中心, actor ``centre:<centre id>``, its staff
#: ``centre:<centre id>:<pseudonym>``) resolves the violations dispatched to it; its key, too, is registered by
#: a department's own member (the centre's department), never by the gateway.
TOWN_CENTRE_KIND = "centre"
#: The types that need an actor signature unless the consortium says otherwise.
DEFAULT_ACT_SIGNED = ("permit.amend_decide", "permit.decide")
#: The acts devices sign (a consortium whose devices all have keys lists them in ``act_signed``) and those a
#: department's enforcement officers sign.
DEVICE_ACTS = ("camera.sighting", "gate.exit", "gate.receipt", "trip.positions")
ENFORCEMENT_ACTS = ("penalty.record", "violation.confirm", "violation.dismiss", "violation.dispatch",
                    "violation.resolve")
#: The policy of a consortium whose departments, gates, cameras, GPS terminals and enforcement officers all sign
#: their acts: the gateway key then submits only the acts of mini-program users (contractors, transport companies)
#: and of operators outside these types.  What a new consortium's genesis holds (``params.default_parameters``);
#: a consortium whose genesis names no ``act_signed`` keeps :data:`DEFAULT_ACT_SIGNED`.
FULL_ACT_SIGNED = tuple(sorted({*DEFAULT_ACT_SIGNED, *DEVICE_ACTS, *ENFORCEMENT_ACTS}))

_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class ActSignature:
    """An actor's signature over one act."""

    key_id: str
    alg: str
    value: bytes


def act_message(tx_type: str, payload: Mapping[str, Any]) -> bytes:
    """The bytes an actor signs: the type and the payload without ``act_sig``."""
    body = {k: v for k, v in payload.items() if k != ACT_FIELD}
    return ACT_CONTEXT + canonical({"type": tx_type, "payload": body})


def act_signature(key: PrivateKey, tx_type: str, payload: Mapping[str, Any]) -> dict[str, str]:
    """The ``act_sig`` member the actor's ``key`` makes for the act (the client side of an act)."""
    sig = key.sign(act_message(tx_type, payload))
    return {"key_id": key.key_id, "alg": key.alg, "value": base64.b64encode(sig).decode("ascii")}


def sign_act(key: PrivateKey, tx_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` with the actor's ``act_sig`` added."""
    return {**{k: v for k, v in payload.items() if k != ACT_FIELD}, ACT_FIELD: act_signature(key, tx_type, payload)}


def split_act(payload: Mapping[str, Any]) -> tuple[Mapping[str, Any], ActSignature | None]:
    """The payload without ``act_sig`` (the payload itself when it has none: no copy on the common path), and
    the parsed signature (None when absent); PayloadError when it is malformed."""
    if ACT_FIELD not in payload:
        return payload, None
    body = {k: v for k, v in payload.items() if k != ACT_FIELD}
    raw = payload[ACT_FIELD]
    if not isinstance(raw, Mapping) or set(raw) != {"key_id", "alg", "value"}:
        raise PayloadError("act_sig must be {key_id, alg, value}")
    key_id, alg, value = key_id_field(raw["key_id"], "act_sig.key_id"), raw["alg"], raw["value"]
    if alg != ED25519:
        raise PayloadError(f"act_sig.alg must be {ED25519}")
    if not isinstance(value, str) or len(value) > 200:
        raise PayloadError("act_sig.value must be base64")
    try:
        sig = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError("act_sig.value must be base64") from None
    return body, ActSignature(key_id, alg, sig)


def verifies(alg: str, raw_public: bytes, tx_type: str, payload: Mapping[str, Any], sig: ActSignature) -> bool:
    """True when ``sig`` is the key's signature over the act."""
    return sig.alg == alg and verify_raw(alg, raw_public, act_message(tx_type, payload), sig.value)


def parse_public_key(raw: object) -> tuple[str, bytes, str]:
    """``{"alg": "ed25519", "value": "<base64 of 32 bytes>"}`` → (alg, raw bytes, key id)."""
    if not isinstance(raw, Mapping) or set(raw) != {"alg", "value"}:
        raise PayloadError("public_key must be {alg, value}")
    if raw["alg"] != ED25519:
        raise PayloadError(f"public_key.alg must be {ED25519}")
    try:
        key = base64.b64decode(str(raw["value"]), validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError("public_key.value must be base64") from None
    if len(key) != 32:
        raise PayloadError("an Ed25519 public key is 32 bytes")
    return ED25519, key, key_id_for(ED25519, key)


def key_id_field(v: object, what: str) -> str:
    """A payload's key id: 16 hex digits (``ledger.core.crypto.key_id_for``), nothing else."""
    if not isinstance(v, str) or not _KEY_ID.fullmatch(v):
        raise PayloadError(f"{what} must be a key id (16 hex digits)")
    return v


def public_key_field(v: object, what: str) -> tuple[str, bytes, str]:
    """A payload's public key (see :func:`parse_public_key`)."""
    return parse_public_key(v)


def public_key_json(key: PrivateKey) -> dict[str, str]:
    """The ``public_key`` field of a ``registry.key`` payload for ``key``."""
    return {"alg": key.alg, "value": base64.b64encode(key.public_key.raw).decode("ascii")}


def actor_matches(key_actor: str, actor: str) -> bool:
    """A key registered for ``approver:chengguan`` signs for ``approver:chengguan`` and its users
    (``approver:chengguan:<pseudonym>``); a device key for exactly its device."""
    return actor == key_actor or actor.startswith(key_actor + ":")


#: the decided object's id field, per decision type
DECISION_IDS: Mapping[str, str] = {"permit.decide": "permit_id", "permit.amend_decide": "amendment_id"}


def decision_payload(tx_type: str, object_id: str, department: str, decision: str, reason: str | None,
                     time: str) -> dict[str, Any]:
    """The ``permit.decide`` or ``permit.amend_decide`` payload a department signs and the API submits."""
    out: dict[str, Any] = {DECISION_IDS[tx_type]: object_id, "department": department, "decision": decision,
                           "time": time}
    if reason:
        out["reason"] = reason
    return out


def decision_body(key: PrivateKey, tx_type: str, object_id: str, department: str, decision: str,
                  comment: str | None, time: str) -> dict[str, Any]:
    """The body of ``POST /api/v1/permits/<id>/decisions`` (``tx_type`` ``permit.decide``) or
    ``/amendments/<id>/decisions`` (``permit.amend_decide``) signed by the department's ``key`` at ``time``
    (ISO 8601 +08:00, whole seconds, as the API formats it)."""
    payload = decision_payload(tx_type, object_id, department, decision, comment, time)
    return {"decision": decision, "comment": comment, "time": time, ACT_FIELD: act_signature(key, tx_type, payload)}


def exit_payload(ticket_id: str, gate_id: str, plate: str, covered: bool, time: str, *,
                 photo_digest: str | None = None, offline: bool = False) -> dict[str, Any]:
    """The ``gate.exit`` payload a site-exit gate signs and the API submits (``plate`` normalised, as
    ``ledger.qrticket.gatecheck.normalise_plate`` gives it; ``offline``: a scan let through while offline)."""
    out: dict[str, Any] = {"ticket_id": ticket_id, "gate_id": gate_id, "plate": plate, "covered": covered,
                           "time": time}
    if photo_digest:
        out["photo_digest"] = photo_digest
    if offline:
        out["offline"] = True
    return out


def receipt_payload(ticket_id: str, gate_id: str, site_id: str, plate: str, measured: Mapping[str, str],
                    time: str, *, photo_digest: str | None = None) -> dict[str, Any]:
    """The ``gate.receipt`` payload a disposal gate signs and the API submits; ``measured``: those of
    ``volume_m3``, ``weight_t``, ``gross_t``, ``tare_t`` given, as decimal strings."""
    out: dict[str, Any] = {"ticket_id": ticket_id, "gate_id": gate_id, "site_id": site_id, "plate": plate,
                           **{k: str(v) for k, v in measured.items()}, "time": time}
    if photo_digest is not None:
        out["photo_digest"] = str(photo_digest)
    return out


def sighting_payload(sighting_id: str, camera_id: str, plate: str, covered: bool, photo_digest: str,
                     time: str) -> dict[str, Any]:
    """The ``camera.sighting`` payload a camera signs and the API submits (``photo_digest``:
    ``sha256:<hex>`` of the photo's bytes; ``plate`` normalised)."""
    return {"sighting_id": sighting_id, "camera_id": camera_id, "plate": plate, "covered": covered,
            "photo_digest": photo_digest, "time": time}


def position_point(t: str, lat: float, lon: float, speed_kmh: float) -> dict[str, Any]:
    """One point of a ``trip.positions`` batch as the API writes it (``t``: ISO 8601 +08:00, whole seconds;
    degrees to 6 decimals, speed to 0.1 km/h)."""
    return {"t": t, "lat": round(float(lat), 6), "lon": round(float(lon), 6), "speed_kmh": round(float(speed_kmh), 1)}


def batch_id(points: list[dict[str, Any]]) -> str:
    """A GPS batch's id: a digest of its points (the same points are the same batch, sent twice or not)."""
    return "b" + hashlib.sha256(json.dumps(points, sort_keys=True).encode()).hexdigest()[:20]


def positions_payload(ticket_id: str, points: list[dict[str, Any]], time: str) -> dict[str, Any]:
    """The ``trip.positions`` payload a GPS terminal signs and the API submits: ``points`` (made by
    :func:`position_point`) in time order, the batch id their digest, ``time`` when the batch was sent."""
    ordered = sorted(points, key=lambda p: str(p["t"]))
    return {"ticket_id": ticket_id, "batch_id": batch_id(ordered), "points": ordered, "time": time}

