"""The ordering interface: a total order of transaction batches, supplied by an existing engine."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Batch:
    """Batch ``seq`` becomes block ``seq``; ``txs`` are canonical transaction bytes."""

    seq: int
    proposer: str
    timestamp: str
    txs: tuple[bytes, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "proposer": self.proposer,
                "timestamp": self.timestamp,
                "txs": [t.decode("utf-8") for t in self.txs],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Batch:
        d: dict[str, Any] = json.loads(text)
        return cls(
            seq=int(d["seq"]),
            proposer=str(d["proposer"]),
            timestamp=str(d["timestamp"]),
            txs=tuple(str(t).encode("utf-8") for t in d["txs"]),
        )


class OrderingError(Exception):
    """The ordering service cannot be reached or refused the operation."""


class BatchesForgottenError(OrderingError):
    """Batches after ``after`` were already forgotten by the engine; catch up from peers' blocks instead."""

    def __init__(self, message: str, *, after: int, head: int) -> None:
        super().__init__(message)
        self.after = after
        self.head = head


class Orderer(Protocol):
    """A total order of batches shared by all nodes.

    ``append`` assigns the next sequence number atomically (compare-and-set on
    the head: batch n+1 is written only if the head is n), so two nodes
    proposing at once get consecutive, distinct numbers.  ``read`` returns
    batches with ``seq > after`` in order, waiting up to ``wait`` seconds for
    the first one.  ``forget`` lets the engine drop batches up to ``upto``:
    nodes that fall further behind catch up from their peers' blocks.
    """

    kind: str

    def append(self, *, proposer: str, timestamp: str, txs: Sequence[bytes]) -> int: ...

    def read(self, after: int, *, wait: float = 0.0, limit: int = 64) -> list[Batch]: ...

    def head(self) -> int: ...

    def forget(self, upto: int) -> None: ...

    def close(self) -> None: ...
