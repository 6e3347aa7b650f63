"""A lost or rewound order never loses an accepted transaction: the durable pool is proposed again until
its transactions are in blocks, never applied twice; a lost solo order log shows in ``/status``."""

from __future__ import annotations

import time
from pathlib import Path

from node_fakes import Cluster

from consortium_nodes.node import Node
from consortium_nodes.ordering import SoloOrderer
from ledger.testing import make_tx


def _wait(cond, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


def test_transactions_whose_batch_was_lost_are_proposed_again_until_in_a_block(cluster: Cluster) -> None:
    """An orderer that answered a batch number but kept nothing (its log was lost) does not lose the
    batch's transactions: ``/status`` counts them in ``pool`` (durable, ``in_flight``) rather than 0, they are
    not proposed again before ``repropose_after`` seconds, and then they are, once, and reach a block."""
    node = cluster.add(cluster.names[0])
    txs = [make_tx(cluster.t.gateway, i) for i in range(3)]
    assert [r.status for r in node.submit([t.to_dict() for t in txs])] == ["accepted"] * 3
    cluster.orderer.lose_appends = 1
    assert node.batcher.step() == 3
    cluster.follow()
    assert node.store.height == -1
    st = node.status()
    assert st["pool"] == 3 and st["pool_detail"]["in_flight"] == 3 and st["pool_detail"]["waiting"] == 0
    assert node.batcher.again() == 0  # ordered a moment ago: not due yet
    node.batcher.repropose_after = 0.0
    assert node.batcher.again() == 3
    assert node.status()["pool_detail"]["reproposed"] == 3
    assert node.batcher.step() == 3
    cluster.follow()
    assert node.store.height == 0 and node.store.tx_count() == 3
    assert all(node.tx_status(t.tx_id)["status"] == "committed" for t in txs)
    st = node.status()
    assert st["pool"] == 0 and st["pool_detail"]["in_flight"] == 0
    assert node.batcher.again() == 0  # in a block: never proposed again


def test_a_transaction_ordered_twice_is_applied_once(cluster: Cluster) -> None:
    """Proposed again while its first batch was only late (both batches in the order), a transaction is in
    the first block only: the builder drops the copy the chain already holds, on every node alike."""
    a, b = (cluster.add(n) for n in cluster.names[:2])
    tx = make_tx(cluster.t.gateway, 7)
    assert a.submit([tx.to_dict()])[0].status == "accepted"
    assert b.submit([tx.to_dict()])[0].status == "accepted"  # the same transaction reached two nodes
    assert a.batcher.step() == 1 and b.batcher.step() == 1
    a.batcher.repropose_after = 0.0
    assert a.batcher.again() == 1 and a.batcher.step() == 1  # a third copy in the order
    cluster.follow()
    for node in (a, b):
        assert node.store.height == 2
        assert node.store.tx_count() == 1
        assert [len(node.store.block(h).transactions) for h in range(3)] == [1, 0, 0]  # type: ignore[union-attr]
        assert node.status()["pool"] == 0
    assert [a.store.header(h) for h in range(3)] == [b.store.header(h) for h in range(3)]


def test_the_batcher_thread_reproposes_on_its_own(cluster: Cluster) -> None:
    """With its threads running, a node whose batch the orderer lost proposes it again by itself after
    ``repropose_after`` seconds and the transaction becomes committed."""
    node = cluster.add(cluster.names[0], replay=False)
    node.batcher.repropose_after = 0.3
    cluster.orderer.lose_appends = 1
    node.start()
    try:
        tx = make_tx(cluster.t.gateway, 9)
        assert node.submit([tx.to_dict()])[0].status == "accepted"
        assert _wait(lambda: node.tx_status(tx.tx_id)["status"] == "committed")
        assert node.store.tx_count() == 1 and node.status()["pool"] == 0
    finally:
        node.stop()


def _solo_node(cluster: Cluster, name: str, log: Path) -> tuple[Node, SoloOrderer]:
    solo = SoloOrderer.open(log)
    return cluster.add(name, orderer=solo, replay=False), solo


def _restart_without_log(cluster: Cluster, node: Node, solo: SoloOrderer, name: str,
                         log: Path) -> tuple[Node, SoloOrderer]:
    """The solo leader killed, its order log deleted, started again: replayed, pool restored, order resumed."""
    solo.close()
    node.store.close()
    log.unlink()
    node, solo = _solo_node(cluster, name, log)
    node.chain.replay()
    node.pool.restore()
    node._resume_order()
    return node, solo


def test_a_lost_solo_order_log_shows_and_the_order_goes_on_after_the_chain(cluster: Cluster, tmp_path: Path) -> None:
    """The solo leader restarted on an empty order log (it was lost) while its chain holds blocks: it goes
    on with the order after its chain's head (new batches become new blocks instead of being ignored),
    ``/status`` shows the fault and ``order_log`` (``ready`` stays true: the node heals itself), the
    transactions restored from the durable pool reach blocks, and then the fault clears (``healed``)."""
    name = cluster.names[0]
    node, solo = _solo_node(cluster, name, tmp_path / "orderer.db")
    node.start()
    first = make_tx(cluster.t.gateway, 1)
    try:
        assert node.submit([first.to_dict()])[0].status == "accepted"
        assert _wait(lambda: node.store.height == 0)
        assert node.status()["order_log"] is None and node.status()["fault"] is None
    finally:
        node.stop()
    # Accepted but not yet ordered when the node stopped: in the durable pool only.
    pending = make_tx(cluster.t.gateway, 2)
    node.pool.persist([(pending.tx_id, pending.encode())])
    node.store.close()
    (tmp_path / "orderer.db").unlink()
    node, solo = _solo_node(cluster, name, tmp_path / "orderer.db")
    node.start()
    try:
        st = node.status()
        assert st["order_log"] is not None and st["order_log"]["resumed_after"] == 0
        assert _wait(lambda: node.tx_status(pending.tx_id)["status"] == "committed")
        assert node.store.get_tx(pending.tx_id).height == 1  # type: ignore[union-attr]  # after the chain's head
        later = make_tx(cluster.t.gateway, 3)
        assert node.submit([later.to_dict()])[0].status == "accepted"
        assert _wait(lambda: node.tx_status(later.tx_id)["status"] == "committed")
        assert node.store.tx_count() == 3
        st = node.status()
        assert st["ready"] is True and st["fault"] is None and st["order_log"]["healed"] is True
        assert "lost or rewound" in st["order_log"]["message"]
    finally:
        node.stop()
    # A restart on the resumed log goes on from where it was: no new fault.
    node.store.close()
    node, solo = _solo_node(cluster, name, tmp_path / "orderer.db")
    assert solo.head() >= 1
    node.start()
    try:
        assert node.status()["order_log"] is None
    finally:
        node.stop()


def test_the_fault_shows_while_restored_transactions_wait(cluster: Cluster, tmp_path: Path) -> None:
    """Right after a lost log is found, ``fault`` names it (the restored transactions are not in blocks
    yet) while ``ready`` stays true."""
    name = cluster.names[0]
    node, _ = _solo_node(cluster, name, tmp_path / "orderer.db")
    node.submit([make_tx(cluster.t.gateway, 1).to_dict()])
    node.batcher.step()
    cluster.follow()
    node.follower.step()
    assert node.store.height == 0
    node.pool.persist([(make_tx(cluster.t.gateway, 2).tx_id, make_tx(cluster.t.gateway, 2).encode())])
    node.store.close()
    (tmp_path / "orderer.db").unlink()
    node, _ = _solo_node(cluster, name, tmp_path / "orderer.db")
    node.chain.replay()
    node.pool.restore()
    node._resume_order()
    st = node.status()
    assert st["fault"] and "lost or rewound" in st["fault"] and st["ready"] is False  # not started yet
    node.ready = True
    assert node.status()["ready"] is True and node.status()["pool"] == 1


def test_a_damaged_order_log_is_moved_aside_and_reported(tmp_path: Path) -> None:
    """An order log file that is not a database is moved aside (``orderer.db.damaged-*``) and a new log is
    begun, saying what happened (:attr:`SoloOrderer.damaged`)."""
    path = tmp_path / "orderer.db"
    path.write_bytes(b"not a database at all" * 100)
    solo = SoloOrderer.open(path)
    try:
        assert solo.head() == -1 and solo.damaged and "damaged" in solo.damaged
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("orderer.db.damaged-")]
    finally:
        solo.close()


