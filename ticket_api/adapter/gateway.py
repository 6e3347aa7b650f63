"""The gateway: turns an authenticated caller's request into a signed ledger transaction and submits it."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from ledger.core import encoding
from ledger.core.crypto import PrivateKey
from ledger.core.transaction import Transaction
from ledger.eticket import pii
from ticket_api.errors import Forbidden
from ticket_api.ledger_client import Finality, LedgerRefusal, NodeClient
from ticket_api.services import Pending, Submission
from ticket_api.tokens import Principal


def iso(t: datetime) -> str:
    """ISO 8601 in China time, whole seconds (the ledger's event-time format)."""
    return encoding.iso(t, timespec="seconds")


#: Domain label of the actor-pseudonym key derived from the gateway key (docs/ETICKET.md "Actor").
PSEUDONYM_LABEL = b"muck-ledger/actor-pseudonym/v1\n"


def pseudonym_key(key: PrivateKey) -> bytes:
    """The secret HMAC key of actor pseudonyms: SHA-256 of the gateway key's (deterministic Ed25519) signature
    over :data:`PSEUDONYM_LABEL`; the same for every API worker holding that key, unknown to anyone else."""
    return hashlib.sha256(key.sign(PSEUDONYM_LABEL)).digest()


def pseudonym(secret: bytes, subject: str) -> str:
    """A token subject's keyed pseudonym: ``u`` and 16 letters ``a``-``p`` (64 bits of HMAC-SHA256).

    Letters only, so a pseudonym never looks like a number the personal-data screen refuses; keyed, so a
    subject such as ``zhangsan-13800138000`` cannot be found by hashing guesses.
    """
    mac = hmac.new(secret, subject.encode("utf-8"), hashlib.sha256).digest()[:8]
    return "u" + "".join(chr(0x61 + (b >> 4)) + chr(0x61 + (b & 15)) for b in mac)


def actor_of(principal: Principal, secret: bytes) -> str:
    """The ledger actor (docs/ETICKET.md "Actor") for a caller: role kind, tenant, pseudonymous user.

    The user part is always :func:`pseudonym` of the token subject (staff and WeChat users alike): no openid,
    name or phone number reaches the chain.  A truck terminal's subject is the terminal's registry id (a
    device, not a person) and stays readable: the rules match it against the truck's ``terminal_id``.
    """
    user = pseudonym(secret, principal.subject)
    role, tenant = principal.role, principal.tenant
    if role == "contractor":
        return f"contractor:{tenant}"
    if role == "approver":
        return f"approver:{tenant}:{user}"
    if role == "exit_gate":
        return f"gate:exit:{tenant}"
    if role == "disposal_gate":
        return f"gate:disposal:{tenant}"
    if role == "truck_terminal":  # tenant: the truck's plate; subject: the terminal id the truck registered
        return f"gps:{principal.subject}"
    if role == "camera":  # tenant: the camera's registry id (registry.camera)
        return f"camera:{tenant}"
    if role == "enforcement":  # tenant: the department whose officer it is (its key signs their acts)
        return f"enforcement:{tenant}:{user}"
    if role == "operator":
        return f"operator:{user}"
    raise Forbidden(f"role {role} cannot change the ledger")


def new_id(prefix: str, at: datetime, digits: int = 4) -> str:
    """A fresh id in the seed's style: prefix, local timestamp, random digits (``ET20261123221005 4711``)."""
    stamp = at.astimezone(encoding.CHINA_TZ).strftime("%Y%m%d%H%M%S")
    return f"{prefix}{stamp}{secrets.randbelow(10**digits):0{digits}d}"


class Gateway:
    """Signs with the gateway member's key and submits through a :class:`NodeClient`."""

    def __init__(self, *, key: PrivateKey, client: NodeClient) -> None:
        self.key = key
        self.client = client
        self._pseudonym_key = pseudonym_key(key)

    def actor(self, principal: Principal) -> str:
        """The ledger actor of ``principal`` (:func:`actor_of` under this gateway's pseudonym key)."""
        return actor_of(principal, self._pseudonym_key)

    def sign(self, *, type: str, payload: Mapping[str, Any], actor: str, now: datetime) -> Transaction:
        """The gateway member's signed transaction for a caller's state change (not submitted).

        Personal data is refused here, before signing, by the rules' own screen (reason ``personal_data``,
        :class:`~ledger.eticket.errors.PersonalData`), so the caller hears it at once.
        """
        pii.screen(payload, actor)
        return Transaction.create(key=self.key, type=type, payload=dict(payload), actor=actor, timestamp=iso(now))

    def submit(self, *, type: str, payload: Mapping[str, Any], actor: str, now: datetime,
               wait: bool = True) -> Finality:
        """Sign and submit; raise :class:`LedgerRefusal` with the rule's reason code when refused.

        Without ``wait`` the answer is the pending submission (its ``tx_id``).
        """
        return self.send(self.sign(type=type, payload=payload, actor=actor, now=now), wait=wait)

    def change(self, principal: Principal, sub: Submission, *, type: str, payload: Mapping[str, Any],
               now: datetime) -> Pending | Finality:
        """A caller's state change as its ledger actor: ``Pending`` when the caller asked not to wait
        (``Prefer: respond-async``), else the final transaction (read what it wrote at its ``height``)."""
        tx = self.sign(type=type, payload=payload, actor=self.actor(principal), now=now)
        if sub.journal is not None:  # recorded before it is submitted; a retry adopts an earlier attempt's
            tx = sub.journal.adopt(tx)
        fin = self.send(tx, wait=sub.wait)
        return replace(fin, payload=tx.payload) if sub.wait else Pending(fin.tx_id)

    def send(self, tx: Transaction, *, wait: bool = True) -> Finality:
        """Submit a signed transaction (see :meth:`submit`)."""
        fin = self.client.submit(tx, wait=wait)
        if fin.final and fin.code not in (None, "valid"):
            raise LedgerRefusal(f"{tx.type} refused by the consortium: {fin.code}", reason=str(fin.code))
        return fin

    def preview(self, tx: Transaction, *, min_height: int | None = None) -> None:
        """Raise :class:`LedgerRefusal` with the rule's reason code if the ledger would refuse ``tx`` now
        (on a node at ``min_height`` or above when given: one that has the block ``tx`` builds on)."""
        code, msg = self.client.preview(tx, min_height=min_height)
        if code != "valid":
            raise LedgerRefusal(msg or f"{tx.type} refused by the consortium: {code}", reason=code)

    def query(self, name: str, *, min_height: int | None = None, **kwargs: Any) -> Any:
        """A query; with ``min_height`` (a final transaction's block) from a node that has that block."""
        if min_height is None:
            return self.client.query(name, **kwargs)
        return self.client.query_at(name, min_height, **kwargs)

    def require(self, name: str, missing: str, **kwargs: Any) -> dict[str, Any]:
        """A query's object, or 404 with reason ``missing`` when the ledger has none."""
        found = self.client.query(name, **kwargs)
        if found is None:
            raise LedgerRefusal(f"no such object ({name})", reason=missing)
        return dict(found)

    def truck_ids(self, plates: list[str]) -> list[str]:
        """The trucks of ``plates`` in order, in one query; ``unknown_truck`` naming any plate not registered."""
        if not plates:
            return []
        found = self.client.query("truck_ids_by_plate", plates=plates)
        missing = [p for p in plates if not found.get(p)]
        if missing:
            raise LedgerRefusal(f"no truck with plate {', '.join(missing)}", reason="unknown_truck")
        return [str(found[p]) for p in plates]

    def truck_id(self, plate: str) -> str:
        truck = self.client.query("truck_by_plate", plate=plate)
        if truck is None:
            raise LedgerRefusal(f"no truck with plate {plate}", reason="unknown_truck")
        return str(truck["truck_id"])
