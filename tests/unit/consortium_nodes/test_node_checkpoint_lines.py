"""Checkpoint lines of the state machine (the object map of ledger.eticket.heads) and of the membership
(ledger.core.membership_line): the coordinator writes its lines for the final height, and a witness co-signs only
lines its own machine and membership history give identically."""

from __future__ import annotations

from typing import Any

import pytest
from node_fakes import T0, Cluster, MemoryPeers

from consortium_nodes.node import Node
from ledger.core import checkpoint as cp
from ledger.core import membership_line
from ledger.core.builder import NullStateMachine
from ledger.core.encoding import iso
from ledger.errors import LedgerError
from ledger.store.ledger_store import LedgerStore
from ledger.testing import make_tx


class LineMachine(NullStateMachine):
    """A null machine with a checkpoint line (``salt`` makes one node disagree)."""

    def __init__(self, salt: str = "") -> None:
        super().__init__()
        self.salt = salt

    def checkpoint_extension(self, height: int) -> str:
        return f"test/objects {height} {self.digest()[-8:]}{self.salt}"


def _add(cluster: Cluster, name: str, machine: Any) -> Node:
    store = LedgerStore.open(f"sqlite:///{cluster.root / (name + '.db')}", consortium=cluster.t.consortium)
    node = Node(name=name, consortium=cluster.t.consortium, key=cluster.t.keys[name], store=store, machine=machine,
                orderer=cluster.orderer, peers=MemoryPeers(cluster, name), batch_max_wait=0.0,
                clock=lambda: cluster.now)
    cluster.nodes[name] = node
    node.chain.replay()
    return node


def test_witnesses_cosign_only_the_line_their_own_machine_gives(cluster: Cluster) -> None:
    """The checkpoint carries the coordinator's line for the final height; three nodes computing the same line
    co-sign it (a quorum), the node whose machine disagrees refuses with checkpoint_mismatch."""
    names = cluster.names
    for n in names[:3]:
        _add(cluster, n, LineMachine())
    _add(cluster, names[3], LineMachine(salt="x"))
    for i in range(2):
        cluster.orderer.append(proposer=names[0], timestamp=iso(T0), txs=[make_tx(cluster.t.gateway, i).encode()])
    cluster.follow()
    cluster.deliver()
    note = cluster.nodes[names[0]].make_checkpoint()
    verifiers = {m.name: m.public_key for m in cluster.t.consortium.nodes}
    c, signers = cp.verify(note, verifiers, quorum=cluster.t.consortium.quorum, origin=cluster.t.consortium.origin)
    final = cluster.nodes[names[0]].certificates.final_height
    members = membership_line.extension_line(final, [(0, 0, cluster.t.consortium)])  # no vote: the genesis only
    assert c.extensions == (cluster.nodes[names[0]].machine.checkpoint_extension(final),  # type: ignore[attr-defined]
                            members)
    assert set(signers) == set(names[:3])
    with pytest.raises(LedgerError) as caught:
        cluster.nodes[names[3]].cosign_checkpoint(note)
    assert caught.value.reason == "checkpoint_mismatch"


def test_a_node_without_lines_refuses_a_checkpoint_with_one(cluster: Cluster) -> None:
    """A witness whose machine has no checkpoint line cannot vouch for one: it refuses to co-sign."""
    a = _add(cluster, cluster.names[0], LineMachine())
    b = _add(cluster, cluster.names[1], NullStateMachine())
    cluster.orderer.append(proposer=a.name, timestamp=iso(T0), txs=[make_tx(cluster.t.gateway, 1).encode()])
    cluster.follow()
    tree = a.store.log()
    note = cp.sign(cp.Checkpoint(cluster.t.consortium.origin, tree.size, tree.root(), ("test/objects 0 x",)),
                   [(a.name, a.key)])
    with pytest.raises(LedgerError) as caught:
        b.cosign_checkpoint(note)
    assert caught.value.reason == "checkpoint_mismatch"


def test_witnesses_cosign_only_the_membership_line_they_compute(cluster: Cluster) -> None:
    """A checkpoint whose membership line counts one more applied change, or names another digest, is refused by
    every witness (checkpoint_mismatch), while the one the coordinator made is co-signed; a checkpoint of an older
    coordinator, with the object-map line only, is still co-signed."""
    names = cluster.names
    nodes = [_add(cluster, n, LineMachine()) for n in names]
    cluster.orderer.append(proposer=names[0], timestamp=iso(T0), txs=[make_tx(cluster.t.gateway, 1).encode()])
    cluster.follow()
    cluster.deliver()
    note = nodes[0].make_checkpoint()
    c = cp.Checkpoint.parse_body(cp.split_note(note)[0])
    [line] = [x for x in c.extensions if x.startswith(membership_line.EXTENSION)]
    height, version, digest = membership_line.parse_line([line]) or (-1, -1, b"")
    assert (height, version) == (nodes[0].certificates.final_height, 0)
    assert digest == membership_line.history_digest([(0, 0, cluster.t.consortium)])
    assert [s.name for s in cp.split_note(note)[1]] == list(names)  # every witness co-signed the line
    words = line.split(" ")
    for changed in (" ".join([*words[:2], "1", words[3]]),
                    " ".join([*words[:3], membership_line.extension_line(height, [(0, 0, cluster.t.consortium),
                                                                               (1, 1, cluster.t.consortium)])
                              .split(" ")[3]])):
        forged = cp.sign(cp.Checkpoint(c.origin, c.size, c.root, (c.extensions[0], changed)),
                         [(names[0], nodes[0].key)])
        with pytest.raises(LedgerError) as caught:
            nodes[2].cosign_checkpoint(forged)
        assert caught.value.reason == "checkpoint_mismatch"
    older = cp.sign(cp.Checkpoint(c.origin, c.size, c.root, (c.extensions[0],)), [(names[0], nodes[0].key)])
    assert len(cp.split_note(nodes[3].cosign_checkpoint(older))[1]) == 2


def test_exports_choose_a_checkpoint_with_the_lines_this_node_writes(cluster: Cluster) -> None:
    """A stored checkpoint of an older version (object-map line only) is not the one a provenance export takes
    when the node writes the membership line too: latest_with_extension with both words finds none (the export
    then makes one) until a checkpoint with both lines is stored, then that one."""
    nodes = [_add(cluster, n, LineMachine()) for n in cluster.names]
    cluster.orderer.append(proposer=nodes[0].name, timestamp=iso(T0), txs=[make_tx(cluster.t.gateway, 1).encode()])
    cluster.follow()
    cluster.deliver()
    checkpoints = nodes[0].checkpoints
    tree = nodes[0].store.log()
    older = cp.sign(cp.Checkpoint(cluster.t.consortium.origin, 1, tree.root(1), ("test/objects 0 x",)),
                    [(nodes[0].name, nodes[0].key)])
    nodes[0].store.add_checkpoint(1, tree.root(1).hex(), older)
    assert checkpoints.latest_with_extension() == older
    assert checkpoints.latest_with_extension("test/objects", membership_line.EXTENSION) is None
    cluster.orderer.append(proposer=nodes[0].name, timestamp=iso(T0), txs=[make_tx(cluster.t.gateway, 2).encode()])
    cluster.follow()
    cluster.deliver()
    note = nodes[0].make_checkpoint()
    assert cp.Checkpoint.parse_body(cp.split_note(note)[0]).size > 1
    assert checkpoints.latest_with_extension("test/objects", membership_line.EXTENSION) == note
