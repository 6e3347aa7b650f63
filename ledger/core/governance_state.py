"""The governance state a chain carries: the membership in force, its version and the pending proposals.

:meth:`Governance.step` takes one ``governance.*`` transaction of a block (its signer already checked against the
membership in force) and returns the next state, or raises :class:`~ledger.errors.GovernanceError` (the transaction
stays in its block with that reason, the state unchanged); :meth:`Governance.boundary` ends a block: it applies
what the quorum approved (:mod:`ledger.core.governance`).  Frozen values, no I/O: replaying the same blocks gives
the same state on every node and in every audit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ledger.core.consortium import Consortium, Member
from ledger.core.encoding import canonical
from ledger.core.governance import PROPOSE, VOTE, Proposal, quorum_of, ttl_of
from ledger.errors import GovernanceDuplicate, GovernanceError, GovernanceNotNode, GovernanceUnknownProposal

#: the business rules' judgment of a consortium a proposal would make (:class:`GovernanceError` if they would not
#: take it: their own parameters, e.g. ``eticket``); :meth:`Governance.step` and :meth:`Governance.boundary`
Check = Callable[[Consortium], None]

APPLIED, REJECTED, EXPIRED, FAILED = "applied", "rejected", "expired", "failed"


@dataclass(frozen=True)
class Pending:
    """A proposal waiting for its quorum: who approved and who rejected it (member names), since which block."""

    proposal: Proposal
    height: int
    approvals: frozenset[str]
    rejections: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {**self.proposal.to_dict(), "height": self.height, "approvals": sorted(self.approvals),
                "rejections": sorted(self.rejections)}


@dataclass(frozen=True)
class Decided:
    """What became of a proposal at the end of block ``height``: :data:`APPLIED`, :data:`REJECTED`,
    :data:`EXPIRED` or :data:`FAILED` (it no longer applied; ``detail`` says why)."""

    proposal_id: str
    action: str
    outcome: str
    height: int
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"proposal_id": self.proposal_id, "action": self.action, "outcome": self.outcome,
                "height": self.height, "detail": self.detail}


def _may_act(signer: Member, consortium: Consortium, proposal: Proposal) -> bool:
    """A node member in force, or the member whose own key the proposal rotates."""
    if "node" in signer.roles and signer.key_id in {m.key_id for m in consortium.nodes}:
        return True
    return proposal.action == "rotate_key" and proposal.member == signer.name


@dataclass(frozen=True)
class Governance:
    """The membership in force (from block ``since``, the ``version``-th change since genesis) and the proposals
    pending; ``used`` holds every proposal id the chain has seen (none is used twice)."""

    consortium: Consortium
    version: int = 0
    since: int = 0
    pending: tuple[Pending, ...] = ()
    used: frozenset[str] = frozenset()

    def step(self, tx_type: str, payload: Mapping[str, Any], signer: Member, height: int, *,
             check: Check | None = None) -> Governance:
        """The state after one governance transaction of block ``height`` signed by ``signer``."""
        if tx_type == PROPOSE:
            proposal = Proposal.parse(payload, signer.name, self.consortium)
            if not _may_act(signer, self.consortium, proposal):
                raise GovernanceNotNode(f"member {signer.name} is not a node member in force: it may not propose")
            if proposal.proposal_id in self.used:
                raise GovernanceDuplicate(f"proposal id {proposal.proposal_id!r} is used already on this chain")
            changed = proposal.apply(self.consortium)  # refused now if it would not apply to the membership
            if check is not None:  # ... or the rules would not take it (their own parameters)
                check(changed)
            entry = Pending(proposal, height, frozenset({signer.name}))
            return replace(self, pending=(*self.pending, entry), used=self.used | {proposal.proposal_id})
        if tx_type != VOTE:
            raise GovernanceError(f"{tx_type!r} is not a governance transaction")
        pid, approve = payload.get("proposal_id"), payload.get("approve")
        if set(payload) != {"proposal_id", "approve"} or not isinstance(approve, bool):
            raise GovernanceError("a vote is {proposal_id, approve: true|false}")
        found = [p for p in self.pending if p.proposal.proposal_id == pid]
        if not found:
            raise GovernanceUnknownProposal(f"no pending proposal {pid!r}")
        entry = found[0]
        if not _may_act(signer, self.consortium, entry.proposal):
            raise GovernanceNotNode(f"member {signer.name} is not a node member in force: it may not vote")
        if signer.name in entry.approvals | entry.rejections:
            raise GovernanceDuplicate(f"member {signer.name} has voted on {pid!r} already")
        voted = replace(entry, approvals=entry.approvals | {signer.name}) if approve else \
            replace(entry, rejections=entry.rejections | {signer.name})
        return replace(self, pending=tuple(voted if p is entry else p for p in self.pending))

    def approved(self, entry: Pending) -> bool:
        """The quorum of node members in force approved (and, for a rotation, the member's current key)."""
        nodes = {m.name for m in self.consortium.nodes}
        if entry.proposal.action == "rotate_key" and entry.proposal.member not in entry.approvals:
            return False
        return len(entry.approvals & nodes) >= quorum_of(self.consortium)

    def hopeless(self, entry: Pending) -> bool:
        """It can no longer be approved: too many nodes rejected it, or the member refused its own rotation."""
        nodes = {m.name for m in self.consortium.nodes}
        if entry.proposal.action == "rotate_key" and entry.proposal.member in entry.rejections:
            return True
        return len(entry.rejections & nodes) > len(nodes) - quorum_of(self.consortium)

    def boundary(self, height: int, *, check: Check | None = None) -> tuple[Governance, tuple[Decided, ...]]:
        """End block ``height``: apply the approved proposals in the order made (the result is in force from
        block ``height + 1``), drop the rejected, expired and failed ones (``check``: the rules' own judgment of a
        changed consortium, :class:`GovernanceError` when they would not take it: the proposal fails)."""
        consortium, version = self.consortium, self.version
        kept: list[Pending] = []
        decided: list[Decided] = []
        for entry in self.pending:
            p = entry.proposal
            if self.approved(entry):
                try:
                    changed = p.apply(consortium)
                    if check is not None:
                        check(changed)
                    consortium = changed
                except GovernanceError as exc:
                    decided.append(Decided(p.proposal_id, p.action, FAILED, height, exc.message))
                    continue
                version += 1
                decided.append(Decided(p.proposal_id, p.action, APPLIED, height))
            elif self.hopeless(entry):
                decided.append(Decided(p.proposal_id, p.action, REJECTED, height))
            elif height - entry.height >= ttl_of(self.consortium):
                decided.append(Decided(p.proposal_id, p.action, EXPIRED, height))
            else:
                kept.append(entry)
        if not decided:
            return self, ()
        since = height + 1 if version != self.version else self.since
        return Governance(consortium, version, since, tuple(kept), self.used), tuple(decided)

    @property
    def quiet(self) -> bool:
        """Nothing ever happened: no proposal made (the state digest of a chain without governance is its
        machine's own)."""
        return not self.used

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "since": self.since, "quorum": quorum_of(self.consortium),
                "nodes": [m.name for m in self.consortium.nodes],
                "members": {m.name: m.key_id for m in self.consortium.members},
                "pending": [p.to_dict() for p in self.pending]}

    def digest(self) -> str:
        """Hex digest of everything the state holds (equal on every node after the same blocks)."""
        body = {**self.to_dict(), "membership": self.consortium.to_dict(), "used": sorted(self.used)}
        return hashlib.sha256(canonical(body)).hexdigest()
