"""One proposer at a time: the node holding an etcd lease proposes the batches, the others hand it theirs.

With etcd ordering every node may append a batch: it claims the next number with a compare-and-set on the
head key (:meth:`consortium_nodes.etcd_orderer.EtcdOrderer.append`).  When several nodes propose at once
their tries overlap and all but one lose the race; every lost try is a Raft proposal carrying the whole batch.
Across hosts an append takes tens of milliseconds, and measured with four nodes on links of 10 ms, 73 % of
etcd's transactions were lost races (docs/BENCHMARKS.md).

So the node that holds the ``proposer`` election key (an etcd lease, as the scheduler's) proposes, and the
others hand their pooled transactions to it (``POST /v1/pool/forward``): one writer, no race.  What this
changes nothing of: every node still checks every batch and every transaction, and a node never depends on
the proposer for its own clients' transactions.  It hands a transaction over once; if the transaction is in
no block here :data:`~consortium_nodes.pool.REPROPOSE_AFTER` seconds later (the proposer died, lost it, or
kept it out), the node proposes it itself by compare-and-set, as without a proposer
(:meth:`~consortium_nodes.pool.TxPool.due_again`).  A hand-over that fails (the proposer is unreachable or
refuses) is proposed by the node itself at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger("consortium_nodes.proposer")

#: seconds between the lease's campaigns (a third of its TTL, at most)
CAMPAIGN_EVERY = 1.0
#: seconds a node proposes its batches itself after a hand-over failed (a proposer cut off is not waited for
#: batch after batch, until its lease lapses and another node takes the key)
PAUSE_AFTER_FAILURE = 3.0


class NamedElection(Protocol):
    """An election that also says who holds the key (:class:`~consortium_nodes.scheduler.EtcdElection`)."""

    kind: str
    #: the name of the node holding the key at the last campaign (None: nobody, or unknown)
    holder: str | None

    def campaign(self) -> bool: ...

    def resign(self) -> None: ...


class HandOver(Protocol):
    """Sends pooled ``(tx_id, canonical bytes)`` rows to a peer node's pool; True when it took them."""

    def __call__(self, name: str, rows: Sequence[tuple[str, bytes]]) -> bool: ...


class ProposerLease:
    """Campaigns for the ``proposer`` key and hands batches to whoever holds it."""

    def __init__(self, *, name: str, election: NamedElection, hand_over: HandOver, stop: threading.Event,
                 every: float = CAMPAIGN_EVERY) -> None:
        self._name = name
        self._election = election
        self._send = hand_over
        self._stop = stop
        self._every = every
        self._lock = threading.Lock()
        self._leading = False
        self._holder: str | None = None
        self._failed_at = -1e9  # monotonic time of the last failed hand-over
        self.handed = 0  # transactions handed over to the proposer since this process started
        self.refused = 0  # transactions a hand-over failed for (proposed here instead)
        self.taken = 0  # transactions other nodes handed to this node

    def run(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self._every)
        self._election.resign()

    def step(self) -> bool:
        """One campaign; True while this node is the proposer."""
        leading = self._election.campaign()
        with self._lock:
            self._leading = leading
            self._holder = self._name if leading else self._election.holder
        return leading

    @property
    def proposer(self) -> str | None:
        """The proposer of the moment as last seen (None: unknown)."""
        with self._lock:
            return self._holder

    def elsewhere(self) -> bool:
        """True while another node is the proposer and this node hands its batches to it (not within
        :data:`PAUSE_AFTER_FAILURE` seconds of a failed hand-over)."""
        with self._lock:
            return self._target() is not None

    def _target(self) -> str | None:
        if self._leading or self._holder is None or self._holder == self._name:
            return None
        if time.monotonic() - self._failed_at < PAUSE_AFTER_FAILURE:
            return None
        return self._holder

    def hand_over(self, rows: Sequence[tuple[str, bytes]]) -> bool:
        """Hand ``rows`` to the proposer if it is another node; False when this node is to propose them
        (it leads, nobody does, or the hand-over failed)."""
        with self._lock:
            target = self._target()
        if target is None:
            return False
        t0 = time.monotonic()
        ok = self._send(target, rows)
        with self._lock:
            if ok:
                self.handed += len(rows)
            else:
                self.refused += len(rows)
                self._failed_at = time.monotonic()
        if not ok:
            log.warning("node %s: proposer %s did not take %d transactions (%.2f s): proposing them here",
                        self._name, target, len(rows), time.monotonic() - t0)
        return ok

    def took(self, n: int) -> None:
        with self._lock:
            self.taken += n

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"proposer": self._holder, "leading": self._leading, "handed": self.handed,
                    "refused": self.refused, "taken": self.taken}


__all__ = [
    "CAMPAIGN_EVERY", "PAUSE_AFTER_FAILURE", "HandOver", "NamedElection", "ProposerLease", "rows_body", "rows_of",
]


def rows_of(items: Any, limit: int) -> list[tuple[str, bytes]]:
    """The ``[[tx_id, text], ...]`` of a hand-over body as pool rows (at most ``limit``); anything else in it is
    left out (the body comes from an authenticated node member, and every node checks every transaction of
    every batch anyway: a wrong row costs only its own place in the proposer's pool)."""
    rows: list[tuple[str, bytes]] = []
    if not isinstance(items, list):
        return rows
    for item in items[:limit]:
        if (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and len(item[0]) == 64
                and isinstance(item[1], str)):
            rows.append((item[0], item[1].encode("utf-8")))
    return rows


def rows_body(sender: str, rows: Sequence[tuple[str, bytes]]) -> dict[str, Any]:
    return {"from": sender, "txs": [[tx_id, body.decode("utf-8")] for tx_id, body in rows]}

