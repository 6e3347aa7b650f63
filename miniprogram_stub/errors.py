"""The offline gate library's typed errors (each with its reason code in ``ledger.reasons``)."""

from __future__ import annotations

from ledger.errors import LedgerError


class OfflineUnavailable(LedgerError):
    """The gate must not decide offline: its revocation list is missing (``revocations_missing``) or older
    than its ``max_revocation_age`` (``revocations_stale``).  Refresh it online, or scan online."""

    reason = "revocations_stale"
