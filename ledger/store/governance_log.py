"""The chain's membership history read from a store: its governance transactions replayed over the genesis.

Verification and the audit judge each block's certificate and signatures under the membership in force at its
height (:class:`~ledger.core.membership.MembershipHistory`); this reads the few ``governance.*`` rows (by the
stored type column) and hands them to :func:`ledger.core.governed.history_of`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

import sqlalchemy as sa

from ledger.core import checkpoint as cp
from ledger.core.consortium import Consortium
from ledger.core.governance import PROPOSE, VOTE
from ledger.core.governed import history_of
from ledger.core.membership import MembershipHistory
from ledger.core.transaction import Transaction
from ledger.errors import LedgerError
from ledger.store import schema
from ledger.store.ledger_store import LedgerStore


def governance_rows(store: LedgerStore) -> dict[int, list[tuple[Transaction, str]]]:
    """Height → the governance transactions of that block with their stored codes, in log order (an
    undecodable row is left out: verification reports it)."""
    tx = schema.transactions
    out: dict[int, list[tuple[Transaction, str]]] = {}
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(tx.c.height, tx.c.code, tx.c.body).where(tx.c.type.in_((PROPOSE, VOTE)))
                            .order_by(tx.c.seq)).all()
    for height, code, body in rows:
        try:
            out.setdefault(int(height), []).append((Transaction.decode(bytes(body)), str(code)))
        except LedgerError:
            continue
    return out


def store_history(store: LedgerStore, genesis: Consortium) -> MembershipHistory:
    """The membership history of the chain ``store`` holds, up to its head."""
    rows = governance_rows(store)
    if not rows:
        return MembershipHistory.of(genesis)
    head = store.height

    def blocks() -> Iterator[tuple[int, list[tuple[Transaction, str]]]]:
        for h in range(min(rows), head + 1):
            yield h, rows.get(h, [])

    return history_of(genesis, blocks())


def checkpoint_members(history: MembershipHistory, sizes: Sequence[int], note: str) -> Consortium:
    """The membership a checkpoint note is judged under: the one in force at the block whose log it covers (the
    first block with at least its size; ``sizes`` are the blocks' log sizes by height), the newest for a note
    that cannot be read or covers more than the chain (verification then says what is wrong)."""
    try:
        size = cp.Checkpoint.parse_body(cp.split_note(note)[0]).size
    except LedgerError:
        return history.current.consortium
    i = bisect.bisect_left(sizes, size)
    return history.current.consortium if i >= len(sizes) else history.at(i)


def member_names(history: MembershipHistory) -> dict[str, str]:
    """Every key id the chain ever had in force, to its member's name (exports name signers under any era)."""
    return {m.key_id: m.name for e in history.eras for m in e.consortium.members}
