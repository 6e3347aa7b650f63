"""Every error of ``ledger.qrticket`` is a ``LedgerError`` (one handler, one ``except``) with its reason code."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.errors import LedgerError
from ledger.qrticket.base45 import Base45Error, b45decode
from ledger.qrticket.errors import QrTicketError
from ledger.qrticket.gatecheck import GateRefusal
from ledger.qrticket.ticket import (
    BadTicketSignature,
    MalformedTicket,
    TicketError,
    TicketExpired,
    TicketNotYetValid,
    UnknownTicketKey,
)
from ticket_api.errors import ApiError


@pytest.mark.parametrize(
    ("cls", "reason"),
    [
        (Base45Error, "malformed"),
        (TicketError, "malformed"),
        (MalformedTicket, "malformed"),
        (BadTicketSignature, "bad_signature"),
        (TicketExpired, "expired"),
        (TicketNotYetValid, "not_yet_valid"),
    ],
)
def test_qrticket_errors_are_ledger_errors_with_their_reason(cls: type[QrTicketError], reason: str) -> None:
    assert issubclass(cls, QrTicketError)
    assert issubclass(cls, LedgerError)
    assert not issubclass(cls, ApiError)
    exc = cls("some detail")
    assert exc.reason == reason
    assert exc.message == "some detail"


def test_unknown_key_is_a_bad_signature() -> None:
    exc = UnknownTicketKey("0123456789abcdef")
    assert isinstance(exc, LedgerError)
    assert exc.reason == "bad_signature"
    assert exc.key_id == "0123456789abcdef"


def test_base45_error_is_still_a_value_error() -> None:
    with pytest.raises(ValueError):
        b45decode("A")
    with pytest.raises(LedgerError):
        b45decode("GGW")


def test_gate_refusal_keeps_reason_and_message() -> None:
    exc = GateRefusal("wrong_truck", "the plate read at the gate is not the ticket's")
    assert isinstance(exc, LedgerError)
    assert exc.reason == "wrong_truck"
    assert exc.message == "the plate read at the gate is not the ticket's"
    bare = GateRefusal("already_departed")
    assert bare.reason == "already_departed"
    assert bare.message == "already_departed"
    assert str(bare) == "already_departed"


def test_database_busy_by_sqlite_result_code(tmp_path: Path) -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from ticket_api.errors import database_busy

    path = str(tmp_path / "busy.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as raised:
            other.execute("INSERT INTO t VALUES (1)")
        assert database_busy(OperationalError("INSERT", {}, raised.value))
        # the same class for another cause (no such table) is not "busy", whatever its text says
        fresh = sqlite3.connect(str(tmp_path / "other.db"))
        with pytest.raises(sqlite3.OperationalError) as missing:
            fresh.execute("SELECT * FROM locked_busy")
        fresh.close()
        assert not database_busy(OperationalError("SELECT", {}, missing.value))
    finally:
        other.close()
        holder.close()
