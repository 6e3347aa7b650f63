"""Storage adapters: the SQLAlchemy ledger store (SQLite or PostgreSQL, Alembic migrations), the e-ticket SQL
projection and the personal-data store.
"""
