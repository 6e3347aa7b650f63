"""The node's durable admission pool: an accepted transaction survives a crash until it is ordered."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger.store.schema import param_mark

_meta = sa.MetaData()
pool_table = sa.Table(
    "node_pool",
    _meta,
    sa.Column("tx_id", sa.String(64), primary_key=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
)


class DurablePool:
    """Rows are written before a submission is acknowledged and removed in the same database
    transaction that stores the block holding them (so a crash in between re-proposes them at
    worst; the block builder drops what the chain already holds).

    This is the node's own work queue, not ledger data: deleting from it is fine.
    """

    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine
        _meta.create_all(engine)
        self._dialect = engine.dialect.name

    def load(self) -> list[tuple[str, bytes]]:
        with self._engine.connect() as conn:
            return [(r.tx_id, bytes(r.body)) for r in conn.execute(sa.select(pool_table))]

    def add(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Insert the rows not already there: one statement, one commit."""
        if not items:
            return
        with self._engine.begin() as conn:
            if self._dialect in ("sqlite", "postgresql"):
                # One driver-level executemany of plain tuples (no per-row bind processing).
                mark = param_mark(conn)
                sqlite = self._dialect == "sqlite"
                verb, tail = ("INSERT OR IGNORE", "") if sqlite else ("INSERT", " ON CONFLICT DO NOTHING")
                conn.exec_driver_sql(
                    f"{verb} INTO {pool_table.name} (tx_id, body) VALUES ({mark}, {mark}){tail}",
                    [(i, b) for i, b in items],
                )
                return
            have = set(
                conn.execute(
                    sa.select(pool_table.c.tx_id).where(pool_table.c.tx_id.in_([i for i, _ in items]))
                ).scalars()
            )
            fresh = [{"tx_id": i, "body": b} for i, b in items if i not in have]
            if fresh:
                conn.execute(pool_table.insert(), fresh)

    @staticmethod
    def remove_in(conn: Connection, tx_ids: Sequence[str]) -> None:
        """Delete ``tx_ids`` inside the caller's database transaction (e.g. the block's commit)."""
        mark = param_mark(conn)
        for i in range(0, len(tx_ids), 500):
            chunk = tuple(tx_ids[i : i + 500])
            conn.exec_driver_sql(
                f"DELETE FROM {pool_table.name} WHERE tx_id IN ({', '.join([mark] * len(chunk))})", chunk
            )
