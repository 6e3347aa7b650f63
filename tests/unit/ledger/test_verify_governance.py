"""ledger.verify.chain and ledger.store.governance_log on a chain whose membership changed by vote: each block's
certificate and signatures are judged under the keys in force at its height (a SQLite file per test)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ledger.core.block import BlockHeader, sign_header
from ledger.core.builder import NullStateMachine, build_block
from ledger.core.card import make_card
from ledger.core.crypto import PrivateKey
from ledger.core.governance import PROPOSE, VOTE
from ledger.core.governed import Governed
from ledger.core.transaction import Transaction
from ledger.core.tree import CompactRange
from ledger.core.validity import Validity
from ledger.store.demo_chain import make_tx
from ledger.store.governance_log import store_history
from ledger.store.ledger_store import LedgerStore
from ledger.testing import throwaway_consortium
from ledger.verify.chain import verify_chain

YEAR = Validity(not_before="2026-01-01T00:00:00+08:00", not_after="2027-06-01T00:00:00+08:00")
T = "2026-12-01T09:00:0{}+08:00"


def _gov(key: PrivateKey, kind: str, payload: dict[str, object], i: int) -> Transaction:
    return Transaction.create(key=key, type=kind, payload=payload, actor="department:governance",
                              timestamp=T.format(i))


def _chain(tmp_path: Path, late_signer_old_key: bool) -> tuple[str, PrivateKey, PrivateKey]:
    """Three blocks: 0 proposes rotating 生态环境's node key, 1 approves it (in force from 2), 2 is co-signed by
    the other three nodes and by 生态环境 with its new key, or (``late_signer_old_key``) with its old one only
    besides two others."""
    t = throwaway_consortium(nodes=4)
    old, new = t.keys["shengtai"], PrivateKey.generate()
    card = make_card(new, name="shengtai", org="生态环境局", roles=("node", "approver"), validity=YEAR).to_dict()
    machine = Governed(NullStateMachine(), t.consortium)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = LedgerStore.open(url, consortium=t.consortium)
    prev: BlockHeader | None = None
    log = CompactRange()
    blocks: Sequence[tuple[list[Transaction], list[PrivateKey]]] = [
        ([_gov(t.keys["chengguan"], PROPOSE, {"proposal_id": "r", "action": "rotate_key", "member": "shengtai",
                                              "card": card}, 0)], t.node_keys()),
        ([_gov(t.keys[n], VOTE, {"proposal_id": "r", "approve": True}, 1) for n in ("zhujian", "shengtai")],
         t.node_keys()),
        ([make_tx(t.gateway, 2), make_tx(old, 3)],
         [t.keys["chengguan"], t.keys["zhujian"], old] if late_signer_old_key else [*t.node_keys()[:3], new]),
    ]
    for h, (txs, signers) in enumerate(blocks):
        built = build_block(raw_txs=[tx.encode() for tx in txs], proposer="chengguan", timestamp=T.format(5),
                            previous=prev, log=log, consortium=t.consortium, machine=machine, seen=lambda ids: set())
        block = built.block.with_signatures([sign_header(built.block.header, k) for k in signers])
        store.append(block, machine.at(h))
        prev, log = built.block.header, built.log
    assert store.block(2) is not None and store.block(2).codes == ("valid", "key_rotated")  # type: ignore[union-attr]
    assert store_history(store, t.consortium) == machine.history
    store.close()
    return url, old, new


def test_blocks_verify_under_the_keys_in_force_at_their_height(tmp_path: Path) -> None:
    """The blocks before the rotation verify with the old key's co-signatures, the one after with the new key's;
    the old key's transaction after the rotation is marked key_rotated and that is what verification expects."""
    url, _old, _new = _chain(tmp_path, late_signer_old_key=False)
    report = verify_chain(url, workers=1)
    assert report.ok, report.problems
    assert report.blocks == 3


def test_a_cosignature_under_a_rotated_key_does_not_count(tmp_path: Path) -> None:
    """After the rotation, two co-signatures and one under 生态环境's old key are not a quorum of three."""
    url, _old, _new = _chain(tmp_path, late_signer_old_key=True)
    report = verify_chain(url, workers=1)
    assert [(p.kind, p.height) for p in report.problems][:1] == [("certificate", 2)], report.problems
