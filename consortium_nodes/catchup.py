"""Following the order (the follower thread) and catching up from peers: certified blocks, late signatures."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from consortium_nodes.chain import Chain
from consortium_nodes.errors import PeerError
from consortium_nodes.finality import Certificates
from consortium_nodes.ordering import BatchesForgottenError, Orderer, OrderingError
from consortium_nodes.peers import PeerLink
from consortium_nodes.queries import Health
from ledger.store.ledger_store import LedgerStore

log = logging.getLogger("consortium_nodes.node")

#: certified blocks asked from a peer at once
BLOCKS_PER_REQUEST = 20
#: seconds between the syncer's rounds
SYNC_TICK = 0.5
#: heights after the final one whose missing signatures are pulled in one round
PULL_WINDOW = 20
#: seconds a stored block waits for pushed signatures before the syncer pulls them (pushed
#: signatures normally arrive within milliseconds: a peer was down, or restarted and missed our pushes)
PULL_AFTER = 1.0
#: final batches the orderer keeps (nodes further behind catch up from peers' blocks) …
KEEP_BATCHES = 1000
#: … trimmed every this many seconds
FORGET_EVERY = 10.0
#: seconds between the coordinator's periodic checkpoints
CHECKPOINT_EVERY = 30.0


class CatchUp:
    """Fetches certified blocks from peers, re-executes and stores them (:meth:`Chain.adopt`)."""

    def __init__(self, *, peers: PeerLink, store: LedgerStore, chain: Chain, stop: threading.Event) -> None:
        self._peers = peers
        self._store = store
        self._chain = chain
        self._stop = stop

    def run(self, *, until: int) -> None:
        """Adopt blocks up to ``until`` from the first peer that has them; stop when none does."""
        while self._store.height < until and not self._stop.is_set():
            start = self._store.height + 1
            got = False
            for name in self._peers.urls:
                try:
                    blocks = self._peers.blocks(name, start, limit=min(BLOCKS_PER_REQUEST, until - start + 1))
                except PeerError:
                    continue
                for block in blocks:
                    if block.height != self._store.height + 1:
                        break
                    try:
                        self._chain.adopt(block)
                    except PeerError as exc:  # not certified (yet): another peer, or a later round
                        log.warning("node %s: block %d from %s: %s", self._chain.name, block.height, name, exc)
                        break
                    got = True
                if got:
                    break
            if not got:
                return


class Syncer:
    """Thread body: pull signatures we are missing, co-sign blocks whose time our clock has reached
    (``withheld``), trim the orderer, and (on the coordinator, the first node of the consortium) make
    periodic checkpoints."""

    def __init__(
        self, *, name: str, peers: PeerLink, certificates: Certificates, orderer: Orderer,
        checkpoint: Callable[[], None] | None, stop: threading.Event,
        monotonic: Callable[[], float] = time.monotonic, withheld: Callable[[], int] | None = None,
    ) -> None:
        self._withheld = withheld
        self._name = name
        self._peers = peers
        self._certificates = certificates
        self._orderer = orderer
        self._checkpoint = checkpoint
        self._stop = stop
        self._monotonic = monotonic
        self.keep_batches = KEEP_BATCHES
        self.checkpoint_every = CHECKPOINT_EVERY
        self.pull_after = PULL_AFTER

    def run(self) -> None:
        last_forget = last_checkpoint = self._monotonic()
        while not self._stop.wait(SYNC_TICK):
            if self._checkpoint is not None and self._monotonic() - last_checkpoint > self.checkpoint_every:
                last_checkpoint = self._monotonic()
                self._checkpoint()
            final = self._certificates.final_height
            if self._monotonic() - last_forget > FORGET_EVERY and final > self.keep_batches:
                try:
                    self._orderer.forget(final - self.keep_batches)
                except OrderingError as exc:
                    log.warning("node %s: forget failed: %s", self._name, exc)
                last_forget = self._monotonic()
            if self._withheld is not None:
                self._withheld()
            self.pull_missing()

    def pull_missing(self) -> None:
        """Ask every peer whose signature we lack for late heights (one round)."""
        for h in self._certificates.late(PULL_WINDOW, self.pull_after):
            for name in self._peers.urls:
                if self._certificates.has_signed(h, name):
                    continue
                try:
                    header_hash, sigs = self._peers.signatures(name, h)
                except PeerError:
                    continue
                self._certificates.accept([(h, header_hash, s) for s in sigs])


log = logging.getLogger("consortium_nodes.node")

#: seconds one read of the order waits for the next batch
READ_WAIT = 1.0
#: batches read at once
READ_LIMIT = 16
#: seconds between looks at a halted chain (the follower builds nothing until restarted)
HALTED_PAUSE = 1.0
#: seconds before the order is read again after it could not be
RETRY_PAUSE = 0.5


class Follower:
    """Follows the orderer from the store's head; batch n becomes block n on every node."""

    def __init__(
        self, *, name: str, orderer: Orderer, store: LedgerStore, chain: Chain, catch_up: CatchUp, health: Health,
        stop: threading.Event,
    ) -> None:
        self._name = name
        self._orderer = orderer
        self._store = store
        self._chain = chain
        self._catch_up = catch_up
        self._health = health
        self._stop = stop

    def run(self) -> None:
        while not self._stop.is_set():
            if self._health.halted or self._health.storage_fault:  # no block into storage that is not there
                self._stop.wait(HALTED_PAUSE)
                continue
            self.step()

    def step(self) -> None:
        """One read of the order and the blocks it gives."""
        after = self._store.height
        try:
            batches = self._orderer.read(after, wait=READ_WAIT, limit=READ_LIMIT)
        except BatchesForgottenError as exc:
            if exc.head > after:
                # The engine no longer holds what we miss (compacted): certified blocks come from peers.
                log.info("node %s: batches after %d were forgotten; catching up from peers", self._name, after)
                self._catch_up.run(until=exc.head)
                return
            log.warning("node %s: cannot read the order: %s", self._name, exc)
            self._stop.wait(RETRY_PAUSE)
            return
        except OrderingError as exc:
            log.warning("node %s: cannot read the order: %s", self._name, exc)
            self._stop.wait(RETRY_PAUSE)
            return
        for batch in batches:
            if batch.seq <= self._store.height:
                continue
            if batch.seq != self._store.height + 1:
                # The orderer no longer holds what we miss: fetch certified blocks from peers.
                self._catch_up.run(until=batch.seq - 1)
                return
            self._chain.apply_batch(batch)
