"""The node's copies of the batches it built its newest blocks from, written in each block's commit.

The solo orderer's log is one file on one machine; a leader that lost it rebuilds the part its peers may
still need from these copies (:meth:`consortium_nodes.ordering.SoloOrderer.restore`): batches it had
built, and perhaps no peer had read yet, come back with the proposers' signatures, so every node builds
the same blocks from them.  This is the node's own record, not ledger data: only the newest
:data:`KEEP` are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from consortium_nodes.ordering import Batch
from ledger.store.schema import param_mark

#: batches kept (those of older blocks are dropped in the same commit)
KEEP = 1000

_meta = sa.MetaData()
copies_table = sa.Table(
    "node_batch_copies",
    _meta,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("body", sa.Text, nullable=False),
)


class BatchCopies:
    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine
        _meta.create_all(engine)

    @staticmethod
    def keep_in(conn: Connection, batch: Batch) -> None:
        """Inside the block's commit: keep ``batch``, dropping any copy numbered from it on (a log that was
        rebuilt) and those older than :data:`KEEP` batches.  Driver-level statements: this runs for
        every block."""
        mark = param_mark(conn)
        table = copies_table.name
        conn.exec_driver_sql(f"DELETE FROM {table} WHERE seq >= {mark} OR seq <= {mark}",
                             (batch.seq, batch.seq - KEEP))
        conn.exec_driver_sql(f"INSERT INTO {table} (seq, body) VALUES ({mark}, {mark})", (batch.seq, batch.to_json()))

    def after(self, seq: int) -> Sequence[Batch]:
        """The kept batches numbered above ``seq``, in order."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(copies_table.c.seq, copies_table.c.body).where(copies_table.c.seq > seq)
                .order_by(copies_table.c.seq)
            ).all()
        return [Batch.from_json(r.body, seq=int(r.seq)) for r in rows]
