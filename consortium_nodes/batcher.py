"""The node's transaction pool and its batcher thread (pool → orderer)."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from consortium_nodes.ordering import Orderer, OrderingError
from consortium_nodes.pool import DurablePool
from ledger.core.builder import Checked
from ledger.core.times import iso

log = logging.getLogger("consortium_nodes.node")

#: seconds the batcher sleeps on an empty pool before it looks at the stop flag again
IDLE_WAIT = 0.5
#: seconds the batcher waits after the orderer refused a batch before it proposes again
RETRY_PAUSE = 0.2
#: in-flight marks (ordered, not yet in a block) kept before the old ones are forgotten …
MAX_INFLIGHT = 100_000
#: … which are those older than this many seconds (they are on the chain by then)
INFLIGHT_TTL = 60.0
#: admission results kept for transactions never built here (e.g. a peer's copy came first) …
MAX_CHECKED = 200_000
#: … of which this many of the oldest are forgotten at once
FORGET_CHECKED = 100_000


class TxPool:
    """Accepted transactions waiting to be ordered, and what the node remembers about them.

    One condition guards everything: the pool (tx id → canonical bytes, oldest first), the ids
    also in the durable pool, the in-flight ids (ordered, not yet in a block) and the admission
    results the block builder reuses (bytes → :class:`Checked`).
    """

    def __init__(self, durable: DurablePool) -> None:
        self._durable = durable
        self._cond = threading.Condition()
        self._pool: OrderedDict[str, bytes] = OrderedDict()
        self._since: float | None = None  # when the oldest transaction in the pool arrived
        #: ids written to the durable pool and not yet removed (they go with their block's commit)
        self._durable_ids: set[str] = set()
        self._checked: dict[bytes, Checked] = {}
        self._inflight: dict[str, float] = {}

    def restore(self) -> None:
        """Put back what the durable pool holds (accepted before a restart, never stored in a block)."""
        rows = self._durable.load()
        with self._cond:
            for tx_id, body in rows:
                self._pool[tx_id] = body
                self._durable_ids.add(tx_id)

    def __len__(self) -> int:
        with self._cond:
            return len(self._pool)

    def persist(self, rows: Sequence[tuple[str, bytes]]) -> None:
        """Write accepted transactions to the durable pool (before the submitter gets its answer)."""
        self._durable.add(rows)
        with self._cond:
            self._durable_ids.update(tx_id for tx_id, _ in rows)

    def add(self, checked: Iterable[Checked]) -> set[str]:
        """Pool the transactions not pooled or in flight yet; returns the ids that were already known."""
        known: set[str] = set()
        fresh: list[tuple[str, bytes]] = []
        with self._cond:
            for c in checked:
                tx_id = c.tx.tx_id
                if tx_id in self._pool or tx_id in self._inflight:
                    known.add(tx_id)
                    continue
                body = c.tx.encode()
                fresh.append((tx_id, body))
                self._checked[body] = c
            if fresh and not self._pool:
                self._since = time.monotonic()
            for tx_id, body in fresh:
                self._pool[tx_id] = body
            if fresh:
                self._cond.notify()
        return known

    def knows(self, tx_id: str) -> bool:
        """True while ``tx_id`` waits in the pool or is ordered but not yet in a block."""
        with self._cond:
            return tx_id in self._pool or tx_id in self._inflight

    def take(self, max_txs: int, max_wait: float, stop: threading.Event) -> list[tuple[str, bytes]]:
        """The next batch: wait until the oldest pooled transaction has waited ``max_wait`` or
        ``max_txs`` are pooled (new submissions do not cut the wait short, so blocks stay few and large
        under load).  Empty when the pool stayed empty for :data:`IDLE_WAIT` or on stop."""
        with self._cond:
            if not self._pool:
                self._cond.wait(IDLE_WAIT)
                return []
            since = self._since if self._since is not None else time.monotonic()
            while len(self._pool) < max_txs and not stop.is_set():
                left = since + max_wait - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            take: list[tuple[str, bytes]] = []
            while self._pool and len(take) < max_txs:
                take.append(self._pool.popitem(last=False))
            self._since = time.monotonic() if self._pool else None
            return take

    def ordered(self, take: Sequence[tuple[str, bytes]]) -> None:
        with self._cond:
            now = time.monotonic()
            for tx_id, _ in take:
                self._inflight[tx_id] = now

    def put_back(self, take: Sequence[tuple[str, bytes]], max_wait: float) -> None:
        """Return a batch the orderer refused to the front of the pool, due again at once."""
        with self._cond:
            for tx_id, body in reversed(take):
                self._pool[tx_id] = body
                self._pool.move_to_end(tx_id, last=False)
            self._since = time.monotonic() - max_wait

    def prune(self) -> None:
        """Forget old in-flight marks and admission results once there are too many."""
        with self._cond:
            if len(self._inflight) > MAX_INFLIGHT:
                cutoff = time.monotonic() - INFLIGHT_TTL
                self._inflight = {k: v for k, v in self._inflight.items() if v > cutoff}
            if len(self._checked) > MAX_CHECKED:
                for body in list(itertools.islice(self._checked, FORGET_CHECKED)):
                    self._checked.pop(body, None)

    def checked_for(self, raw_txs: Iterable[bytes]) -> dict[bytes, Checked]:
        """The admission results this node holds for ``raw_txs`` (a copy the builder may read freely)."""
        with self._cond:
            return {raw: c for raw in raw_txs if (c := self._checked.get(raw)) is not None}

    def durable_in(self, tx_ids: Iterable[str]) -> list[str]:
        """Those of ``tx_ids`` that are in the durable pool (their rows go in the block's commit)."""
        with self._cond:
            return [tx_id for tx_id in tx_ids if tx_id in self._durable_ids]

    def stored(self, durable_ids: Iterable[str]) -> None:
        """The durable rows of ``durable_ids`` went with their block's commit."""
        with self._cond:
            self._durable_ids.difference_update(durable_ids)

    def built(self, raw_txs: Iterable[bytes], tx_ids: Iterable[str]) -> None:
        """A block from a batch of ``raw_txs`` holding ``tx_ids`` is stored: forget them here."""
        with self._cond:
            for raw in raw_txs:
                self._checked.pop(raw, None)
            for tx_id in tx_ids:
                self._inflight.pop(tx_id, None)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class Batcher:
    """The thread body that proposes pooled transactions to the orderer as batches."""

    def __init__(
        self, *, name: str, pool: TxPool, orderer: Orderer, clock: Callable[[], datetime], max_txs: int,
        max_wait: float, stop: threading.Event,
    ) -> None:
        self._name = name
        self._pool = pool
        self._orderer = orderer
        self._clock = clock
        self.max_txs = max_txs
        self.max_wait = max_wait
        self._stop = stop

    def run(self) -> None:
        while not self._stop.is_set():
            self.step()

    def step(self) -> int:
        """Propose one batch (after waiting for one as :meth:`TxPool.take` does); how many were ordered."""
        take = self._pool.take(self.max_txs, self.max_wait, self._stop)
        if not take:
            return 0
        try:
            self._orderer.append(proposer=self._name, timestamp=iso(self._clock()), txs=[b for _, b in take])
            # The durable pool rows go in the commit of the block that holds them.
            self._pool.ordered(take)
        except OrderingError as exc:
            log.warning("node %s: ordering failed, will retry: %s", self._name, exc)
            self._pool.put_back(take, self.max_wait)
            self._stop.wait(RETRY_PAUSE)
            return 0
        finally:
            self._pool.prune()
        return len(take)
