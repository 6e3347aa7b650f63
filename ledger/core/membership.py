"""The membership at every height: the genesis and the changes governance applied, each from its first block.

Finality, block verification, the audit and catch-up judge a block under :meth:`MembershipHistory.at` its height,
so old blocks keep verifying under the keys valid when they were made and the quorum follows the node set.  A key
no longer in force is refused with its own reason (:meth:`MembershipHistory.refusal`: ``key_rotated``,
``member_retired``), not as a stranger's.  Pure and frozen.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.core.consortium import Consortium, Member
from ledger.errors import ConsortiumError, KeyRotated, LedgerError, MemberRetired


@dataclass(frozen=True)
class Era:
    """A membership in force from block ``since`` on (until the next era's), the ``version``-th since genesis."""

    since: int
    version: int
    consortium: Consortium


@dataclass(frozen=True)
class MembershipHistory:
    """The eras of a chain's membership, oldest first (the first is the genesis, from block 0)."""

    eras: tuple[Era, ...]

    def __post_init__(self) -> None:
        if not self.eras or self.eras[0].since != 0:
            raise ConsortiumError("a membership history starts with the genesis, in force from block 0")
        if any(b.since <= a.since or b.version <= a.version for a, b in zip(self.eras, self.eras[1:], strict=False)):
            raise ConsortiumError("membership eras must follow each other in height and version")
        if any(e.consortium.genesis_hash != self.eras[0].consortium.genesis_hash for e in self.eras):
            raise ConsortiumError("every membership of a chain keeps its genesis hash")

    @classmethod
    def of(cls, genesis: Consortium) -> MembershipHistory:
        return cls((Era(0, 0, genesis),))

    @property
    def genesis(self) -> Consortium:
        return self.eras[0].consortium

    @property
    def current(self) -> Era:
        return self.eras[-1]

    def then(self, since: int, version: int, consortium: Consortium) -> MembershipHistory:
        """This history with ``consortium`` in force from block ``since``."""
        return MembershipHistory((*self.eras, Era(since, version, consortium)))

    def until(self, height: int) -> MembershipHistory:
        """The history as it stood while block ``height`` was the head (eras beginning after it left out)."""
        return MembershipHistory(tuple(e for e in self.eras if e.since <= height + 1))

    def era_at(self, height: int) -> Era:
        """The era block ``height`` belongs to."""
        i = bisect.bisect_right([e.since for e in self.eras], max(height, 0)) - 1
        return self.eras[i]

    def at(self, height: int) -> Consortium:
        """The membership in force for block ``height``."""
        return self.era_at(height).consortium

    def refusal(self, key_id: str, height: int) -> LedgerError | None:
        """Why ``key_id``'s signature does not count at ``height`` when it was a member key before:
        :class:`KeyRotated` (its member is in force with another key) or :class:`MemberRetired`; None for a
        key in force there, or one never known to the chain."""
        now = self.at(height)
        try:
            now.member(key_id)
            return None
        except LedgerError:
            pass
        names = {m.name for m in now.members}
        for era in self.eras:
            if era.since > height:
                break
            try:
                former = era.consortium.member(key_id)
            except LedgerError:
                continue
            if former.name in names:
                return KeyRotated(f"key {key_id} of member {former.name} was rotated out by a governance vote "
                                  f"(it is not in force at block {height})")
            return MemberRetired(f"member {former.name} (key {key_id}) was retired by a governance vote "
                                 f"(not a member at block {height})")
        return None

    def to_docs(self) -> list[dict[str, Any]]:
        """The eras after the genesis as plain data (to hand to another process); see :meth:`from_docs`."""
        return [{"since": e.since, "version": e.version, "members": [m.to_dict() for m in e.consortium.members],
                 "parameters": dict(e.consortium.parameters),
                 "policy": {k: list(v) for k, v in e.consortium.policy.items()}} for e in self.eras[1:]]

    @classmethod
    def from_docs(cls, genesis: Consortium, docs: Sequence[Mapping[str, Any]]) -> MembershipHistory:
        """The history of :meth:`to_docs` on top of ``genesis`` (every member card checked again)."""
        history = cls.of(genesis)
        for d in docs:
            era = genesis.amended(members=[Member.from_dict(m) for m in d["members"]], parameters=d["parameters"],
                                  policy=d["policy"])
            history = history.then(int(d["since"]), int(d["version"]), era)
        return history
