"""Salted hashes of drivers' personal data; only the hash goes on the chain."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from ledger.core.encoding import canonical
from ledger.eticket.errors import PayloadError

MIN_SALT_BYTES = 16


def person_hash(salt: bytes, personal: Mapping[str, str]) -> str:
    """``sha256:<hex>`` of ``salt ‖ canonical JSON of the personal fields`` (name, id_number, phone, …).

    The salt (≥ 16 random bytes, one per person) and the clear data stay in the operator's
    off-chain table (:mod:`ledger.store.personal_store`); without the salt the hash cannot be
    matched against guessed ID numbers.
    """
    if len(salt) < MIN_SALT_BYTES:
        raise PayloadError(f"a salt must be at least {MIN_SALT_BYTES} bytes")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in personal.items()):
        raise PayloadError("personal fields must be strings")
    return "sha256:" + hashlib.sha256(salt + canonical(dict(personal))).hexdigest()


def matches(salt: bytes, personal: Mapping[str, str], on_chain: str) -> bool:
    """True when the clear data and salt give the hash recorded on the chain."""
    return person_hash(salt, personal) == on_chain
