"""SQLAlchemy 2.0 Core tables of one node's ledger (append-only by construction), its engines and migrations."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Connection, Engine

from ledger.errors import StoreError

metadata = MetaData()

#: One row a block; the header fields are stored as columns and re-hashed on
#: verification, so a changed column cannot hide behind a stored hash.
blocks = Table(
    "ledger_blocks",
    metadata,
    Column("height", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("version", Integer, nullable=False),
    Column("previous_hash", String(64), nullable=False),
    Column("tx_root", String(64), nullable=False),
    Column("flags_digest", String(64), nullable=False),
    Column("tx_count", Integer, nullable=False),
    Column("log_size", BigInteger, nullable=False),
    Column("log_root", String(64), nullable=False),
    Column("timestamp", String(40), nullable=False),
    Column("proposer", String(64), nullable=False),
)

#: One row a transaction; ``seq`` is its index in the RFC 9162 log of the chain.
transactions = Table(
    "ledger_transactions",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("tx_id", String(64), nullable=False, unique=True),
    Column("height", BigInteger, nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("type", String(64), nullable=False),
    Column("code", String(64), nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("body", LargeBinary, nullable=False),
)

#: Node signatures over block headers (a block's certificate).
signatures = Table(
    "ledger_signatures",
    metadata,
    Column("height", BigInteger, primary_key=True, autoincrement=False),
    Column("key_id", String(16), primary_key=True),
    Column("header_hash", String(64), nullable=False),
    Column("alg", String(16), nullable=False),
    Column("value", LargeBinary, nullable=False),
)

#: Signed checkpoints (C2SP tlog-checkpoint notes) this node issued or co-signed.
checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", String(64), nullable=False),
    Column("note", Text, nullable=False),
)

#: Write-once facts about the chain: the genesis document and its hash.
meta = Table(
    "ledger_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and file paths; pick the psycopg 3 driver."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return f"sqlite:///{Path(url).resolve()}"
    return url


def make_engine(url: str) -> Engine:
    """An engine with SQLite set to WAL (readers never block the writer).

    ``synchronous=NORMAL`` in WAL mode: a commit is written to the WAL file before COMMIT
    returns, so it survives the process being killed (``kill -9``: the data is in the
    operating system's page cache) and the database is never corrupted; the WAL is fsynced
    at each checkpoint, not at each commit.  Only a power loss or kernel crash can lose the
    newest commits of that machine — a node then catches up again from its peers, which
    hold every final block (a quorum signed it only after storing it).  ``FULL`` would add
    an fsync to every block, pool and signature commit.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def param_mark(conn: Connection | Engine) -> str:
    """The positional parameter marker of the connection's (or engine's) DB-API driver (sqlite3 ``?``, psycopg
    ``%s``)."""
    style = conn.dialect.paramstyle
    if style == "qmark":
        return "?"
    if style in ("format", "pyformat"):
        return "%s"
    raise StoreError(f"unsupported DB-API parameter style {style!r}")


def values_present(engine: Engine, table: str, column: str, values: Sequence[str], chunk: int = 500) -> set[str]:
    """Which of ``values`` the text ``column`` of ``table`` holds: ``SELECT … IN (…)`` of up to ``chunk`` values
    a query, on the DB-API connection and cursor themselves (SQLAlchemy's result wrapping cost more than the
    query: this runs for every submission and every block).  A driver error is raised as SQLAlchemy's
    :class:`~sqlalchemy.exc.OperationalError`, as a query through SQLAlchemy raises it."""
    mark = param_mark(engine)
    found: set[str] = set()
    raw = engine.raw_connection()
    sql = ""
    try:
        cur = raw.cursor()
        try:
            for i in range(0, len(values), chunk):
                part = values[i : i + chunk]
                sql = f"SELECT {column} FROM {table} WHERE {column} IN ({', '.join([mark] * len(part))})"
                cur.execute(sql, tuple(part))
                found.update(r[0] for r in cur.fetchall())
        finally:
            cur.close()
        raw.commit()  # ends the read transaction the driver may have begun
    except engine.dialect.loaded_dbapi.Error as exc:
        raw.invalidate()
        raise sa.exc.OperationalError(sql, None, exc) from exc
    finally:
        raw.close()
    return found
