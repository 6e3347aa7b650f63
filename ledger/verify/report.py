"""What a verification found: problems pinned to a block and transaction, and the report that lists them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing found wrong, pinned to a block (and transaction, when there is one)."""

    kind: str
    height: int
    message: str
    position: int | None = None
    tx_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "height": self.height,
            "position": self.position,
            "tx_id": self.tx_id,
            "message": self.message,
        }


@dataclass
class Report:
    """What ``verify_chain`` found; ``ok`` only when every check held."""

    blocks: int = 0
    transactions: int = 0
    head: str | None = None
    log_root: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return min(self.problems, key=rank) if self.problems else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "blocks": self.blocks,
            "transactions": self.transactions,
            "head": self.head,
            "log_root": self.log_root,
            "first_problem": None if self.first is None else self.first.to_dict(),
            "problems": [p.to_dict() for p in self.problems],
        }


#: Problems with a block's header itself; within a block they come before the
#: transaction problems they cause (a changed tx_count puts every row "out of place").
HEADER_KINDS = frozenset({"genesis", "missing_block", "link", "certificate", "header_hash"})


def rank(p: Problem) -> tuple[int, int, int]:
    """Order of problems: by block; in a block header problems, then transactions in
    order, then what follows from them (roots, flags digest, counts, log head)."""
    tier = 0 if p.kind in HEADER_KINDS else (1 if p.position is not None else 2)
    return (p.height, tier, -1 if p.position is None else p.position)

