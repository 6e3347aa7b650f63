"""The operator's off-chain table of drivers' clear personal data and salts (I/O, not on the chain)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Column, Connection, LargeBinary, MetaData, String, Table, Text, delete, insert, select

from ledger.core.encoding import canonical, parse
from ledger.eticket.personal import person_hash

metadata = MetaData()

#: One row per driver: the random salt, the clear fields (JSON) and the hash put on the chain.
personal_data = Table(
    "eticket_personal_data",
    metadata,
    Column("driver_id", String(64), primary_key=True),
    Column("salt", LargeBinary(32), nullable=False),
    Column("fields_json", Text, nullable=False),
    Column("person_hash", String(80), nullable=False, index=True),
)


def new_salt() -> bytes:
    """32 random bytes for one person's hash."""
    return os.urandom(32)


def store_person(conn: Connection, driver_id: str, fields: Mapping[str, str], *, salt: bytes | None = None) -> str:
    """Store (or replace) a driver's clear data with a fresh salt; return the ``person_hash`` to submit."""
    salt = salt if salt is not None else new_salt()
    digest = person_hash(salt, fields)
    conn.execute(delete(personal_data).where(personal_data.c.driver_id == driver_id))
    conn.execute(
        insert(personal_data).values(
            driver_id=driver_id,
            salt=salt,
            fields_json=canonical(dict(fields)).decode("utf-8"),
            person_hash=digest,
        )
    )
    return digest


def load_person(conn: Connection, driver_id: str) -> dict[str, Any] | None:
    """The clear fields, salt and hash of a driver, or None."""
    row = conn.execute(select(personal_data).where(personal_data.c.driver_id == driver_id)).one_or_none()
    if row is None:
        return None
    return {"fields": parse(row.fields_json), "salt": bytes(row.salt), "person_hash": row.person_hash}


def erase_person(conn: Connection, driver_id: str) -> None:
    """Delete a driver's clear data (the hash on the chain then matches nothing)."""
    conn.execute(delete(personal_data).where(personal_data.c.driver_id == driver_id))
