"""Alembic migrations of the ledger tables."""
