"""Re-run a stored chain through the business rules from genesis and report the first difference."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ledger.core.block import Block, BlockHeader
from ledger.core.builder import rebuild
from ledger.core.consortium import Consortium
from ledger.core.statemachine import StateMachine
from ledger.core.tree import CompactRange
from ledger.store.ledger_store import LedgerStore


@dataclass(frozen=True)
class ReplayProblem:
    """The first block whose re-execution differs from what is stored."""

    height: int
    message: str
    position: int | None = None
    tx_id: str | None = None


def replay(
    store: LedgerStore,
    consortium: Consortium,
    machine: StateMachine,
    *,
    on_block: Callable[[Block], None] | None = None,
) -> ReplayProblem | None:
    """Re-run every stored block through ``machine`` from genesis; stop at the first difference.

    A difference means the stored header, transactions or validation codes are
    not what the rules give: the database was changed, or this node diverged.
    """
    previous: BlockHeader | None = None
    log = CompactRange()
    for h in range(store.height + 1):
        block = store.block(h)
        if block is None:
            return ReplayProblem(h, f"block {h} is missing")
        built = rebuild(block, previous, log, consortium, machine)
        if built.block.transactions != block.transactions:
            return ReplayProblem(h, f"block {h} holds transactions the rules drop (duplicates or undecodable)")
        for i, (mine, stored) in enumerate(zip(built.block.codes, block.codes, strict=True)):
            if mine != stored:
                return ReplayProblem(h, f"block {h}: transaction {i} re-executes to {mine!r}, stored {stored!r}",
                                     position=i, tx_id=block.transactions[i].tx_id)
        if built.block.header != block.header:
            return ReplayProblem(h, f"block {h} does not re-execute to its stored header")
        if on_block is not None:
            on_block(block)
        previous, log = block.header, built.log
    return None
