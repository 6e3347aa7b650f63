"""The follower thread: read the order, turn each batch into the next block (or catch up from peers)."""

from __future__ import annotations

import logging
import threading

from consortium_nodes.catchup import CatchUp
from consortium_nodes.chain import Chain
from consortium_nodes.health import Health
from consortium_nodes.ordering import BatchesForgottenError, Orderer, OrderingError
from ledger.store.ledger_store import LedgerStore

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
            if self._health.halted:
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
