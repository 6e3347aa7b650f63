"""The ordering interface: a total order of transaction batches, supplied by an existing engine."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from consortium_nodes.errors import NodeError


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
    def from_json(cls, text: str | bytes, *, seq: int | None = None) -> Batch:
        """The batch in the engine's bytes; ``seq`` is the engine's own number for it (an etcd key's).

        Whatever else the bytes hold, every node reads the same batch from them: a field of the wrong
        type becomes empty (no proposer, no timestamp, no transactions; a transaction that is not a
        string is left out), and the block builder turns such a batch into the same empty block on
        every node.  Only bytes that say nowhere which batch they are raise :class:`MalformedOrder`.
        """
        try:
            d: Any = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            d = None
        if not isinstance(d, dict):
            d = {}
        number = d.get("seq") if seq is None else seq
        if type(number) is not int or number < 0:
            raise MalformedOrder(f"an ordered batch without a sequence number: {text[:80]!r}")
        proposer, timestamp, txs = d.get("proposer"), d.get("timestamp"), d.get("txs")
        return cls(
            seq=number,
            proposer=proposer if isinstance(proposer, str) else "",
            timestamp=timestamp if isinstance(timestamp, str) else "",
            txs=tuple(t.encode("utf-8") for t in txs if isinstance(t, str)) if isinstance(txs, list) else (),
        )


class OrderingError(NodeError):
    """The ordering service cannot be reached or refused the operation."""

    reason = "ordering_error"


class MalformedOrder(OrderingError):
    """The ordering engine holds bytes that are not a batch at all (not even its number can be read)."""

    reason = "malformed_order"


class BatchesForgottenError(OrderingError):
    """Batches after ``after`` were already forgotten by the engine; catch up from peers' blocks instead."""

    def __init__(self, message: str, *, after: int, head: int) -> None:
        super().__init__(message)
        self.after = after
        self.head = head


def seq_of_key(key: bytes | str) -> int | None:
    """The batch number at the end of an engine key such as ``<prefix>/batch/000000000042``, if any."""
    text = key.decode("utf-8", errors="replace") if isinstance(key, bytes) else key
    tail = text.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


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
