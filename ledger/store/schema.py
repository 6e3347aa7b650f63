"""SQLAlchemy 2.0 Core tables of one node's ledger (append-only by construction)."""

from __future__ import annotations

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
