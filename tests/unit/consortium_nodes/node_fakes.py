"""In-memory fakes of a node's orderer and peers, and a small consortium of real Nodes wired through them.

No HTTP and no processes: the nodes' threads are not started unless a test starts them; tests drive
the follower one step at a time (``Node.follower.step``) and deliver signatures by hand or through
:class:`MemoryPeers`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from consortium_nodes.node import Node
from consortium_nodes.ordering import Batch, BatchSigner, OrderingError
from ledger.core.batch import BatchSignature, batch_signer
from ledger.core.block import Block, HeaderSignature
from ledger.core.builder import NullStateMachine
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.store.ledger_store import LedgerStore
from ledger.testing import Throwaway

T0 = datetime(2026, 11, 23, 22, 15, tzinfo=CHINA_TZ)


class MemoryOrderer:
    """A total order of batches in a list (an :class:`~consortium_nodes.ordering.Orderer`).

    ``node_keys`` are the node members' keys by name: a batch appended without ``sign`` whose proposer
    names one of them is signed with its key, as that node's batcher would sign it (the tests' batches
    are the nodes' own unless a test says otherwise); any other is appended unsigned."""

    kind = "memory"

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._batches: list[Batch] = []
        self.forgotten = -1
        self.fail_appends = 0  # the next this many appends raise OrderingError
        self.lose_appends = 0  # the next this many appends answer a number but keep nothing (a lost log)
        self.node_keys: dict[str, PrivateKey] = {}

    def append(
        self, *, proposer: str, timestamp: str, txs: Sequence[bytes], sign: BatchSigner | None = None
    ) -> int:
        txs = tuple(txs)
        key = self.node_keys.get(proposer)
        if sign is None and key is not None:
            sign = batch_signer(key, proposer=proposer, timestamp=timestamp, txs=txs)
        with self._cond:
            if self.fail_appends > 0:
                self.fail_appends -= 1
                raise OrderingError("the memory orderer refuses this append")
            if self.lose_appends > 0:
                self.lose_appends -= 1
                return len(self._batches)
            seq = len(self._batches)
            self._batches.append(Batch(seq=seq, proposer=proposer, timestamp=timestamp, txs=txs,
                                       signature=None if sign is None else sign(seq)))
            self._cond.notify_all()
            return seq

    def append_json(self, body: Mapping[str, Any]) -> int:
        """Append a batch as a client of ``POST /v1/order/append`` would send it (no checks of its fields):
        with its ``signature`` if it has one, else signed as :meth:`append` signs."""
        given = BatchSignature.read(body.get("signature"))
        return self.append(proposer=str(body["proposer"]), timestamp=str(body["timestamp"]),
                           txs=[str(t).encode("utf-8") for t in body["txs"]],
                           sign=None if given is None else (lambda seq: given))

    def append_raw(self, data: str | bytes) -> int:
        """Append whatever bytes an engine could hold as the next batch, read as every node reads them."""
        with self._cond:
            seq = len(self._batches)
            self._batches.append(Batch.from_json(data, seq=seq))
            self._cond.notify_all()
            return seq

    def read(self, after: int, *, wait: float = 0.0, limit: int = 64) -> list[Batch]:
        deadline = time.monotonic() + wait
        with self._cond:
            while len(self._batches) - 1 <= after:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)
            return self._batches[after + 1 : after + 1 + limit]

    def head(self) -> int:
        return len(self._batches) - 1

    def forget(self, upto: int) -> None:
        self.forgotten = max(self.forgotten, upto)

    def close(self) -> None:
        return None


