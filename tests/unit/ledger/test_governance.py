"""ledger.core.governance, ledger.core.governance_state, ledger.core.membership: proposals and votes as pure
state changes, applied at block boundaries once the quorum approved (no I/O: cards made in memory)."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.core.card import make_card
from ledger.core.consortium import Consortium, Member
from ledger.core.crypto import PrivateKey
from ledger.core.genesis import assemble
from ledger.core.governance import PROPOSE, VOTE, quorum_of
from ledger.core.governance_state import APPLIED, EXPIRED, FAILED, REJECTED, Governance
from ledger.core.membership import MembershipHistory
from ledger.core.validity import Validity
from ledger.errors import (
    ConsortiumError,
    GovernanceDuplicate,
    GovernanceError,
    GovernanceNotNode,
    GovernanceUnknownProposal,
    KeyRotated,
    MemberRetired,
)
from ledger.reasons import REASONS

YEAR = Validity(not_before="2026-01-01T00:00:00+08:00", not_after="2027-06-01T00:00:00+08:00")
NODES = ("n0", "n1", "n2", "n3")


def _card(key: PrivateKey, name: str, roles: tuple[str, ...] = ("node", "approver")) -> dict[str, Any]:
    return make_card(key, name=name, org=f"{name} 局", roles=roles, validity=YEAR).to_dict()


@pytest.fixture()
def world() -> tuple[Consortium, dict[str, PrivateKey]]:
    keys = {n: PrivateKey.generate() for n in (*NODES, "gateway")}
    cards = [make_card(keys[n], name=n, org=n, roles=("node", "approver"), validity=YEAR) for n in NODES]
    cards.append(make_card(keys["gateway"], name="gateway", org="gw", roles=("gateway",), validity=YEAR))
    return assemble(cards, name="gov-test").consortium, keys


def _m(c: Consortium, name: str) -> Member:
    return c.by_name(name)


def _propose(g: Governance, by: str, h: int = 0, **payload: Any) -> Governance:
    return g.step(PROPOSE, payload, _m(g.consortium, by), h)


def _vote(g: Governance, by: str, pid: str, approve: bool = True, h: int = 0) -> Governance:
    return g.step(VOTE, {"proposal_id": pid, "approve": approve}, _m(g.consortium, by), h)


def test_quorum_is_more_than_two_thirds_of_the_nodes_by_default(world: tuple[Consortium, Any]) -> None:
    """Four nodes need three approvals; 'majority' and 'all' change that (three, four of four)."""
    c, _ = world
    assert quorum_of(c) == 3
    assert quorum_of(c.amended(parameters={**c.parameters, "governance_quorum": "majority"})) == 3
    assert quorum_of(c.amended(parameters={**c.parameters, "governance_quorum": "all"})) == 4
    three = c.amended(members=[m for m in c.members if m.name != "n3"])
    assert quorum_of(three) == 3 and quorum_of(three.amended(parameters={"governance_quorum": "majority"})) == 2


def test_a_change_applies_only_at_the_boundary_after_the_quorum_approved(world: tuple[Consortium, Any]) -> None:
    """Two approvals of four do nothing at the block's end; the third makes the retirement apply, in force from
    the next block, with the genesis hash kept."""
    c, _ = world
    g = _propose(Governance(c), "n0", 5, proposal_id="p1", action="retire_member", member="n3")
    g = _vote(g, "n1", "p1", h=5)
    same, decided = g.boundary(5)
    assert decided == () and same is g and len(same.consortium.nodes) == 4
    g = _vote(g, "n2", "p1", h=6)
    assert len(g.consortium.nodes) == 4  # not before the boundary
    after, decided = g.boundary(6)
    assert [d.outcome for d in decided] == [APPLIED]
    assert [m.name for m in after.consortium.nodes] == ["n0", "n1", "n2"]
    assert (after.version, after.since, after.pending) == (1, 7, ())
    assert after.consortium.genesis_hash == c.genesis_hash


def test_rotation_needs_the_members_current_key(world: tuple[Consortium, Any]) -> None:
    """A rotation approved by three other nodes waits for the member itself; its approval (signed by its
    current key) makes it apply, and the new key replaces the old one at the member's place."""
    c, _ = world
    new = PrivateKey.generate()
    g = _propose(Governance(c), "n0", proposal_id="rot", action="rotate_key", member="n3", card=_card(new, "n3"))
    g = _vote(_vote(g, "n1", "rot"), "n2", "rot")
    held, decided = g.boundary(0)
    assert decided == () and held.consortium.by_name("n3").key_id == c.by_name("n3").key_id
    g = _vote(g, "n3", "rot")
    after, decided = g.boundary(1)
    assert [d.outcome for d in decided] == [APPLIED]
    assert after.consortium.by_name("n3").key_id == new.key_id
    assert [m.name for m in after.consortium.nodes] == list(NODES)


