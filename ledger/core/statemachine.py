"""The deterministic state-machine interface that business rules plug into."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ledger.core.block import VALID
from ledger.core.consortium import Consortium, Member
from ledger.core.transaction import Transaction


@dataclass(frozen=True)
class TxContext:
    """Everything a rule may look at besides the transaction and the state.

    Time comes from here (the block's timestamp) and from the transaction,
    never from the clock, so every node and every replay agrees.
    """

    height: int
    position: int
    block_time: datetime
    tx_id: str
    signer: Member
    consortium: Consortium


@dataclass(frozen=True)
class Outcome:
    """The result of applying one transaction: ``code`` is "valid" or a reason code."""

    code: str = VALID
    message: str = ""
    events: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.code == VALID


class StateMachine(Protocol):
    """Business rules run by every node on the ordered chain.

    ``apply`` must be deterministic and must leave the state unchanged when
    the outcome is not valid (the transaction then stays in its block with
    that code).  ``digest`` is a hash of the whole world state, equal on every
    node after the same blocks.
    """

    def admit(self, tx: Transaction, consortium: Consortium) -> None:
        """Stateless checks at submission (payload shape); raise a LedgerError to refuse."""

    def apply(self, tx: Transaction, ctx: TxContext) -> Outcome:
        """Apply ``tx`` to the state."""

    def digest(self) -> str:
        """Hex digest of the world state."""


class NullStateMachine:
    """Accepts every well-signed transaction; for a ledger without business rules."""

    def __init__(self) -> None:
        self._count = 0

    def admit(self, tx: Transaction, consortium: Consortium) -> None:
        return None

    def apply(self, tx: Transaction, ctx: TxContext) -> Outcome:
        self._count += 1
        return Outcome()

    def digest(self) -> str:
        return f"{self._count:064x}"
