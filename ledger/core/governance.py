"""Governance on the chain: proposals and votes are transactions; an approved change applies at a block boundary.

Two transaction types, signed by members like any other:

* ``governance.propose`` ``{proposal_id, action, ...}`` with ``action`` one of
  ``add_member`` ``{card}`` (the new member's card, self-signed by its key: proof that it holds the key),
  ``retire_member`` ``{member}``, ``rotate_key`` ``{member, card}`` (the member's new card: same name and
  roles, signed by the new key), ``set_parameters`` ``{parameters}`` (the keys to set; ``null`` removes one)
  and ``set_policy`` ``{policy}`` (the whole new policy);
* ``governance.vote`` ``{proposal_id, approve}``.

Node members in force propose and vote (the proposer approves its own proposal); a member may also propose or
approve the rotation of its own key.  At the end of every block the approvals are counted against the node members
in force during that block: a proposal approved by the quorum of ``parameters["governance_quorum"]``
(:data:`QUORUMS`; default ``two_thirds``, more than two thirds of the nodes, as for finality) applies, in the order
the proposals were made, and the new membership is in force from the next block.  A rotation also needs the
approval of the member's current key.  A proposal that can no longer reach the quorum is rejected, one pending for
more than ``parameters["governance_ttl_blocks"]`` blocks expires, one that no longer applies (its member retired
meanwhile) fails.  Pure: a function of the membership, the transactions and the heights.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.core.card import MemberCard
from ledger.core.consortium import FORMAT_V2, ROLES, Consortium, Member
from ledger.errors import (
    GovernanceError,
    LedgerError,
)

PROPOSE, VOTE = "governance.propose", "governance.vote"
ACTIONS = ("add_member", "retire_member", "rotate_key", "set_parameters", "set_policy")
#: ``parameters["governance_quorum"]``: approvals needed of ``n`` node members in force
QUORUMS = {"two_thirds": lambda n: 2 * n // 3 + 1, "majority": lambda n: n // 2 + 1, "all": lambda n: n}
DEFAULT_QUORUM = "two_thirds"
#: ``parameters["governance_ttl_blocks"]`` by default: blocks a proposal stays pending
DEFAULT_TTL_BLOCKS = 1000
#: parameters that must be positive integers when a proposal sets them
_POSITIVE = ("max_payload_bytes", "max_block_txs", "max_clock_skew_s", "governance_ttl_blocks")
#: parameters that are objects of the business rules' own (``ledger.eticket.params``): a proposal sets some of
#: their keys (``null`` removes one), the rest stay; the rules judge the result (``Governed``'s check)
NESTED = frozenset({"eticket"})
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FIELDS = {"add_member": {"card"}, "retire_member": {"member"}, "rotate_key": {"member", "card"},
           "set_parameters": {"parameters"}, "set_policy": {"policy"}}


def is_governance(tx_type: str) -> bool:
    return tx_type in (PROPOSE, VOTE)


def quorum_of(consortium: Consortium) -> int:
    """Approvals a proposal needs under ``consortium`` (the membership in force)."""
    return int(QUORUMS[str(consortium.parameters.get("governance_quorum", DEFAULT_QUORUM))](len(consortium.nodes)))


def ttl_of(consortium: Consortium) -> int:
    return int(consortium.parameters.get("governance_ttl_blocks", DEFAULT_TTL_BLOCKS))


def _card(raw: Any, consortium: Consortium) -> Member:
    """The member of a proposal's card; a chain of the older genesis format keeps plain members (no card)."""
    try:
        member = MemberCard.from_dict(raw).member
    except LedgerError as exc:
        raise GovernanceError(f"the proposal's card: {exc.message}") from exc
    if consortium.format != FORMAT_V2:
        member = Member(name=member.name, org=member.org, roles=member.roles, public_key=member.public_key)
    return member