def test_a_member_that_is_not_a_node_may_consent_to_its_own_rotation_only(world: tuple[Consortium, Any]) -> None:
    """The gateway proposes its own rotation (its approval does not count toward the quorum of nodes) but may
    neither propose another change nor vote on one."""
    c, _ = world
    new = PrivateKey.generate()
    g = _propose(Governance(c), "gateway", proposal_id="gw", action="rotate_key", member="gateway",
                 card=_card(new, "gateway", ("gateway",)))
    g = _vote(_vote(g, "n0", "gw"), "n1", "gw")
    assert g.boundary(0)[1] == ()
    after, decided = _vote(g, "n2", "gw").boundary(0)
    assert decided[0].outcome == APPLIED and after.consortium.by_name("gateway").key_id == new.key_id
    with pytest.raises(GovernanceNotNode):
        _propose(Governance(c), "gateway", proposal_id="x", action="retire_member", member="n0")
    g = _propose(Governance(c), "n0", proposal_id="y", action="retire_member", member="n3")
    with pytest.raises(GovernanceNotNode):
        _vote(g, "gateway", "y")


def test_an_added_node_counts_toward_the_quorum_from_the_next_block(world: tuple[Consortium, Any]) -> None:
    """Adding n4 needs three of four; afterwards five nodes need four approvals, and n4's counts."""
    c, _ = world
    k4 = PrivateKey.generate()
    g = _propose(Governance(c), "n0", proposal_id="add", action="add_member", card=_card(k4, "n4"))
    g, decided = _vote(_vote(g, "n1", "add"), "n2", "add").boundary(0)
    assert decided[0].outcome == APPLIED and g.consortium.by_name("n4").key_id == k4.key_id
    assert len(g.consortium.nodes) == 5 and quorum_of(g.consortium) == 4
    g = _propose(g, "n4", 1, proposal_id="ret", action="retire_member", member="n0")
    g = _vote(_vote(g, "n1", "ret", h=1), "n2", "ret", h=1)
    assert g.boundary(1)[1] == ()
    g, decided = _vote(g, "n3", "ret", h=1).boundary(1)
    assert decided[0].outcome == APPLIED and "n0" not in {m.name for m in g.consortium.members}


def test_parameters_and_policy_change_and_are_checked(world: tuple[Consortium, Any]) -> None:
    """set_parameters merges (null removes a key; the e-ticket rules' object one level deeper); a bad value, an
    e-ticket parameter that is no object or a policy locking governance out is refused when proposed."""
    c, _ = world
    g = _propose(Governance(c), "n0", proposal_id="p", action="set_parameters",
                 parameters={"max_block_txs": 10, "max_payload_bytes": None, "governance_quorum": "all"})
    g, _ = _vote(_vote(g, "n1", "p"), "n2", "p").boundary(0)
    assert g.consortium.max_block_txs == 10 and "max_payload_bytes" not in g.consortium.parameters
    assert quorum_of(g.consortium) == 4
    for bad in ({"max_block_txs": 0}, {"governance_quorum": "some"}, {"max_clock_skew_s": "x"}, {"eticket": 5}):
        with pytest.raises(GovernanceError):
            _propose(Governance(c), "n0", proposal_id="b", action="set_parameters", parameters=bad)
    with pytest.raises(GovernanceError, match="governance would end"):
        _propose(Governance(c), "n0", proposal_id="b", action="set_policy", policy={"*": ["gateway"]})
    with pytest.raises(GovernanceError, match="unknown roles"):
        _propose(Governance(c), "n0", proposal_id="b", action="set_policy", policy={"*": ["king"]})
    g = _propose(Governance(c), "n0", proposal_id="pol", action="set_policy",
                 policy={"ticket.*": ["gateway"], "*": ["node", "admin"]})
    g, _ = _vote(_vote(g, "n1", "pol"), "n2", "pol").boundary(0)
    assert list(g.consortium.allowed_roles("ticket.issue")) == ["gateway"]


