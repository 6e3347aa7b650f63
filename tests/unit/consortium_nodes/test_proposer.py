"""One proposer at a time (consortium_nodes.proposer) on real Nodes wired in memory: the holder of the proposer
key orders every node's transactions, the others hand theirs over, and none depends on it to be ordered."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from node_fakes import Cluster, ElectionBoard

from consortium_nodes.http import create_app
from consortium_nodes.node import Node
from consortium_nodes.proposer import rows_body, rows_of
from ledger.testing import make_tx


def _three(cluster: Cluster) -> tuple[Node, Node, Node]:
    board = ElectionBoard(cluster)
    a, b, c = (cluster.add(n, proposer=board.election(n)) for n in cluster.names[:3])
    for n in (a, b, c):
        assert n.proposer is not None
        n.proposer.step()  # a campaigns first: it holds the key, b and c see it
    return a, b, c


def _submit(cluster: Cluster, node: Node, *seeds: int) -> list[str]:
    txs = [make_tx(cluster.t.gateway, i) for i in seeds]
    assert [r.status for r in node.submit([t.to_dict() for t in txs])] == ["accepted"] * len(txs)
    return [t.tx_id for t in txs]


def test_other_nodes_hand_their_batches_to_the_proposer(cluster: Cluster) -> None:
    """Transactions submitted to two non-proposers reach the order in one batch of the proposer's, signed by it;
    the non-proposers append nothing, every node builds the block, and the transactions are committed on the
    nodes that accepted them (their durable pools empty); /status names the proposer and counts hand-overs."""
    a, b, c = _three(cluster)
    assert a.status()["proposer"]["leading"] is True and b.status()["proposer"]["proposer"] == a.name
    ids = _submit(cluster, b, 1, 2) + _submit(cluster, c, 3)
    assert b.batcher.step() == 2 and c.batcher.step() == 1
    assert cluster.orderer.read(-1) == []  # handed over, not appended
    assert a.batcher.step() == 3
    batches = cluster.orderer.read(-1)
    assert len(batches) == 1 and batches[0].proposer == a.name and batches[0].signature is not None
    cluster.follow()
    for n in (a, b, c):
        assert n.store.height == 0 and n.store.tx_count() == 3
    assert all(b.tx_status(i)["status"] == "committed" for i in ids[:2])
    assert b.status()["pool"] == 0 and c.status()["pool"] == 0
    assert b.status()["proposer"]["handed"] == 2 and a.status()["proposer"]["taken"] == 3


def test_a_non_proposer_hands_over_at_once(cluster: Cluster) -> None:
    """A node that hands its transactions over does not wait ``batch_max_wait`` first (the proposer waits it, to
    batch every node's); the proposer itself still waits it."""
    a, b, _c = _three(cluster)
    a.batcher.max_wait = b.batcher.max_wait = 5.0
    _submit(cluster, b, 8)
    t0 = time.monotonic()
    assert b.batcher.step() == 1 and time.monotonic() - t0 < 2.0
    assert a.pool.counts()["waiting"] == 1 and cluster.orderer.read(-1) == []
    a.batcher.max_wait = 0.3
    t0 = time.monotonic()
    assert a.batcher.step() == 1 and time.monotonic() - t0 >= 0.25


def test_a_proposer_that_cannot_be_reached_is_not_waited_for(cluster: Cluster) -> None:
    """When the proposer does not answer, the node appends its batch itself at once (by compare-and-set, as
    without a proposer), counts the refusal in /status, and proposes its next batches itself for a few seconds
    instead of waiting for the proposer batch after batch."""
    a, b, _c = _three(cluster)
    b.peers.down.add(a.name)  # type: ignore[attr-defined]
    _submit(cluster, b, 4)
    assert b.batcher.step() == 1
    batches = cluster.orderer.read(-1)
    assert [x.proposer for x in batches] == [b.name]
    assert b.status()["proposer"]["refused"] == 1 and b.status()["proposer"]["handed"] == 0
    b.peers.down.clear()  # type: ignore[attr-defined]
    _submit(cluster, b, 9)  # within PAUSE_AFTER_FAILURE: proposed here, the proposer not tried again
    assert b.batcher.step() == 1
    assert [x.proposer for x in cluster.orderer.read(-1)] == [b.name, b.name]
    assert len(b.peers.handed) == 1  # type: ignore[attr-defined]


def test_a_node_that_no_longer_proposes_refuses_hand_overs(cluster: Cluster) -> None:
    """A node whose lease lapsed (another node took the key meanwhile) answers 409 not_proposer to a hand-over,
    so the sender proposes the batch itself; the new holder takes it, once."""
    a, b, _c = _three(cluster)
    cluster.now += timedelta(seconds=10)  # a stopped campaigning (paused, cut off): its lease lapsed
    assert b.proposer is not None and a.proposer is not None
    assert b.proposer.step() is True and a.proposer.step() is False
    assert a.status()["proposer"] == {**a.status()["proposer"], "proposer": b.name, "leading": False}
    tx = make_tx(cluster.t.gateway, 5)
    body = rows_body(cluster.names[2], [(tx.tx_id, tx.encode())])
    r = create_app(a).test_client().post("/v1/pool/forward", json=body)
    assert r.status_code == 409 and r.json["reason"] == "not_proposer"
    assert create_app(b).test_client().post("/v1/pool/forward", json=body).json == {"pooled": 1}
    assert create_app(b).test_client().post("/v1/pool/forward", json=body).json == {"pooled": 0}  # pooled already


def test_a_transaction_the_proposer_kept_out_is_proposed_by_its_own_node(cluster: Cluster) -> None:
    """A proposer that takes a hand-over and never orders it (it died, or keeps the transaction out) does not
    keep it off the chain: once due again, the accepting node proposes it itself, not to the proposer again."""
    a, b, _c = _three(cluster)
    (tx_id,) = _submit(cluster, b, 6)
    assert b.batcher.step() == 1 and a.pool.counts()["waiting"] == 1
    a.pool.take(100, 0.0, threading.Event())  # the proposer drops it
    b.batcher.repropose_after = 0.0
    assert b.batcher.again() == 1
    assert b.batcher.step() == 1
    assert [x.proposer for x in cluster.orderer.read(-1)] == [b.name]
    cluster.follow()
    assert b.tx_status(tx_id)["status"] == "committed"
    assert b.status()["proposer"]["handed"] == 1


def test_hand_over_rows_are_checked() -> None:
    """A hand-over body keeps only ``[64-character id, text]`` pairs, at most the limit."""
    good = ["a" * 64, "{}"]
    assert rows_of([good, ["short", "{}"], ["b" * 64, 7], "x", good], 10) == [("a" * 64, b"{}")] * 2
    assert rows_of([good] * 5, 3) == [("a" * 64, b"{}")] * 3
    assert rows_of({"not": "a list"}, 3) == []


def test_a_proposer_name_that_is_no_peer_is_not_handed_anything() -> None:
    """An election key naming a node that is not among the peers (anyone who can write to etcd could set it)
    makes the hand-over fail, so the node proposes itself; nothing is sent and nothing raises."""
    from consortium_nodes.peers import Peers

    peers = Peers(peers={"zhujian": "http://127.0.0.1:9"})
    assert peers.hand_over("mallory", "chengguan", [("a" * 64, b"{}")]) is False
