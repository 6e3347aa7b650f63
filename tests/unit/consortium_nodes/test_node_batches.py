"""Batches into blocks: malformed batches, the batcher and its clock, with the orderer faked in memory."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from node_fakes import T0, Cluster

from consortium_nodes.chain import FIRST_SKIPPED_TIME
from consortium_nodes.errors import StoreTampered
from ledger.core.encoding import iso
from ledger.testing import make_tx

BAD = {"proposer": "x", "timestamp": "not-a-time", "txs": []}


def test_malformed_batch_becomes_the_same_empty_block_on_every_node(cluster: Cluster) -> None:
    """A batch whose timestamp is not ISO 8601 is skipped alike on every node: it becomes an empty block
    (the previous block's time, the batch's proposer), so heights stay batch numbers and the nodes'
    blocks stay identical; the next batch is built as usual, and ``/status`` counts the skipped batch
    without a fault."""
    a, b = (cluster.add(n) for n in cluster.names[:2])
    tx1, tx2, tx3 = (make_tx(cluster.t.gateway, i) for i in (1, 2, 3))
    cluster.orderer.append(proposer=a.name, timestamp=iso(T0), txs=[tx1.encode()])
    cluster.orderer.append_json({**BAD, "txs": [tx2.encode().decode()]})
    cluster.orderer.append(proposer=b.name, timestamp=iso(T0), txs=[tx3.encode()])
    cluster.follow()
    assert a.store.height == b.store.height == 2
    assert [a.store.header(h) for h in range(3)] == [b.store.header(h) for h in range(3)]
    skipped = a.store.block(1)
    assert skipped is not None and skipped.transactions == ()
    assert skipped.header.proposer == "x" and skipped.header.timestamp == a.store.header(0).timestamp  # type: ignore[union-attr]
    assert a.store.known_tx_ids([tx2.tx_id]) == set()  # a skipped batch's transactions are not recorded
    assert a.store.known_tx_ids([tx3.tx_id]) == {tx3.tx_id}
    for node in (a, b):
        st = node.status()
        assert st["fault"] is None
        assert st["skipped_batches"]["count"] == 1
        assert st["skipped_batches"]["last"]["seq"] == 1
        assert st["skipped_batches"]["last"]["reason"] == "malformed_batch"


def test_malformed_first_batch_gets_the_fixed_first_time(cluster: Cluster) -> None:
    """A malformed batch 0 has no previous block time to repeat: its block gets the fixed
    FIRST_SKIPPED_TIME, and a later batch's block keeps its own (later) time."""
    a = cluster.add(cluster.names[0])
    cluster.orderer.append_json(BAD)
    cluster.orderer.append(proposer=a.name, timestamp=iso(T0), txs=[make_tx(cluster.t.gateway, 1).encode()])
    cluster.follow()
    assert a.store.header(0).timestamp == FIRST_SKIPPED_TIME  # type: ignore[union-attr]
    assert a.store.header(1).timestamp == iso(T0)  # type: ignore[union-attr]


def test_follower_thread_carries_on_after_a_malformed_batch(cluster: Cluster) -> None:
    """With its threads running, a node's follower survives a malformed batch from the orderer (it used
    to stop with MalformedTransaction) and builds the batches after it; the node reports no fault."""
    node = cluster.add(cluster.names[0], replay=False)
    node.start()
    try:
        cluster.orderer.append_json(BAD)
        tx = make_tx(cluster.t.gateway, 5)
        assert node.submit([tx.to_dict()])[0].status == "accepted"
        deadline = time.monotonic() + 10
        while node.store.height < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert node.store.height == 1
        assert node.tx_status(tx.tx_id)["status"] == "committed"
        assert node.fault is None and node.status()["skipped_batches"]["count"] == 1
    finally:
        node.stop()


def test_batcher_stamps_batches_with_the_injected_clock_and_retries_refused_ones(cluster: Cluster) -> None:
    """The batcher proposes pooled transactions with the time of the node's clock; a batch the orderer
    refuses goes back to the pool and is proposed again, once."""
    node = cluster.add(cluster.names[0])
    txs = [make_tx(cluster.t.gateway, i) for i in range(3)]
    assert [r.status for r in node.submit([t.to_dict() for t in txs])] == ["accepted"] * 3
    cluster.now = T0 + timedelta(minutes=5)
    cluster.orderer.fail_appends = 1
    assert node.batcher.step() == 0
    assert node.status()["pool"] == 3
    assert node.batcher.step() == 3
    batches = cluster.orderer.read(-1)
    assert len(batches) == 1 and batches[0].timestamp == iso(T0 + timedelta(minutes=5))
    assert [r.status for r in node.submit([txs[0].to_dict()])] == ["known"]  # in flight
    cluster.follow()
    assert node.tx_status(txs[2].tx_id)["status"] == "committed"
    assert [r.status for r in node.submit([txs[0].to_dict()])] == ["known"]  # on the chain


