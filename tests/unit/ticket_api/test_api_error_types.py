"""Every error of ``ledger.qrticket`` is a ``LedgerError`` (one handler, one ``except``) with its reason code."""

from __future__ import annotations

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
