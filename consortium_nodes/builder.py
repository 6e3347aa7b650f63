"""Block building from an ordered batch (the deterministic core lives in ``ledger.replay``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ledger.block import BlockHeader
from ledger.consortium import Consortium
from ledger.replay import Built, Checked, block_time
from ledger.replay import build_block as _build
from ledger.statemachine import StateMachine
from ledger.tree import CompactRange

from consortium_nodes.ordering import Batch

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
    """Block ``batch.seq`` from the ordered batch; see :func:`ledger.replay.build_block`."""
    return _build(raw_txs=batch.txs, proposer=batch.proposer, timestamp=batch.timestamp, previous=previous,
                  log=log, consortium=consortium, machine=machine, seen=seen, checked=checked)
