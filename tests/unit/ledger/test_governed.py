"""ledger.core.governed with ledger.core.builder: blocks built under the membership in force at their height, votes
applied at the block boundary, a rotated key refused afterwards with its own reason (no I/O: the null rules)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ledger.core.block import Block, BlockHeader
from ledger.core.builder import Checked, NullStateMachine, build_block, check_stateless
from ledger.core.card import make_card
from ledger.core.crypto import PrivateKey
from ledger.core.governance import PROPOSE, VOTE
from ledger.core.governed import Governed, history_of
from ledger.core.transaction import Transaction
from ledger.core.tree import CompactRange
from ledger.core.validity import Validity
from ledger.errors import KeyRotated
from ledger.store.demo_chain import make_tx
from ledger.testing import Throwaway, throwaway_consortium

YEAR = Validity(not_before="2026-01-01T00:00:00+08:00", not_after="2027-06-01T00:00:00+08:00")
T = "2026-12-01T09:00:0{}+08:00"


def _gov(key: PrivateKey, kind: str, payload: dict[str, Any], i: int) -> Transaction:
    return Transaction.create(key=key, type=kind, payload=payload, actor="department:governance",
                              timestamp=T.format(i))


class Chain:
    """Blocks built one after another on one Governed machine."""

    def __init__(self, t: Throwaway, inner: Any = None) -> None:
        self.t = t
        self.machine = Governed(NullStateMachine() if inner is None else inner, t.consortium)
        self.prev: BlockHeader | None = None
        self.log = CompactRange()
        self.blocks: list[Block] = []

    def block(self, *txs: Transaction, checked: Mapping[bytes, Checked] | None = None) -> Block:
        built = build_block(raw_txs=[tx.encode() for tx in txs], proposer="chengguan", timestamp=T.format(5),
                            previous=self.prev, log=self.log, consortium=self.t.consortium, machine=self.machine,
                            seen=lambda ids: set(), checked=checked)
        self.prev, self.log = built.block.header, built.log
        self.blocks.append(built.block)
        return built.block


@pytest.fixture()
def t() -> Throwaway:
    return throwaway_consortium(nodes=4)


def test_a_rotation_by_vote_refuses_the_old_key_from_the_next_block(t: Throwaway) -> None:
    """The gateway proposes its own rotation, three nodes approve in the next block; from the block after, a
    transaction under the old key stays in its block as key_rotated (and is refused at admission so), one under
    the new key is valid, and the membership history gives the old key for the old blocks."""
    new = PrivateKey.generate()
    card = make_card(new, name="gateway", org="gw", roles=("gateway",), validity=YEAR).to_dict()
    c = Chain(t)
    propose = _gov(t.gateway, PROPOSE, {"proposal_id": "rot-gw", "action": "rotate_key", "member": "gateway",
                                        "card": card}, 0)
    b0 = c.block(make_tx(t.gateway, 1), propose)
    assert b0.codes == ("valid", "valid") and c.machine.state.version == 0
    votes = [_gov(t.keys[n], VOTE, {"proposal_id": "rot-gw", "approve": True}, 1)
             for n in ("chengguan", "zhujian", "jiaotong")]
    b1 = c.block(make_tx(t.gateway, 2), *votes)
    assert b1.codes == ("valid",) * 4  # the old key still holds in the block that decided
    assert c.machine.state.version == 1 and c.machine.state.since == 2
    b2 = c.block(make_tx(t.gateway, 3), make_tx(new, 4))
    assert b2.codes == ("key_rotated", "valid")
    with pytest.raises(KeyRotated):
        check_stateless(make_tx(t.gateway, 5), t.consortium, c.machine)
    assert c.machine.at(1).by_name("gateway").key_id == t.gateway.key_id
    assert c.machine.at(2).by_name("gateway").key_id == new.key_id
    replayed = history_of(t.consortium, ((b.height, zip(b.transactions, b.codes, strict=True)) for b in c.blocks))
    assert replayed == c.machine.history
    assert c.machine.status()["version"] == 1 and c.machine.status()["decided"][0]["outcome"] == "applied"


def test_a_bad_vote_stays_in_its_block_with_its_reason_and_changes_nothing(t: Throwaway) -> None:
    """A vote on no proposal and a proposal by the gateway to retire a node are kept with their governance
    reasons; the membership and the null rules' digest are untouched by them."""
    c = Chain(t)
    digest = c.machine.digest()
    b = c.block(_gov(t.keys["zhujian"], VOTE, {"proposal_id": "nope", "approve": True}, 0),
                _gov(t.gateway, PROPOSE, {"proposal_id": "x", "action": "retire_member", "member": "shengtai"}, 1))
    assert b.codes == ("governance_unknown_proposal", "governance_not_node")
    assert c.machine.state.version == 0 and c.machine.digest() == digest
    assert c.machine.state.quiet


