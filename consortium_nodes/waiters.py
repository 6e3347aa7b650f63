"""Which transactions were stored since start, and the requests waiting for one to be stored."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ledger.core.block import Block

#: tx id → height entries kept for transactions stored since start (waiters look here, not in the store)
RECENT_TXS = 500_000


class StoredTxs:
    """tx id → height of recently stored transactions, and per-transaction waiters.

    Each waiter registers its own event, which only the block holding its transaction sets (many
    waiters cost nothing between blocks, and no query per block).  One lock guards both maps.
    """

    def __init__(self, *, keep: int = RECENT_TXS, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._keep = keep
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, int] = OrderedDict()
        self._waiters: dict[str, list[threading.Event]] = {}

    def stored(self, block: Block) -> None:
        """``block`` is stored: remember its transactions and wake their waiters."""
        h = block.height
        with self._lock:
            for tx in block.transactions:
                self._recent[tx.tx_id] = h
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)
            woken = [e for tx in block.transactions for e in self._waiters.get(tx.tx_id, ())] if self._waiters else []
        for e in woken:
            e.set()

    def height(self, tx_id: str) -> int | None:
        with self._lock:
            return self._recent.get(tx_id)

    def wait(self, tx_id: str, deadline: float) -> int | None:
        """The height of the block storing ``tx_id``, waiting until ``deadline`` (monotonic) for it."""
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(tx_id, []).append(event)
        try:
            # Looking again after registering closes the race with a block stored meanwhile.
            while (height := self.height(tx_id)) is None:
                left = deadline - self._monotonic()
                if left <= 0:
                    return None
                event.wait(left)
            return height
        finally:
            with self._lock:
                waiting = self._waiters.get(tx_id, [])
                if event in waiting:
                    waiting.remove(event)
                if not waiting:
                    self._waiters.pop(tx_id, None)
