"""Block building from an ordered batch (the deterministic core lives in ``ledger.core.builder``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from consortium_nodes.errors import MalformedBatch
from consortium_nodes.ordering import Batch
from ledger.core.block import BlockHeader
from ledger.core.builder import Built, Checked, block_time
from ledger.core.builder import build_block as _build
from ledger.core.consortium import Consortium
from ledger.core.statemachine import StateMachine
from ledger.core.transaction import parse_time
from ledger.core.tree import CompactRange
from ledger.errors import MalformedTransaction

__all__ = ["FIRST_SKIPPED_TIME", "Built", "block_time", "build_block", "build_skipped"]

#: The time of a skipped batch's block when it is the first block of the chain (there is no earlier
#: block time to repeat); any fixed valid time would do, as long as every node uses the same one.
FIRST_SKIPPED_TIME = "1970-01-01T08:00:00.000+08:00"


def build_block(
    *,
    batch: Batch,
    previous: BlockHeader | None,
    log: CompactRange,
    consortium: Consortium,
    machine: StateMachine,
    seen: Callable[[Sequence[str]], set[str]],
    checked: Mapping[bytes, Checked] | None = None,
) -> Built:
    """Block ``batch.seq`` from the ordered batch; see :func:`ledger.core.builder.build_block`.

    Raises :class:`MalformedBatch` (before anything is applied to ``machine``) for a batch whose
    timestamp is not ISO 8601 with an offset: the caller builds :func:`build_skipped` instead.
    """
    try:
        parse_time(batch.timestamp, what="batch timestamp")
    except MalformedTransaction as exc:
        raise MalformedBatch(f"batch {batch.seq} from {batch.proposer!r}: {exc.message}") from exc
    return _build(raw_txs=batch.txs, proposer=batch.proposer, timestamp=batch.timestamp, previous=previous,
                  log=log, consortium=consortium, machine=machine, seen=seen, checked=checked)


def build_skipped(
    *, batch: Batch, previous: BlockHeader | None, log: CompactRange, consortium: Consortium, machine: StateMachine
) -> Built:
    """The block of a malformed batch: no transactions, the previous block's time (or
    :data:`FIRST_SKIPPED_TIME`), the batch's proposer.  A pure function of the batch and the chain,
    so every node builds the same block and heights stay equal to batch numbers."""
    timestamp = FIRST_SKIPPED_TIME if previous is None else previous.timestamp
    return _build(raw_txs=(), proposer=batch.proposer, timestamp=timestamp, previous=previous, log=log,
                  consortium=consortium, machine=machine, seen=lambda ids: set())
