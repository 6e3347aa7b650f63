"""Catching up from peers' certified blocks, with the orderer and the peers faked in memory."""

from __future__ import annotations

import pytest
from node_fakes import T0, Cluster, MemoryOrderer

from consortium_nodes.errors import Diverged, PeerError
from consortium_nodes.ordering import Batch, BatchesForgottenError
from ledger.core.block import Block, BlockHeader, sign_header
from ledger.core.encoding import iso
from ledger.testing import make_tx


def _certified_chain(cluster: Cluster, blocks: int) -> None:
    """Three of the four nodes build ``blocks`` blocks and certify them."""
    for name in cluster.names[:3]:
        cluster.add(name)
    for i in range(blocks):
        cluster.orderer.append(proposer=cluster.names[0], timestamp=iso(T0),
                               txs=[make_tx(cluster.t.gateway, 10 * i + j).encode() for j in range(3)])
    cluster.follow()
    cluster.deliver()


class ForgetfulOrderer(MemoryOrderer):
    """An orderer that forgot every batch up to ``head`` (as etcd after compaction)."""

    def __init__(self, head: int) -> None:
        super().__init__()
        self._forgotten_head = head

    def read(self, after: int, *, wait: float = 0.0, limit: int = 64) -> list[Batch]:
        if after < self._forgotten_head:
            raise BatchesForgottenError("forgotten", after=after, head=self._forgotten_head)
        return []


def test_catch_up_re_executes_certified_blocks_to_the_same_headers(cluster: Cluster) -> None:
    """A node that missed the order fetches certified blocks from a peer, re-executes each to the same
    header, and ends with the same head, state and a final height carried by the certificates."""
    _certified_chain(cluster, 3)
    source = cluster.nodes[cluster.names[0]]
    assert source.final_height == 2
    late = cluster.add(cluster.names[3], orderer=ForgetfulOrderer(2))
    late.catch_up.run(until=2)
    assert [late.store.header(h) for h in range(3)] == [source.store.header(h) for h in range(3)]
    assert late.state_digest() == source.state_digest()
    assert late.final_height == 2
    assert late.store.tx_count() == 9


def test_follower_catches_up_when_the_orderer_forgot_the_batches(cluster: Cluster) -> None:
    """An orderer answering "forgotten up to head" (a typed error, not a message) sends the follower to
    its peers for the certified blocks up to that head."""
    _certified_chain(cluster, 2)
    late = cluster.add(cluster.names[3], orderer=ForgetfulOrderer(1))
    late.follower.step()
    assert late.store.height == 1
    assert late.store.head() == cluster.nodes[cluster.names[0]].store.head()


def test_certified_block_that_re_executes_differently_is_refused_as_divergence(cluster: Cluster) -> None:
    """A block whose certificate verifies but which does not re-execute to its header here is not
    stored: the node raises Diverged and records the divergence."""
    _certified_chain(cluster, 1)
    source = cluster.nodes[cluster.names[0]]
    real = source.store.block(0)
    assert real is not None
    fake_header = BlockHeader(**{**real.header.to_dict(), "flags_digest": "22" * 32})
    keys = [cluster.t.keys[n] for n in cluster.names[:3]]
    fake = Block(fake_header, real.transactions, real.codes, tuple(sign_header(fake_header, k) for k in keys))
    late = cluster.add(cluster.names[3])
    with pytest.raises(Diverged):
        late.adopt(fake)
    assert late.store.height == -1
    assert [d.their_hash for d in late.divergences] == [fake_header.hash]


def test_block_without_a_quorum_certificate_is_refused(cluster: Cluster) -> None:
    """A peer's block signed by fewer than a quorum of nodes is not adopted."""
    _certified_chain(cluster, 1)
    real = cluster.nodes[cluster.names[0]].store.block(0)
    assert real is not None
    thin = Block(real.header, real.transactions, real.codes, real.signatures[:2])
    late = cluster.add(cluster.names[3])
    with pytest.raises(PeerError):
        late.adopt(thin)
    assert late.store.height == -1