@dataclass(frozen=True)
class Proposal:
    """One parsed ``governance.propose``; :meth:`apply` is its effect on a membership."""

    proposal_id: str
    action: str
    proposer: str
    member: str | None = None
    card: Member | None = field(default=None, repr=False)
    parameters: Mapping[str, Any] | None = None
    policy: Mapping[str, tuple[str, ...]] | None = None

    @classmethod
    def parse(cls, payload: Mapping[str, Any], proposer: str, consortium: Consortium) -> Proposal:
        """The proposal of a ``governance.propose`` payload; :class:`GovernanceError` when it is malformed."""
        pid, action = payload.get("proposal_id"), payload.get("action")
        if not isinstance(pid, str) or not _ID_RE.fullmatch(pid):
            raise GovernanceError("proposal_id must be 1 to 64 letters, digits, '.', '_' or '-'")
        if action not in _FIELDS:
            raise GovernanceError(f"action must be one of {', '.join(ACTIONS)}")
        extra = set(payload) - {"proposal_id", "action"} - _FIELDS[action]
        missing = _FIELDS[action] - set(payload)
        if extra or missing:
            raise GovernanceError(f"{action} takes {sorted(_FIELDS[action])} (missing {sorted(missing)}, "
                                  f"unknown {sorted(extra)})")
        card = _card(payload["card"], consortium) if "card" in payload else None
        member = payload.get("member", card.name if card is not None else None)
        if member is not None and not isinstance(member, str):
            raise GovernanceError("member must be a member's name")
        params = payload.get("parameters")
        if params is not None and (not isinstance(params, Mapping) or not params):
            raise GovernanceError("parameters must be an object of the parameters to set")
        if params is not None and any(k in NESTED and not isinstance(params[k], Mapping) for k in params):
            raise GovernanceError(f"parameters {sorted(NESTED & set(params))} are objects: set some of their keys")
        policy: dict[str, tuple[str, ...]] | None = None
        if "policy" in payload:
            raw = payload["policy"]
            if not isinstance(raw, Mapping) or not raw or not all(
                    isinstance(k, str) and isinstance(v, list) and all(isinstance(r, str) for r in v)
                    for k, v in raw.items()):
                raise GovernanceError("policy must map transaction types to lists of roles")
            policy = {k: tuple(v) for k, v in raw.items()}
        return cls(proposal_id=pid, action=str(action), proposer=proposer, member=member, card=card,
                   parameters=dict(params) if params is not None else None, policy=policy)

    def apply(self, consortium: Consortium) -> Consortium:
        """The membership after this change; :class:`GovernanceError` when it does not apply to ``consortium``."""
        members = list(consortium.members)
        names = [m.name for m in members]
        if self.action in ("retire_member", "rotate_key") and self.member not in names:
            raise GovernanceError(f"{self.member!r} is not a member in force")
        try:
            if self.action == "add_member":
                assert self.card is not None
                if self.card.name in names:
                    raise GovernanceError(f"{self.card.name!r} is a member already")
                return consortium.amended(members=[*members, self.card])
            if self.action == "retire_member":
                return consortium.amended(members=[m for m in members if m.name != self.member])
            if self.action == "rotate_key":
                return consortium.amended(members=[self._rotated(m) if m.name == self.member else m
                                                   for m in members])
            if self.action == "set_parameters":
                assert self.parameters is not None
                merged = {**consortium.parameters, **self.parameters}
                for key in NESTED & set(self.parameters):  # one level deeper: the keys given, the rest kept
                    inner = {**(consortium.parameters.get(key) or {}), **self.parameters[key]}
                    merged[key] = {k: v for k, v in inner.items() if v is not None}
                new = consortium.amended(parameters={k: v for k, v in merged.items() if v is not None})
                _check_parameters(new)
                return new
            assert self.policy is not None
            new = consortium.amended(policy=self.policy)
            _check_policy(new)
            return new
        except GovernanceError:
            raise
        except LedgerError as exc:
            raise GovernanceError(f"{self.action} does not hold: {exc.message}") from exc

    def _rotated(self, current: Member) -> Member:
        card = self.card
        assert card is not None
        if card.roles != current.roles:
            raise GovernanceError("a rotation keeps the member's roles (its new card lists "
                                  f"{sorted(card.roles)}, not {sorted(current.roles)})")
        if card.key_id == current.key_id:
            raise GovernanceError("a rotation brings a new key")
        return card

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"proposal_id": self.proposal_id, "action": self.action, "proposer": self.proposer}
        if self.member is not None:
            d["member"] = self.member
        if self.card is not None:
            d["key_id"] = self.card.key_id
        if self.parameters is not None:
            d["parameters"] = dict(self.parameters)
        if self.policy is not None:
            d["policy"] = {k: list(v) for k, v in self.policy.items()}
        return d


def _check_parameters(c: Consortium) -> None:
    for key in _POSITIVE:
        value = c.parameters.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise GovernanceError(f"parameter {key} must be a positive integer")
    if c.parameters.get("governance_quorum", DEFAULT_QUORUM) not in QUORUMS:
        raise GovernanceError(f"governance_quorum must be one of {', '.join(sorted(QUORUMS))}")


def _check_policy(c: Consortium) -> None:
    for tx_type, roles in c.policy.items():
        unknown = set(roles) - ROLES
        if unknown:
            raise GovernanceError(f"policy of {tx_type!r} names unknown roles {sorted(unknown)}")
    for tx_type in (PROPOSE, VOTE):
        if "node" not in c.allowed_roles(tx_type):
            raise GovernanceError(f"the policy must let node members submit {tx_type} (governance would end)")
