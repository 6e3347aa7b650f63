"""Member cards: a member's name, organisation, roles, public key and validity, signed by that key.

A department makes its card with ``ledger keygen`` on its own machine (the private key never leaves it) and
sends the card to the other founders; the genesis is assembled from the cards (:mod:`ledger.core.genesis`).
The card's canonical encoding (RFC 8785) after :data:`~ledger.core.consortium.CARD_CONTEXT` is what the
key signs; every key, signature and digest in it names its algorithm.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ledger.core.consortium import ROLES, Member
from ledger.core.crypto import PrivateKey
from ledger.core.validity import Validity
from ledger.errors import CardInvalid, ConsortiumError, LedgerError


@dataclass(frozen=True)
class MemberCard:
    """A self-signed member card; holding one means its signature verified."""

    member: Member

    def __post_init__(self) -> None:
        self.member.check_card()

    @property
    def name(self) -> str:
        return self.member.name

    @property
    def key_id(self) -> str:
        return self.member.key_id

    @property
    def validity(self) -> Validity:
        assert self.member.validity is not None  # check_card holds
        return self.member.validity

    def to_dict(self) -> dict[str, Any]:
        """The card file's content (the genesis lists the same object per member)."""
        return self.member.to_dict()

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> MemberCard:
        """Parse and check a card; :class:`CardInvalid` (or ``ConsortiumError``) when it does not hold."""
        if not isinstance(doc, Mapping):
            raise CardInvalid("a member card is a JSON object")
        try:
            member = Member.from_dict(doc)
        except ConsortiumError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError, LedgerError) as exc:
            raise CardInvalid(f"invalid member card: {exc!r}") from exc
        if member.validity is None:
            raise CardInvalid("a member card has a format, a validity period and a card_signature")
        return cls(member)


def make_card(key: PrivateKey, *, name: str, org: str, roles: Iterable[str], validity: Validity) -> MemberCard:
    """The card of ``key``'s member, self-signed by ``key``."""
    roles = frozenset(roles)
    if not name or not name.isascii() or not name.replace("-", "").replace("_", "").isalnum():
        raise ConsortiumError(f"member name {name!r} must be ASCII letters, digits, '-' or '_'")
    unknown = roles - ROLES
    if unknown or not roles:
        raise ConsortiumError(f"roles must be some of {sorted(ROLES)}, not {sorted(roles)}")
    unsigned = Member(name=name, org=org, roles=roles, public_key=key.public_key, validity=validity)
    return MemberCard(Member(name=name, org=org, roles=roles, public_key=key.public_key, validity=validity,
                             card_signature=key.sign(unsigned.card_message())))
