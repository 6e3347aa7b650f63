"""The base of the QR ticket errors: under the ledger's own base, so one ``except LedgerError`` (or the API's
handler of it) covers a malformed, forged or expired ticket as well, each with its stable ``reason`` code."""

from __future__ import annotations

from ledger.errors import LedgerError


class QrTicketError(LedgerError):
    """Base of every error of :mod:`ledger.qrticket` (Base45, the ticket format, the gate check)."""

    reason = "malformed"
