"""The API's own database (tokens, WeChat users, idempotency records, offline gate scans, gate claims).

SQLite file by default, PostgreSQL by URL (``postgresql+psycopg://...``).  The
ledger's data is not here: this database only holds what the API needs to
authenticate callers, to replay idempotent answers and to hold the gates'
claims until the consortium has their transactions (``adapter.outbox``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Boolean,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as UTC; SQLite gives them back aware too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ApiToken(Base):
    """A bearer token; only the SHA-256 of the secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    role: Mapped[str] = mapped_column(String(32))
    tenant: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="cli")


class WechatUser(Base):
    """A registered person: WeChat openid -> role and tenant."""

    __tablename__ = "wechat_users"

    openid: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    tenant: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdempotencyRecord(Base):
    """The stored answer to a request made with an ``Idempotency-Key``."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("principal", "key", name="uq_idem_principal_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    principal: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_type: Mapped[str] = mapped_column(String(100), default="application/json")
    headers: Mapped[str] = mapped_column(Text, default="{}")
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the signed ledger transaction the request recorded before submitting it (``Transaction.to_dict``
    #: JSON): a retry after the worker died submits this one again instead of a second one
    tx_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tx: Mapped[str | None] = mapped_column(Text, nullable=True)


#: Columns added to existing tables after their first release: ``create_all`` makes new tables only.
_ADDED_COLUMNS = {"idempotency_records": {"tx_id": "VARCHAR(64)", "tx": "TEXT"}}


class GateScan(Base):
    """The result of one offline scan, by gate and ``scan_id``: a re-sent scan gets it again."""

    __tablename__ = "gate_scans"
    __table_args__ = (UniqueConstraint("gate", "scan_id", name="uq_gate_scan"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gate: Mapped[str] = mapped_column(String(200))
    scan_id: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL loses no committed transaction when a process crashes, only (the last ones) when
    # the machine loses power; it spares an fsync per commit.  Deployments that need more use PostgreSQL.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


_WRITE_LOCKS: dict[int, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


@contextmanager
def write_lock(engine: Engine) -> Iterator[None]:
    """Hold around a short write transaction: SQLite lets one writer in at a time, and its busy handler is
    not fair, so many threads of one gunicorn worker polling for the lock starved each other past the busy
    timeout (500 "database is locked" with 48 concurrent ticket issuers).  Threads of a process queue here
    instead; only the processes contend in SQLite.  No-op for other databases."""
    if engine.dialect.name != "sqlite":
        yield
        return
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.setdefault(id(engine), threading.Lock())
    with lock:
        yield


def make_engine(url: str) -> Engine:
    """An engine for ``url``; creates the SQLite file's directory and the tables."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    _create_tables(engine)
    return engine


class GateClaim(Base):
    """A gate's claim on one ticket for one kind of scan, and the outbox of its signed transaction
    (``ticket_api.adapter.outbox``): unique by ticket and kind, so of two racing gates one claim commits."""

    __tablename__ = "gate_claims"
    __table_args__ = (UniqueConstraint("ticket_id", "kind", name="uq_gate_claim"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    gate: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(200))
    tx_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    tx: Mapped[str] = mapped_column(Text)
    send: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    verdict: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    violation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class NotifyCursor(Base):
    """How far the notifier has followed the chain (``ticket_api.notify``): the last final block whose
    notifications are in the outbox; advanced in the same transaction as the rows it wrote."""

    __tablename__ = "notify_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    height: Mapped[int] = mapped_column(Integer)
    #: the chain's final height when the notifier last looked (the lag is the difference)
    chain_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Notification(Base):
    """One message of the outbox: one event for one recipient (``wechat:<openid>`` or a staff/tenant
    audience ``tenant:<role>:<tenant>`` / ``role:<role>``), unique by the two."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("event_id", "recipient", name="uq_notification_event_recipient"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128))
    recipient: Mapped[str] = mapped_column(String(200), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # "wechat" | "api"
    kind: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(Text)  # the event's JSON (``ticket_api.notify.events.Event``)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: "pending" (to send), "sent", "failed" (gave up); API rows are "sent" once written
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


def _create_tables(engine: Engine, attempts: int = 5) -> None:
    """``create_all``, tolerating another process (a second gunicorn worker) creating them at the same time."""
    for attempt in range(attempts):
        try:
            Base.metadata.create_all(engine)
            _add_columns(engine)
            return
        except (OperationalError, ProgrammingError, IntegrityError):
            # "table ... already exists" (SQLite) / duplicate table or type (PostgreSQL): the other
            # process won the race; checkfirst sees its tables on the next try.
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _add_columns(engine: Engine) -> None:
    """Add the columns of ``_ADDED_COLUMNS`` a database made by an earlier version lacks (nullable, so
    existing rows stay valid)."""
    found = inspect(engine)
    for table, columns in _ADDED_COLUMNS.items():
        have = {c["name"] for c in found.get_columns(table)}
        for name, ddl in columns.items():
            if name not in have:
                with engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
