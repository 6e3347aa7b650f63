"""Read your own writes across nodes: the block height at which each ticket the API issued became final.

A transaction is final once more than two thirds of the nodes hold its block, so the node a gate's preview
lands on may not have the ticket yet: refused ``unknown_ticket`` for a ticket the API answered 201 a moment
ago.  The API records each issued ticket's height here (its own database, shared by every worker), and the
gate path reads at that height or above (``NodeClient.query_at``: the next node, or a short wait).
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, Integer, String, select
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Mapped, Session, mapped_column

from ticket_api.db import Base, write_lock


class IssuedHeight(Base):
    """The height of the block that made a ticket final (only tickets this API issued)."""

    __tablename__ = "issued_heights"

    ticket_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    height: Mapped[int] = mapped_column(Integer)


_READY: set[int] = set()


def ensure_table(engine: Engine, attempts: int = 5) -> None:
    """Create the table once per engine (another worker may be creating it at the same moment)."""
    if id(engine) in _READY:
        return
    for attempt in range(attempts):
        try:
            IssuedHeight.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
            _READY.add(id(engine))
            return
        except (OperationalError, ProgrammingError, IntegrityError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def record(engine: Engine, ticket_id: str, height: int | None) -> None:
    """Remember the final height of ``ticket_id`` (before the API answers 201); the first one stays."""
    if height is None:
        return
    ensure_table(engine)
    try:
        with write_lock(engine), Session(engine) as s, s.begin():
            if s.get(IssuedHeight, ticket_id) is None:
                s.add(IssuedHeight(ticket_id=ticket_id, height=int(height)))
    except IntegrityError:  # a retry of the same request recorded it first
        pass


def height_of(engine: Engine | None, ticket_id: str) -> int | None:
    """The final height of a ticket this API issued (None: not issued here, or before this table)."""
    if engine is None:
        return None
    ensure_table(engine)
    with Session(engine) as s:
        return s.scalar(select(IssuedHeight.height).where(IssuedHeight.ticket_id == ticket_id))