@pytest.mark.parametrize(("payload", "error"), [
    ({"proposal_id": "", "action": "retire_member", "member": "n3"}, GovernanceError),
    ({"proposal_id": "a", "action": "crown", "member": "n3"}, GovernanceError),
    ({"proposal_id": "a", "action": "retire_member"}, GovernanceError),
    ({"proposal_id": "a", "action": "retire_member", "member": "n3", "extra": 1}, GovernanceError),
    ({"proposal_id": "a", "action": "retire_member", "member": "nobody"}, GovernanceError),
    ({"proposal_id": "a", "action": "add_member", "card": {"name": "x"}}, GovernanceError),
    ({"proposal_id": "a", "action": "set_parameters", "parameters": {}}, GovernanceError),
    ({"proposal_id": "a", "action": "set_policy", "policy": {"*": "node"}}, GovernanceError),
])
def test_bad_proposals_are_refused_with_a_reason(world: tuple[Consortium, Any], payload: dict[str, Any],
                                                 error: type[GovernanceError]) -> None:
    """Malformed or inapplicable proposals raise a governance error whose reason is in the registry."""
    c, _ = world
    with pytest.raises(error) as info:
        _propose(Governance(c), "n0", **payload)
    assert info.value.reason in REASONS


def test_card_tampering_duplicates_and_unknown_votes_are_refused(world: tuple[Consortium, Any]) -> None:
    """A card whose content changed after its key signed it, an existing member added again, a rotation to the
    same key or other roles, a proposal id used twice, a second vote and a vote on no proposal are refused."""
    c, keys = world
    forged = {**_card(PrivateKey.generate(), "n4"), "roles": ["node", "admin"]}
    g0 = Governance(c)
    with pytest.raises(GovernanceError, match="card"):
        _propose(g0, "n0", proposal_id="a", action="add_member", card=forged)
    with pytest.raises(GovernanceError, match="already"):
        _propose(g0, "n0", proposal_id="a", action="add_member", card=_card(PrivateKey.generate(), "n1"))
    with pytest.raises(GovernanceError, match="new key"):
        _propose(g0, "n0", proposal_id="a", action="rotate_key", member="n3", card=_card(keys["n3"], "n3"))
    with pytest.raises(GovernanceError, match="roles"):
        _propose(g0, "n0", proposal_id="a", action="rotate_key", member="n3",
                 card=_card(PrivateKey.generate(), "n3", ("node",)))
    g = _propose(g0, "n0", proposal_id="a", action="retire_member", member="n3")
    with pytest.raises(GovernanceDuplicate):
        _propose(g, "n1", proposal_id="a", action="retire_member", member="n2")
    with pytest.raises(GovernanceDuplicate):
        _vote(g, "n0", "a")
    with pytest.raises(GovernanceUnknownProposal):
        _vote(g, "n1", "zzz")
    with pytest.raises(GovernanceError):
        g.step(VOTE, {"proposal_id": "a", "approve": "yes"}, _m(c, "n1"), 0)


def test_rejected_expired_and_failed_proposals_are_dropped(world: tuple[Consortium, Any]) -> None:
    """Two rejections of four make a proposal hopeless; one pending past the TTL expires; of two retirements of
    the same member approved together the second fails; a used id stays used."""
    c, _ = world
    g = _propose(Governance(c), "n0", proposal_id="r", action="retire_member", member="n3")
    g, decided = _vote(_vote(g, "n1", "r", False), "n2", "r", False).boundary(0)
    assert [d.outcome for d in decided] == [REJECTED] and g.pending == ()
    with pytest.raises(GovernanceDuplicate):
        _propose(g, "n0", proposal_id="r", action="retire_member", member="n3")
    short = Governance(c.amended(parameters={**c.parameters, "governance_ttl_blocks": 3}))
    g = _propose(short, "n0", 10, proposal_id="e", action="retire_member", member="n3")
    assert g.boundary(12)[1] == ()
    assert [d.outcome for d in g.boundary(13)[1]] == [EXPIRED]
    g = _propose(Governance(c), "n0", proposal_id="x1", action="retire_member", member="n3")
    g = _propose(g, "n1", proposal_id="x2", action="retire_member", member="n3")
    for voter in ("n1", "n2"):
        g = _vote(g, voter, "x1")
    for voter in ("n0", "n2"):
        g = _vote(g, voter, "x2")
    after, decided = g.boundary(0)
    assert [d.outcome for d in decided] == [APPLIED, FAILED] and after.version == 1


