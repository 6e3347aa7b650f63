"""The node's durable admission pool: an accepted transaction survives a crash until it is ordered."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

_meta = sa.MetaData()
pool_table = sa.Table(
    "node_pool",
    _meta,
    sa.Column("tx_id", sa.String(64), primary_key=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
)


class DurablePool:
    """Rows are written before a submission is acknowledged and removed once ordered.

    This is the node's own work queue, not ledger data: deleting from it is fine.
    """

    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine
        _meta.create_all(engine)

    def load(self) -> list[tuple[str, bytes]]:
        with self._engine.connect() as conn:
            return [(r.tx_id, bytes(r.body)) for r in conn.execute(sa.select(pool_table))]

    def add(self, items: Sequence[tuple[str, bytes]]) -> None:
        if not items:
            return
        with self._engine.begin() as conn:
            have = set(
                conn.execute(
                    sa.select(pool_table.c.tx_id).where(pool_table.c.tx_id.in_([i for i, _ in items]))
                ).scalars()
            )
            rows = [{"tx_id": i, "body": b} for i, b in items if i not in have]
            if rows:
                conn.execute(pool_table.insert(), rows)

    def remove(self, tx_ids: Sequence[str]) -> None:
        if not tx_ids:
            return
        with self._engine.begin() as conn:
            for i in range(0, len(tx_ids), 500):
                conn.execute(pool_table.delete().where(pool_table.c.tx_id.in_(list(tx_ids[i : i + 500]))))
