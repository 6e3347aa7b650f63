"""Typed errors of the e-ticket state machine, all ``LedgerError`` subclasses with a reason code."""

from __future__ import annotations

from ledger.errors import LedgerError


class EticketError(LedgerError):
    """Base of the e-ticket errors; ``reason`` is a stable code of the registry :mod:`ledger.reasons`."""

    reason = "eticket_error"


class PayloadError(EticketError):
    """A payload with missing, unknown or ill-formed fields (reason ``malformed``)."""

    reason = "malformed"


class UnknownType(EticketError):
    """A transaction type the e-ticket machine does not know."""

    reason = "unknown_type"


class Refusal(EticketError):
    """A business rule refuses the transaction; ``apply`` turns it into an ``Outcome``.

    ``detail`` is a language-neutral ``key=value`` text appended to the catalogue message;
    ``events`` are attached to the refusing outcome.
    """

    def __init__(self, reason: str, detail: str = "", *, events: tuple[dict[str, object], ...] = ()) -> None:
        super().__init__(detail or reason, reason=reason)
        self.detail = detail
        self.events = events
