"""Checkpoints and waiting readers of a node, with the orderer and the peers faked in memory."""

from __future__ import annotations

import threading

import pytest
from node_fakes import T0, Cluster

from ledger.core import checkpoint as cp
from ledger.core.encoding import iso
from ledger.errors import LedgerError
from ledger.testing import make_tx


def _final_blocks(cluster: Cluster, names: list[str], blocks: int) -> None:
    for n in names:
        cluster.add(n)
    for i in range(blocks):
        cluster.orderer.append(proposer=names[0], timestamp=iso(T0), txs=[make_tx(cluster.t.gateway, i).encode()])
    cluster.follow()
    cluster.deliver()


def test_checkpoint_is_cosigned_by_witnesses_and_shared(cluster: Cluster) -> None:
    """The coordinator's checkpoint of the final log is co-signed by the peers whose own log matches (a
    quorum), stored, and shared: every peer stores the same note as its latest checkpoint."""
    _final_blocks(cluster, cluster.names, 2)
    coordinator = cluster.nodes[cluster.names[0]]
    note = coordinator.make_checkpoint()
    verifiers = {m.name: m.public_key for m in cluster.t.consortium.nodes}
    c, signers = cp.verify(note, verifiers, quorum=cluster.t.consortium.quorum, origin=cluster.t.consortium.origin)
    assert c.size == 2 and len(signers) == 4
    assert all(n.latest_checkpoint() == note for n in cluster.nodes.values())


def test_witness_refuses_a_checkpoint_its_log_does_not_hold(cluster: Cluster) -> None:
    """A node co-signs only a checkpoint of its own log: a larger size than it holds is refused with
    checkpoint_mismatch, and an unreachable peer only leaves its signature out."""
    _final_blocks(cluster, cluster.names, 1)
    a, b = cluster.nodes[cluster.names[0]], cluster.nodes[cluster.names[1]]
    tree = a.store.log()
    too_big = cp.sign(cp.Checkpoint(cluster.t.consortium.origin, tree.size + 1, tree.root()), [(a.name, a.key)])
    with pytest.raises(LedgerError) as caught:
        b.cosign_checkpoint(too_big)
    assert caught.value.reason == "checkpoint_mismatch"
    cluster.peers_of(a.name).down.add(b.name)
    note = a.make_checkpoint()
    _c, signers = cp.verify(note, {m.name: m.public_key for m in cluster.t.consortium.nodes},
                            quorum=cluster.t.consortium.quorum, origin=cluster.t.consortium.origin)
    assert b.name not in signers and len(signers) == 3


def test_tx_status_waiter_wakes_when_its_block_is_final(cluster: Cluster) -> None:
    """A request waiting for a transaction sleeps until the block holding it is stored and final, then
    answers final with the block hash (no polling)."""
    nodes = [cluster.add(n) for n in cluster.names[:3]]
    tx = make_tx(cluster.t.gateway, 9)
    answer: dict = {}
    waiter = threading.Thread(target=lambda: answer.update(nodes[0].tx_status(tx.tx_id, wait=10)))
    waiter.start()
    cluster.orderer.append(proposer=nodes[0].name, timestamp=iso(T0), txs=[tx.encode()])
    cluster.follow()
    cluster.deliver()
    waiter.join(timeout=10)
    assert answer["status"] == "final" and answer["block_hash"] == nodes[0].store.header(0).hash  # type: ignore[union-attr]


def test_unknown_transaction_answers_unknown_after_its_wait(cluster: Cluster) -> None:
    """A transaction nobody submitted answers unknown once the wait is over."""
    node = cluster.add(cluster.names[0])
    assert node.tx_status("00" * 32, wait=0.05) == {"tx_id": "00" * 32, "status": "unknown"}
