"""Alembic environment: runs on the connection handed over by ledger.store.ledger_store."""

from alembic import context

from ledger.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the programmatic path is supported
    raise RuntimeError("run migrations through ledger.store.ledger_store.migrate()")
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table="ledger_alembic_version",
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