def test_halted_chain_builds_nothing(cluster: Cluster) -> None:
    """Once a chain-halting error (a typed StoreTampered, not a message text) is recorded the follower
    builds no more blocks, and ``/status`` shows the fault."""
    node = cluster.add(cluster.names[0], replay=False)
    node.health.failed("database changed", StoreTampered("database changed"))
    node.start()
    try:
        cluster.orderer.append(proposer=node.name, timestamp=iso(T0), txs=[make_tx(cluster.t.gateway, 1).encode()])
        time.sleep(0.5)
        assert node.store.height == -1
        assert node.status()["fault"] == "database changed"
    finally:
        node.stop()


def test_chain_with_a_skipped_batch_verifies_and_replays_after_a_restart(cluster: Cluster) -> None:
    """The empty block of a skipped batch is an ordinary certified block: the chain verifies end to end,
    and a node restarted on its database replays it without a fault and follows on from the next batch."""
    from ledger.verify.chain import verify_chain

    nodes = [cluster.add(n) for n in cluster.names[:3]]
    cluster.orderer.append(proposer=nodes[0].name, timestamp=iso(T0), txs=[make_tx(cluster.t.gateway, 1).encode()])
    cluster.orderer.append_json(BAD)
    cluster.follow()
    cluster.deliver()
    first = nodes[0]
    assert first.final_height == 1
    report = verify_chain(str(first.store.engine.url), cluster.t.consortium, workers=1)
    assert report.ok, report.problems
    first.store.close()
    again = cluster.add(first.name)  # the same database, a new process
    assert again.fault is None and again.store.height == 1 and again.final_height == 1
    cluster.orderer.append(proposer=again.name, timestamp=iso(T0), txs=[make_tx(cluster.t.gateway, 2).encode()])
    again.follower.step()
    assert again.store.height == 2


@pytest.mark.parametrize("raw", [
    b'{"proposer": 7, "timestamp": ["x"], "txs": "not a list"}',
    b'{"txs": [1, {"a": 2}]}',
    b'[1, 2, 3]',
    b"not json at all \xff",
    b"",
])
def test_batch_bytes_of_any_shape_become_the_same_empty_block(cluster: Cluster, raw: bytes) -> None:
    """Bytes in the order that are not a well-formed batch (fields missing or of the wrong type, not JSON)
    do not stop the follower (a missing field used to raise KeyError in ``Batch.from_json``): every node
    reads the same empty batch from them and builds the same empty block, and the next batch is built."""
    a, b = (cluster.add(n) for n in cluster.names[:2])
    cluster.orderer.append(proposer=a.name, timestamp=iso(T0), txs=[make_tx(cluster.t.gateway, 1).encode()])
    cluster.orderer.append_raw(raw)
    tx = make_tx(cluster.t.gateway, 2)
    cluster.orderer.append(proposer=b.name, timestamp=iso(T0 + timedelta(seconds=1)), txs=[tx.encode()])
    cluster.follow()
    assert a.store.height == b.store.height == 2
    assert [a.store.header(h) for h in range(3)] == [b.store.header(h) for h in range(3)]
    assert a.store.block(1).transactions == ()  # type: ignore[union-attr]
    assert a.store.known_tx_ids([tx.tx_id]) == {tx.tx_id}
    assert a.status()["fault"] is None and a.status()["skipped_batches"]["count"] == 1


def test_batch_without_any_number_is_a_typed_ordering_error() -> None:
    """Bytes that do not say which batch they are (no engine key, no ``seq``) raise MalformedOrder, an
    OrderingError under the node's error base (the follower retries on OrderingError; it never stops)."""
    from consortium_nodes.errors import NodeError
    from consortium_nodes.ordering import Batch, MalformedOrder, OrderingError, seq_of_key

    with pytest.raises(MalformedOrder) as info:
        Batch.from_json(b'{"proposer": "x"}')
    assert isinstance(info.value, OrderingError) and isinstance(info.value, NodeError)
    assert info.value.reason == "malformed_order"
    assert Batch.from_json('{"seq": 3, "proposer": "x", "timestamp": "t", "txs": ["a"]}') == Batch(3, "x", "t", (b"a",))
    assert Batch.from_json('{"seq": 3}', seq=9).seq == 9  # the engine's own number wins
    assert seq_of_key(b"/muck/abc/batch/000000000042") == 42 and seq_of_key("/muck/head") is None