def test_a_vote_by_a_member_retired_meanwhile_does_not_count(world: tuple[Consortium, Any]) -> None:
    """Approvals are counted against the node members in force: after n3 retires its earlier approval of another
    proposal no longer counts toward the (smaller) quorum."""
    c, _ = world
    g = _propose(Governance(c), "n0", proposal_id="ret", action="retire_member", member="n3")
    g = _propose(g, "n3", proposal_id="par", action="set_parameters", parameters={"max_block_txs": 7})
    g = _vote(_vote(g, "n1", "ret"), "n2", "ret")
    g, decided = g.boundary(0)
    assert [d.proposal_id for d in decided] == ["ret"]
    g, decided = _vote(g, "n0", "par", h=1).boundary(1)
    assert decided == ()  # n3 and n0 approved, only n0 is a node now: 1 of 3 (quorum 3)
    g, decided = _vote(_vote(g, "n1", "par", h=2), "n2", "par", h=2).boundary(2)
    assert decided[0].outcome == APPLIED and g.consortium.max_block_txs == 7


def test_retiring_the_last_node_is_refused(world: tuple[Consortium, Any]) -> None:
    """A membership without a node member does not hold: the proposal is refused."""
    c, _ = world
    solo = c.amended(members=[c.by_name("n0"), c.by_name("gateway")])
    with pytest.raises(GovernanceError, match="node"):
        _propose(Governance(solo), "n0", proposal_id="z", action="retire_member", member="n0")


def test_replay_gives_the_same_state_and_digest(world: tuple[Consortium, Any]) -> None:
    """The same transactions in the same blocks give equal states and digests; the digest changes with a vote."""
    c, _ = world
    new = PrivateKey.generate()
    script: list[tuple[int, str, str, dict[str, Any]]] = [
        (0, PROPOSE, "n0", {"proposal_id": "rot", "action": "rotate_key", "member": "n2", "card": _card(new, "n2")}),
        (0, VOTE, "n1", {"proposal_id": "rot", "approve": True}),
        (1, VOTE, "n2", {"proposal_id": "rot", "approve": True}),
        (1, PROPOSE, "n3", {"proposal_id": "p", "action": "set_parameters", "parameters": {"max_block_txs": 9}}),
    ]

    def run() -> Governance:
        g = Governance(c)
        for h in range(3):
            for _h, kind, who, payload in (s for s in script if s[0] == h):
                g = g.step(kind, payload, g.consortium.by_name(who), h)
            g, _ = g.boundary(h)
        return g

    a, b = run(), run()
    assert a == b and a.digest() == b.digest() and a.version == 1 and a.since == 2
    assert _vote(a, "n0", "p", h=3).digest() != a.digest()


def test_history_gives_the_membership_at_each_height_and_refuses_old_keys(world: tuple[Consortium, Any]) -> None:
    """Blocks before a rotation are judged under the old key, after it under the new; the old key's signature
    afterwards is refused as key_rotated, a retired member's as member_retired, a stranger's not at all here."""
    c, keys = world
    new = PrivateKey.generate()
    rotated = c.amended(members=[Member.from_dict(_card(new, "n3")) if m.name == "n3" else m for m in c.members])
    retired = rotated.amended(members=[m for m in rotated.members if m.name != "n2"])
    h = MembershipHistory.of(c).then(10, 1, rotated).then(20, 2, retired)
    assert h.at(0) is c and h.at(9) is c and h.at(10) is rotated and h.at(25) is retired
    assert h.at(5).by_name("n3").key_id == keys["n3"].key_id
    assert h.refusal(keys["n3"].key_id, 5) is None
    assert isinstance(h.refusal(keys["n3"].key_id, 10), KeyRotated)
    assert isinstance(h.refusal(keys["n2"].key_id, 20), MemberRetired)
    assert h.refusal(keys["n2"].key_id, 19) is None
    assert h.refusal(PrivateKey.generate().key_id, 30) is None
    assert h.until(15).eras == h.eras[:2] and h.until(19).current.since == 20
    with pytest.raises(ConsortiumError):
        MembershipHistory.of(c).then(0, 1, rotated)
    with pytest.raises(ConsortiumError):
        h.then(30, 3, Consortium(name="other", origin="o", members=c.members))


def test_a_chain_of_the_older_genesis_format_adds_plain_members() -> None:
    """On a v1 chain (members without cards) the added member's card is checked, then kept as a plain member, so
    the membership stays of one format."""
    from ledger.testing import throwaway_consortium

    t = throwaway_consortium(nodes=3)
    names = [m.name for m in t.consortium.nodes]
    k = PrivateKey.generate()
    g = _propose(Governance(t.consortium), names[0], proposal_id="a", action="add_member", card=_card(k, "x"))
    g, decided = _vote(_vote(g, names[1], "a"), names[2], "a").boundary(0)
    assert decided[0].outcome == APPLIED
    added = g.consortium.by_name("x")
    assert added.key_id == k.key_id and added.card_signature is None and g.consortium.format == t.consortium.format
