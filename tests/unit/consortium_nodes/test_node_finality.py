"""Signatures and finality of a node, with the orderer and the peers faked in memory."""

from __future__ import annotations

from node_fakes import T0, Cluster

from ledger.core.block import BlockHeader, sign_header
from ledger.core.encoding import iso
from ledger.testing import make_tx


def _sig_item(header: BlockHeader, key) -> dict:
    return {"height": header.height, "header_hash": header.hash, **sign_header(header, key).to_dict()}


def _one_block(cluster: Cluster, n: int = 1):
    tx = make_tx(cluster.t.gateway, n)
    cluster.orderer.append(proposer=cluster.names[-1], timestamp=iso(T0), txs=[tx.encode()])
    cluster.follow()
    return tx


def test_final_at_three_of_four_signatures_and_not_at_two(cluster: Cluster) -> None:
    """With four nodes the quorum is 3: a block this node built and signed is not final with one peer's
    signature added (2 of 4), and is final with a second peer's (3 of 4); the transaction then answers
    ``final`` with a certificate of the three signatures."""
    a, b, c, _d = cluster.names
    node = cluster.add(a)
    tx = _one_block(cluster)
    header = node.store.header(0)
    assert header is not None and node.store.height == 0
    assert node.final_height == -1  # its own signature only
    assert node.receive_signatures([_sig_item(header, cluster.t.keys[b])]) == 1
    assert node.final_height == -1  # 2 of 4
    assert node.tx_status(tx.tx_id)["status"] == "committed"
    assert node.receive_signatures([_sig_item(header, cluster.t.keys[c])]) == 1
    assert node.final_height == 0  # 3 of 4
    st = node.tx_status(tx.tx_id)
    assert st["status"] == "final" and st["block_hash"] == header.hash and len(st["certificate"]) == 3
    assert node.status()["certificate"]["signers"] == [a, b, c]


def test_the_same_signature_twice_counts_once(cluster: Cluster) -> None:
    """A peer's signature delivered twice is new once: it does not count twice towards the quorum."""
    a, b, _c, _d = cluster.names
    node = cluster.add(a)
    _one_block(cluster)
    header = node.store.header(0)
    assert header is not None
    item = _sig_item(header, cluster.t.keys[b])
    assert node.receive_signatures([item, item]) == 1
    assert node.receive_signatures([item]) == 0
    assert node.final_height == -1


def test_signature_over_another_header_at_the_same_height_is_a_divergence(cluster: Cluster) -> None:
    """A member's valid signature over a header other than ours at a height we hold is recorded as a
    divergence (member, height, both hashes) in ``/status`` and does not count towards finality."""
    a, b, c, _d = cluster.names
    node = cluster.add(a)
    _one_block(cluster)
    real = node.store.header(0)
    assert real is not None
    fake = BlockHeader(**{**real.to_dict(), "tx_root": "00" * 32})
    assert node.receive_signatures([_sig_item(fake, cluster.t.keys[b])]) == 0
    assert node.receive_signatures([_sig_item(real, cluster.t.keys[c])]) == 1
    assert node.final_height == -1  # a and c only: b's signature is over another header
    diverged = node.status()["diverged"]
    assert diverged == [{"height": 0, "member": b, "their_hash": fake.hash, "our_hash": real.hash}]


def test_signature_arriving_before_the_block_waits_for_it_and_diverges_if_it_differs(cluster: Cluster) -> None:
    """Signatures for a height this node has not built yet are held; when the block is stored, one over
    our header counts, one over another header is a divergence."""
    a, b, c, _d = cluster.names
    builder = cluster.add(a)
    _one_block(cluster)
    real = builder.store.header(0)
    assert real is not None
    fake = BlockHeader(**{**real.to_dict(), "tx_root": "11" * 32})
    late = cluster.add(b)
    assert late.store.height == -1
    late.receive_signatures([_sig_item(real, cluster.t.keys[a]), _sig_item(fake, cluster.t.keys[c])])
    cluster.follow()
    assert late.store.header(0) == real
    assert late.final_height == -1  # b (own) and a: 2 of 4
    assert [(d.member, d.their_hash) for d in late.divergences] == [(c, fake.hash)]


def test_four_nodes_exchanging_signatures_finalise_the_same_blocks(cluster: Cluster) -> None:
    """Four nodes following one order build identical blocks; once their pushed signatures are delivered
    every node holds a quorum certificate for every block."""
    nodes = [cluster.add(n) for n in cluster.names]
    for i in range(3):
        _one_block(cluster, i)
    assert cluster.deliver() > 0
    assert {n.store.head().hash for n in nodes} == {nodes[0].store.head().hash}  # type: ignore[union-attr]
    assert all(n.final_height == 2 for n in nodes)
    assert all(n.divergences == [] for n in nodes)


def test_syncer_pulls_signatures_that_were_never_pushed(cluster: Cluster) -> None:
    """A peer whose pushes were lost: the syncer pulls the missing signatures of late blocks from the
    peers, and the block becomes final."""
    nodes = [cluster.add(n) for n in cluster.names[:3]]
    _one_block(cluster)
    assert all(n.final_height == -1 for n in nodes)  # nothing delivered
    first = nodes[0]
    first.syncer.pull_after = 0.0
    first.syncer.pull_missing()
    assert first.final_height == 0
