"""The genesis assembled from the founders' member cards and co-signed by every founder.

:func:`assemble` makes the consortium document (format ``muck-ledger-consortium/v2``) from the cards, the
name, the parameters and the policy; each founder adds its signature with :meth:`Genesis.sign` (``ledger
genesis sign`` on its own machine).  The founders sign the genesis hash (the digest, with the genesis's
``digest_alg``, of the canonical document without ``founder_signatures``), so a changed card, parameter or
policy voids every signature; :meth:`Genesis.check` is what a node requires before it runs.  A genesis of
the older format (v1, no cards) carries no founders' signatures and is read as it is (existing chains).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.core.card import MemberCard
from ledger.core.consortium import DEFAULT_PARAMETERS, DEFAULT_POLICY, FORMAT_V2, Consortium
from ledger.core.crypto import PrivateKey, verify_raw
from ledger.core.encoding import b64, unb64
from ledger.errors import (
    ConsortiumError,
    GenesisBadSignature,
    GenesisUnsigned,
    LedgerError,
    UnknownSigner,
    UnsupportedAlgorithm,
)

#: prefix of the message every founder signs (domain separation from transactions, headers and cards)
GENESIS_CONTEXT = b"muck-ledger/genesis/v1\n"


@dataclass(frozen=True)
class FounderSignature:
    """One founding member's signature over the genesis hash."""

    member: str
    key_id: str
    alg: str
    value: bytes

    def to_dict(self) -> dict[str, str]:
        return {"member": self.member, "key_id": self.key_id, "alg": self.alg, "value": b64(self.value)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FounderSignature:
        try:
            return cls(member=str(d["member"]), key_id=str(d["key_id"]), alg=str(d["alg"]),
                       value=unb64(str(d["value"]), what="founder signature"))
        except (KeyError, TypeError, AttributeError, LedgerError) as exc:
            raise GenesisBadSignature(f"malformed founder signature: {exc!r}") from exc


@dataclass(frozen=True)
class Genesis:
    """A consortium document with the founders' signatures gathered so far."""

    consortium: Consortium
    signatures: tuple[FounderSignature, ...] = field(default=())

    @property
    def message(self) -> bytes:
        """What each founder signs."""
        return GENESIS_CONTEXT + bytes.fromhex(self.consortium.genesis_hash)

    @property
    def legacy(self) -> bool:
        """A genesis of the older format: no cards, nothing for founders to sign."""
        return self.consortium.format != FORMAT_V2

    def _verifies(self, sig: FounderSignature) -> bool:
        try:
            member = self.consortium.member(sig.key_id)
        except UnknownSigner:
            return False
        if member.name != sig.member or sig.alg != member.public_key.alg:
            return False
        try:
            return verify_raw(sig.alg, member.public_key.raw, self.message, sig.value)
        except UnsupportedAlgorithm:
            return False

    def signed_by(self) -> list[str]:
        """Founders whose signature verifies, in genesis order."""
        good = {s.member for s in self.signatures if self._verifies(s)}
        return [m.name for m in self.consortium.members if m.name in good]

    def missing(self) -> list[str]:
        """Founders who have not signed (or whose signature no longer verifies), in genesis order."""
        signed = set(self.signed_by())
        return [m.name for m in self.consortium.members if m.name not in signed]

    def sign(self, key: PrivateKey) -> Genesis:
        """This genesis with ``key``'s founder signature added (replacing an earlier one of the same member)."""
        if self.legacy:
            raise ConsortiumError("a genesis of the older format has no founders' signatures; assemble one "
                                  "from member cards")
        member = self.consortium.member(key.key_id)
        sig = FounderSignature(member=member.name, key_id=key.key_id, alg=key.alg, value=key.sign(self.message))
        kept = tuple(s for s in self.signatures if s.member != member.name)
        return Genesis(self.consortium, (*kept, sig))

    def check(self) -> Consortium:
        """The consortium, when every founder's signature is present and verifies; else
        :class:`GenesisBadSignature` (a signature that does not verify: the document changed after it was
        signed) or :class:`GenesisUnsigned` (founders missing).  A legacy genesis is returned as it is."""
        if self.legacy:
            return self.consortium
        bad = [s.member for s in self.signatures if not self._verifies(s)]
        if bad:
            raise GenesisBadSignature(
                f"the signature of founder(s) {', '.join(sorted(set(bad)))} does not verify over genesis "
                f"{self.consortium.genesis_hash[:16]}…: a card, a parameter or the policy changed after they signed")
        missing = self.missing()
        if missing:
            raise GenesisUnsigned(f"genesis {self.consortium.genesis_hash[:16]}… lacks the signature of founder(s) "
                                  f"{', '.join(missing)}")
        return self.consortium

    def to_dict(self) -> dict[str, Any]:
        d = self.consortium.to_dict()
        if not self.legacy:
            d["founder_signatures"] = [s.to_dict() for s in self.signatures]
        return d

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Genesis:
        consortium = Consortium.from_dict(doc)
        raw = doc.get("founder_signatures", [])
        if not isinstance(raw, list):
            raise GenesisBadSignature("founder_signatures must be a list")
        return cls(consortium, tuple(FounderSignature.from_dict(s) for s in raw))


def assemble(cards: Iterable[MemberCard], *, name: str, origin: str | None = None,
             parameters: Mapping[str, Any] | None = None,
             policy: Mapping[str, Sequence[str]] | None = None) -> Genesis:
    """An unsigned genesis of ``cards`` (in the order given: the node members co-sign in that order)."""
    members = tuple(c.member for c in cards)
    if not members:
        raise ConsortiumError("a genesis needs at least one member card")
    consortium = Consortium(
        name=name, origin=origin or f"muck-ledger.example/{name}", members=members,
        parameters=dict(parameters if parameters is not None else DEFAULT_PARAMETERS),
        policy={k: list(v) for k, v in (policy if policy is not None else DEFAULT_POLICY).items()},
    )
    return Genesis(consortium)
