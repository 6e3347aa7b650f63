"""SQLAlchemy 2.0 Core projection tables of the e-ticket state, rebuilt from the chain on demand."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
)

from ledger.core.builder import TxContext
from ledger.core.consortium import Consortium
from ledger.core.transaction import Transaction
from ledger.eticket.machine import EticketMachine
from ledger.eticket.records import (
    Company,
    Decision,
    Driver,
    Org,
    Penalty,
    Permit,
    Project,
    Site,
    Ticket,
    Truck,
    Violation,
)

metadata = MetaData()

#: record kind → (table name, record class, primary-key field)
_KINDS: dict[str, tuple[str, type, str]] = {
    "org": ("eticket_orgs", Org, "org_id"),
    "project": ("eticket_projects", Project, "project_id"),
    "site": ("eticket_sites", Site, "site_id"),
    "company": ("eticket_companies", Company, "company_id"),
    "truck": ("eticket_trucks", Truck, "truck_id"),
    "driver": ("eticket_drivers", Driver, "driver_id"),
    "permit": ("eticket_permits", Permit, "permit_id"),
    "ticket": ("eticket_tickets", Ticket, "ticket_id"),
    "violation": ("eticket_violations", Violation, "violation_id"),
    "penalty": ("eticket_penalties", Penalty, "penalty_id"),
}
_SKIP = {("permit", "decisions")}  # flattened into eticket_permit_decisions


def _column(name: str, annotation: str, primary: bool) -> Column[Any]:
    nullable = "None" in annotation
    base = annotation.replace(" | None", "")
    if base.startswith("tuple"):
        kind: Any = JSON()
    elif base == "int":
        kind = BigInteger()
    elif base == "bool":
        kind = Boolean()
    elif name in ("name", "description", "result", "note", "closed_reason", "address"):
        kind = Text()
    else:
        kind = String(128)
    return Column(
        name,
        kind,
        primary_key=primary,
        nullable=nullable or False,
        index=name.endswith("_id") and not primary,
    )


def _table(kind: str) -> Table:
    table_name, cls, pk = _KINDS[kind]
    cols = [_column(f.name, str(f.type), f.name == pk) for f in fields(cls) if (kind, f.name) not in _SKIP]
    return Table(table_name, metadata, *cols)


TABLES: dict[str, Table] = {kind: _table(kind) for kind in _KINDS}

permit_decisions = Table(
    "eticket_permit_decisions",
    metadata,
    Column("permit_id", String(64), primary_key=True),
    Column("department", String(64), primary_key=True),
    Column("decision", String(16), nullable=False),
    Column("time", BigInteger, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=True),
)

#: Which valid transactions touched which object (kind, id), in chain order, for Merkle proofs.
tx_index = Table(
    "eticket_tx_index",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("object_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("tx_id", String(64), nullable=False, index=True),
)

projection_meta = Table(
    "eticket_projection_meta",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("value", Text, nullable=False),
)


def _row(kind: str, record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(record):
        if (kind, f.name) in _SKIP:
            continue
        v = getattr(record, f.name)
        out[f.name] = [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
    return out


def write_snapshot(conn: Connection, machine: EticketMachine, *, batch: int = 5000) -> None:
    """Replace the projection tables' contents with the machine's current state (one transaction)."""
    for table in reversed(metadata.sorted_tables):
        conn.execute(delete(table))
    for kind, table in TABLES.items():
        rows = [_row(kind, rec) for rec in machine.state.records(kind)]
        for i in range(0, len(rows), batch):
            conn.execute(insert(table), rows[i : i + batch])
    decisions: list[dict[str, Any]] = []
    for permit in machine.state.records("permit"):
        d: Decision
        for d in permit.decisions:
            decisions.append(
                {
                    "permit_id": permit.permit_id,
                    "department": d.department,
                    "decision": d.decision,
                    "time": d.time,
                    "actor": d.actor,
                    "reason": d.reason,
                }
            )
    if decisions:
        conn.execute(insert(permit_decisions), decisions)
    index_rows: list[dict[str, Any]] = []
    for name in sorted(machine.state.history):
        kind, _, object_id = name.partition(":")
        for seq, raw in enumerate(machine.state.history[name]):
            index_rows.append({"kind": kind, "object_id": object_id, "seq": seq, "tx_id": raw.hex()})
            if len(index_rows) >= batch:
                conn.execute(insert(tx_index), index_rows)
                index_rows = []
    if index_rows:
        conn.execute(insert(tx_index), index_rows)
    conn.execute(
        insert(projection_meta),
        [{"key": "digest", "value": machine.digest()}, {"key": "applied", "value": str(machine.applied)}],
    )


def rebuild(engine: Engine, consortium: Consortium, entries: Iterable[tuple[Transaction, TxContext]]) -> EticketMachine:
    """Replay ``entries`` (every transaction of the chain, in order, with its context) into a fresh
    machine, (re)create the tables and write its state; return the machine."""
    machine = EticketMachine.from_consortium(consortium)
    for tx, ctx in entries:
        machine.apply(tx, ctx)
    metadata.create_all(engine)
    with engine.begin() as conn:
        write_snapshot(conn, machine)
    return machine
