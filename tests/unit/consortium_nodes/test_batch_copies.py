"""The node's copies of the batches of its newest blocks (consortium_nodes.batch_copies)."""

from __future__ import annotations

import sqlalchemy as sa

from consortium_nodes import batch_copies
from consortium_nodes.batch_copies import BatchCopies
from consortium_nodes.ordering import Batch

T = "2026-12-04T10:00:00.000+08:00"


def _batch(seq: int, proposer: str = "chengguan") -> Batch:
    return Batch(seq=seq, proposer=proposer, timestamp=T, txs=(f'{{"n":{seq}}}'.encode(),))


def _keep(engine: sa.engine.Engine, batch: Batch) -> None:
    with engine.begin() as conn:
        BatchCopies.keep_in(conn, batch)


def test_keeps_batches_in_order_and_reads_them_back(tmp_path) -> None:
    """Each kept batch reads back whole, in order, from the number asked for on."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'n.db'}")
    copies = BatchCopies(engine=engine)
    for seq in range(4):
        _keep(engine, _batch(seq))
    assert [b.seq for b in copies.after(0)] == [1, 2, 3]
    assert copies.after(-1)[0] == _batch(0)


def test_a_batch_kept_again_drops_the_later_copies(tmp_path) -> None:
    """Keeping batch n again (the order log was rebuilt from n on) drops every copy numbered n or later."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'n.db'}")
    copies = BatchCopies(engine=engine)
    for seq in range(5):
        _keep(engine, _batch(seq))
    _keep(engine, _batch(2, proposer="zhujian"))
    assert [(b.seq, b.proposer) for b in copies.after(-1)] == [
        (0, "chengguan"), (1, "chengguan"), (2, "zhujian"),
    ]


def test_only_the_newest_keep_batches_stay(tmp_path, monkeypatch) -> None:
    """Copies older than KEEP batches go in the same commit as the new one."""
    monkeypatch.setattr(batch_copies, "KEEP", 3)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'n.db'}")
    copies = BatchCopies(engine=engine)
    for seq in range(10):
        _keep(engine, _batch(seq))
    assert [b.seq for b in copies.after(-1)] == [7, 8, 9]