def test_a_lost_log_is_rebuilt_from_the_leaders_copies_of_the_batches_it_built(
        cluster: Cluster, tmp_path: Path) -> None:
    """The solo leader built a block its peers had not read yet when it lost its order log: on restart it
    puts the batch back from the copy kept with the block (the proposer's signature and all), so a peer
    that was behind builds the very same block from it instead of waiting for one nobody can certify."""
    a_name, b_name = cluster.names[:2]
    log = tmp_path / "orderer.db"
    a, solo = _solo_node(cluster, a_name, log)
    a.chain.replay()
    tx = make_tx(cluster.t.gateway, 4)
    assert a.submit([tx.to_dict()])[0].status == "accepted"
    assert a.batcher.step() == 1
    a.follower.step()
    assert a.store.height == 0  # the peers have not read batch 0 yet
    a, solo = _restart_without_log(cluster, a, solo, a_name, log)
    assert solo.head() == 0 and a.status()["order_log"]["resumed_after"] == 0
    b = cluster.add(b_name, orderer=solo)
    b.follower.step()
    assert b.store.height == 0 and b.store.header(0) == a.store.header(0)
    assert b.store.known_tx_ids([tx.tx_id]) == {tx.tx_id}
    solo.close()


def test_a_lost_log_is_rebuilt_from_a_peers_copies_of_batches_the_leader_never_built(
        cluster: Cluster, tmp_path: Path) -> None:
    """A peer built a block from a batch the solo leader ordered but had not built itself when it lost its
    order log (killed at once): on restart the leader restores that batch from the peer's copy, so it builds
    the very same block and the peer's transaction is not lost (the peer had already taken it out of its
    pool) nor its chain forked by a different batch 1."""
    a_name, b_name = cluster.names[:2]
    log = tmp_path / "orderer.db"
    a, solo = _solo_node(cluster, a_name, log)
    a.chain.replay()
    b = cluster.add(b_name, orderer=solo)
    first, second = make_tx(cluster.t.gateway, 5), make_tx(cluster.t.gateway, 6)
    assert a.submit([first.to_dict()])[0].status == "accepted" and a.batcher.step() == 1
    a.follower.step()
    b.follower.step()
    assert b.submit([second.to_dict()])[0].status == "accepted" and b.batcher.step() == 1
    b.follower.step()
    assert (a.store.height, b.store.height) == (0, 1)  # the leader never built batch 1
    a, solo = _restart_without_log(cluster, a, solo, a_name, log)
    assert solo.head() == 1
    a.follower.step()
    assert a.store.height == 1 and a.store.header(1) == b.store.header(1)
    assert a.store.known_tx_ids([second.tx_id]) == {second.tx_id}
    solo.close()