class MemoryPeers:
    """The other nodes of a :class:`Cluster`, called in process (a :class:`~consortium_nodes.peers.PeerLink`).

    ``down`` names peers that are unreachable; pushes to them are dropped (they would pull later)."""

    def __init__(self, cluster: Cluster, me: str) -> None:
        self._cluster = cluster
        self._me = me
        self.down: set[str] = set()
        self.pushed: list[tuple[str, list[dict[str, Any]]]] = []
        self.handed: list[tuple[str, list[tuple[str, bytes]]]] = []

    @property
    def urls(self) -> Mapping[str, str]:
        return {n: f"memory://{n}" for n in self._cluster.names if n != self._me}

    def _peer(self, name: str) -> Node:
        from consortium_nodes.errors import PeerError

        node = self._cluster.nodes.get(name)
        if name in self.down or node is None:
            raise PeerError(f"peer {name} unreachable")
        return node

    def stream_status(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        return None

    def hand_over(self, name: str, sender: str, rows: Sequence[tuple[str, bytes]]) -> bool:
        self.handed.append((name, list(rows)))
        node = self._cluster.nodes.get(name)
        if name in self.down or node is None:
            return False
        return node.take_handed([[tx_id, body.decode("utf-8")] for tx_id, body in rows]) is not None

    def push_signatures_to(self, name: str, sender: str, items: Sequence[dict[str, Any]]) -> bool:
        self.pushed.append((name, list(items)))
        node = self._cluster.nodes.get(name)
        if name in self.down or node is None:
            return False
        node.receive_signatures(items)
        return True

    def signatures(self, name: str, height: int) -> tuple[str, list[HeaderSignature]]:
        node = self._peer(name)
        header = node.store.header(height)
        if header is None:
            from consortium_nodes.errors import PeerError

            raise PeerError(f"peer {name} has no block {height}")
        return header.hash, list(node.store.signatures(height))

    def blocks(self, name: str, start: int, limit: int = 20) -> list[Block]:
        return list(self._peer(name).store.blocks(start, start + limit))

    def batch_copies(self, name: str, after: int, limit: int = 64) -> list[Any]:
        return list(self._peer(name).batch_copies.after(after))[:limit]

    def cosign(self, name: str, note: str) -> str:
        return self._peer(name).cosign_checkpoint(note)

    def share_checkpoint(self, note: str) -> None:
        for name in self.urls:
            node = self._cluster.nodes.get(name)
            if name not in self.down and node is not None:
                node.accept_checkpoint(note)


@dataclass
class Cluster:
    """Real :class:`Node` objects (SQLite stores, null state machine) sharing one :class:`MemoryOrderer`."""

    t: Throwaway
    root: Path
    orderer: MemoryOrderer = field(default_factory=MemoryOrderer)
    nodes: dict[str, Node] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    #: what every node's clock says
    now: datetime = T0

    def __post_init__(self) -> None:
        self.names = [m.name for m in self.t.consortium.nodes]
        self.orderer.node_keys = {n: self.t.keys[n] for n in self.names}

    def add(self, name: str, *, orderer: Any = None, replay: bool = True, election: Any = None,
            tick_interval: float = 0.0, proposer: Any = None) -> Node:
        """Create (not start) the node of member ``name``; its chain is replayed (empty at first) unless
        ``replay`` is false (``Node.start`` replays it); with ``election`` it runs the tick scheduler, with
        ``proposer`` (an election) it proposes only while it holds that key."""
        store = LedgerStore.open(f"sqlite:///{self.root / (name + '.db')}", consortium=self.t.consortium)
        node = Node(
            name=name, consortium=self.t.consortium, key=self.t.keys[name], store=store,
            machine=NullStateMachine(), orderer=orderer or self.orderer, peers=MemoryPeers(self, name),
            batch_max_wait=0.0, clock=lambda: self.now, election=election, tick_interval=tick_interval,
            proposer_election=proposer,
        )
        self.nodes[name] = node
        if replay:
            node.chain.replay()
        return node

    def peers_of(self, name: str) -> MemoryPeers:
        peers = self.nodes[name].peers
        assert isinstance(peers, MemoryPeers)
        return peers

    def close(self) -> None:
        for node in self.nodes.values():
            node.store.close()

    def deliver(self) -> int:
        """Push every node's queued signatures to its peers until none are left; how many were pushed."""
        total = 0
        while True:
            sent = sum(node.outbox.send(peer) for node in self.nodes.values() for peer in node.outbox.peers)
            if not sent:
                return total
            total += sent

    def follow(self) -> None:
        """Let every node's follower read and build what the orderer holds (one step each, no threads)."""
        for node in self.nodes.values():
            while node.store.height < self.orderer.head():
                before = node.store.height
                node.follower.step()
                if node.store.height == before:
                    break


class ElectionBoard:
    """An etcd-like election in memory: one key held by a lease that lapses ``ttl`` seconds (on the
    cluster's clock) after its holder's last campaign."""

    def __init__(self, cluster: Cluster, ttl: float = 3.0) -> None:
        self.cluster = cluster
        self.ttl = ttl
        self.holder: str | None = None
        self.expires: datetime = cluster.now

    def election(self, name: str) -> MemoryElection:
        return MemoryElection(self, name)


class MemoryElection:
    """One node's view of an :class:`ElectionBoard` (a :class:`~consortium_nodes.scheduler.Election`);
    ``dead`` makes it stop campaigning, as a killed node does."""

    kind = "memory"

    def __init__(self, board: ElectionBoard, name: str) -> None:
        self.board = board
        self.name = name
        self.ttl = board.ttl
        self.dead = False

    def campaign(self) -> bool:
        b, now = self.board, self.board.cluster.now
        if self.dead:
            return False
        if b.holder is None or b.expires <= now:
            b.holder = self.name
        if b.holder == self.name:
            b.expires = now + timedelta(seconds=b.ttl)
            return True
        return False

    @property
    def holder(self) -> str | None:
        """Who holds the key (lapsed: nobody), as :class:`~consortium_nodes.scheduler.EtcdElection` says."""
        b = self.board
        return b.holder if b.holder is not None and b.expires > b.cluster.now else None

    def resign(self) -> None:
        if self.board.holder == self.name:
            self.board.holder = None


def signed_body(key: PrivateKey, *, proposer: str, seq: int, timestamp: str, txs: Sequence[str]) -> dict[str, Any]:
    """A ``POST /v1/order/append`` body as a node's batcher sends it: signed by ``key`` for ``seq``."""
    sig = batch_signer(key, proposer=proposer, timestamp=timestamp, txs=[t.encode("utf-8") for t in txs])(seq)
    return {"proposer": proposer, "timestamp": timestamp, "txs": list(txs), "seq": seq, "signature": sig.to_dict()}
