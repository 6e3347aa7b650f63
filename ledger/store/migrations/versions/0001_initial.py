"""Initial ledger schema: blocks, transactions, signatures, checkpoints, meta.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_blocks",
        sa.Column("height", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=False),
        sa.Column("tx_root", sa.String(64), nullable=False),
        sa.Column("flags_digest", sa.String(64), nullable=False),
        sa.Column("tx_count", sa.Integer, nullable=False),
        sa.Column("log_size", sa.BigInteger, nullable=False),
        sa.Column("log_root", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.String(40), nullable=False),
        sa.Column("proposer", sa.String(64), nullable=False),
    )
    op.create_table(
        "ledger_transactions",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("tx_id", sa.String(64), nullable=False, unique=True),
        sa.Column("height", sa.BigInteger, nullable=False, index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "ledger_signatures",
        sa.Column("height", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("key_id", sa.String(16), primary_key=True),
        sa.Column("header_hash", sa.String(64), nullable=False),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_table(
        "ledger_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for name in ("ledger_meta", "ledger_checkpoints", "ledger_signatures", "ledger_transactions", "ledger_blocks"):
        op.drop_table(name)