def test_an_added_node_counts_toward_finality_quorum_after_its_block(t: Throwaway) -> None:
    """Adding a fifth node by three votes of four raises the finality quorum from three to four from the next
    block on; blocks before keep theirs."""
    k = PrivateKey.generate()
    card = make_card(k, name="node4", org="新成员", roles=("node",), validity=YEAR).to_dict()
    c = Chain(t)
    c.block(_gov(t.keys["chengguan"], PROPOSE, {"proposal_id": "add", "action": "add_member", "card": card}, 0),
            *[_gov(t.keys[n], VOTE, {"proposal_id": "add", "approve": True}, 1) for n in ("zhujian", "jiaotong")])
    assert c.machine.at(0).quorum == 3 and c.machine.at(1).quorum == 4
    assert "node4" in {m.name for m in c.machine.in_force().nodes}
    b = c.block(make_tx(k, 9))  # node4 may sign what nodes may (the default policy)
    assert b.codes == ("valid",)


def test_a_transaction_admitted_before_a_policy_vote_is_judged_under_the_new_policy(t: Throwaway) -> None:
    """The admission cache holds a gateway transaction checked under the genesis policy; a vote then leaves
    ``demo.*`` to node members.  The block after is built as every node builds it without the cache:
    the transaction is ``forbidden`` (no node keeps a stale check, so no node diverges)."""
    c = Chain(t)
    tx = make_tx(t.gateway, 1)
    cached = {tx.encode(): check_stateless(tx, t.consortium, c.machine)}
    policy = {"demo.*": ["node"], "*": ["gateway", "node", "admin"]}
    c.block(_gov(t.keys["chengguan"], PROPOSE, {"proposal_id": "pol", "action": "set_policy", "policy": policy}, 0),
            *[_gov(t.keys[n], VOTE, {"proposal_id": "pol", "approve": True}, 1) for n in ("zhujian", "jiaotong")])
    assert c.machine.state.version == 1
    assert c.block(tx, checked=cached).codes == ("forbidden",)


def test_the_eticket_rules_parameters_change_by_vote_from_the_next_block(t: Throwaway) -> None:
    """A set_parameters vote on ``eticket`` keys: a value the e-ticket rules would not take is refused when
    proposed (governance_invalid); a good one, approved by three of four nodes, holds for the rules from the
    block after the deciding one, merged into the genesis's e-ticket parameters (the other keys kept); a replay
    of the same blocks on a fresh machine ends with the same parameters and digest."""
    from ledger.eticket import EticketMachine

    c = Chain(t, EticketMachine.from_consortium(t.consortium))
    rules = c.machine.inner
    assert isinstance(rules, EticketMachine)
    before = rules.params
    bad = _gov(t.keys["chengguan"], PROPOSE, {"proposal_id": "bad", "action": "set_parameters",
                                               "parameters": {"eticket": {"speed_limit_kmh": "fast"}}}, 0)
    good = _gov(t.keys["chengguan"], PROPOSE, {"proposal_id": "grace", "action": "set_parameters",
                                                "parameters": {"eticket": {"camera_grace_s": 7}}}, 1)
    assert c.block(bad, good).codes == ("governance_invalid", "valid")
    votes = [_gov(t.keys[n], VOTE, {"proposal_id": "grace", "approve": True}, 2) for n in ("zhujian", "jiaotong")]
    c.block(*votes)
    assert rules.params.camera_grace_s == 7 and before.camera_grace_s == 120
    assert rules.params.departments == before.departments and rules.params.act_signed == before.act_signed
    assert c.machine.in_force().parameters["eticket"]["camera_grace_s"] == 7
    again = Chain(t, EticketMachine.from_consortium(t.consortium))
    for b in c.blocks:
        assert again.block(*b.transactions).header == b.header
    assert isinstance(again.machine.inner, EticketMachine) and again.machine.inner.params == rules.params
    assert again.machine.digest() == c.machine.digest()
