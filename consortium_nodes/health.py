"""What is wrong with a running node: a stopped thread, a halted chain, skipped batches (for ``/status``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from consortium_nodes.errors import ChainHalted

log = logging.getLogger("consortium_nodes.node")


@dataclass(frozen=True)
class SkippedBatch:
    """An ordered batch no block could be built from as it was (it became an empty block)."""

    seq: int
    proposer: str
    reason: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "proposer": self.proposer, "reason": self.reason, "message": self.message}


class Health:
    """The node's fault (one text, the newest) and its skipped batches; one lock guards both.

    The follower asks :attr:`halted` (a :class:`ChainHalted` error was recorded) instead of
    reading the fault's text.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._fault: str | None = None
        self._error: BaseException | None = None
        self._skipped = 0
        self._last_skipped: SkippedBatch | None = None

    @property
    def fault(self) -> str | None:
        with self._lock:
            return self._fault

    @property
    def halted(self) -> bool:
        """True once a failure that forbids building more blocks was recorded."""
        with self._lock:
            return isinstance(self._error, ChainHalted)

    def failed(self, message: str, error: BaseException) -> None:
        """Record a fault; a :class:`ChainHalted` ``error`` halts the chain (an earlier halt stays)."""
        with self._lock:
            self._fault = message
            if not isinstance(self._error, ChainHalted):
                self._error = error

    def skipped(self, batch: SkippedBatch) -> None:
        with self._lock:
            self._skipped += 1
            self._last_skipped = batch
        log.error("node %s: skipped malformed batch %d from %r: %s", self._name, batch.seq, batch.proposer,
                  batch.message)

    def skipped_batches(self) -> dict[str, Any]:
        """``{"count", "last"}`` of the batches skipped since this process started."""
        with self._lock:
            last = None if self._last_skipped is None else self._last_skipped.to_dict()
            return {"count": self._skipped, "last": last}

    def guard(self, name: str, fn: Callable[..., None]) -> Callable[..., None]:
        """``fn`` as a thread body whose death is recorded as the fault, not silent."""

        def run(*args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:
                message = f"{name} stopped: {exc.__class__.__name__}: {exc}"
                self.failed(message, exc)
                log.exception("node %s: %s", self._name, message)

        return run
