"""Block building from an ordered batch (the deterministic core lives in ``ledger.core.builder``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from consortium_nodes.ordering import Batch
from ledger.core.block import BlockHeader
from ledger.core.builder import Built, Checked, block_time
from ledger.core.builder import build_block as _build
from ledger.core.consortium import Consortium
from ledger.core.statemachine import StateMachine
from ledger.core.tree import CompactRange

__all__ = ["Built", "block_time", "build_block"]


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
    """Block ``batch.seq`` from the ordered batch; see :func:`ledger.core.builder.build_block`."""
    return _build(raw_txs=batch.txs, proposer=batch.proposer, timestamp=batch.timestamp, previous=previous,
                  log=log, consortium=consortium, machine=machine, seen=seen, checked=checked)
