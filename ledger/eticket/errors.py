"""Typed errors of the e-ticket state machine (``LedgerError`` subclasses) and the rules' reason codes."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ledger import reasons
from ledger.errors import LedgerError


class EticketError(LedgerError):
    """Base of the e-ticket errors; ``reason`` is a stable code of the registry :mod:`ledger.reasons`."""

    reason = "eticket_error"


class PayloadError(EticketError):
    """A payload with missing, unknown or ill-formed fields (reason ``malformed``)."""

    reason = "malformed"


class PersonalData(PayloadError):
    """A field holds personal data (reason ``personal_data``); ``field`` names it, ``kind`` says what was seen.

    The message and ``fields`` name the field and the kind, never the value.
    """

    reason = "personal_data"

    def __init__(self, field: str, kind: str) -> None:
        super().__init__(f"field={field} kind={kind}")
        self.field = field
        self.kind = kind
        self.fields = {field: "personal_data"}


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


#: Every reason code ``apply`` or ``admit`` can return (plus ``valid``), in catalogue order.
RULE_CODES: tuple[str, ...] = (
    "valid",
    "malformed",
    "personal_data",
    "bad_signature",
    "unknown_type",
    "forbidden",
    "bad_time",
    "duplicate_id",
    "unknown_org",
    "unknown_project",
    "unknown_site",
    "unknown_company",
    "unknown_truck",
    "unknown_driver",
    "unknown_permit",
    "unknown_ticket",
    "unknown_violation",
    "unknown_camera",
    "unknown_department",
    "already_decided",
    "permit_closed",
    "permit_not_approved",
    "expired",
    "quota_exceeded",
    "truck_suspended",
    "truck_retired",
    "truck_busy",
    "over_capacity",
    "driver_suspended",
    "contractor_suspended",
    "wrong_truck",
    "wrong_site",
    "wrong_project",
    "site_full",
    "voided",
    "not_departed",
    "already_departed",
    "already_received",
    "uncovered_load",
    "bad_state",
    "site_alarm",
    "unknown_amendment",
    "act_unsigned",
    "unknown_act_key",
    "act_key_mismatch",
    "key_revoked",
    "key_expired",
    "key_not_yet_valid",
    "bad_act_signature",
)

#: ``code -> {"zh": ..., "en": ...}`` for the rules' codes.
MESSAGES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        code: MappingProxyType({"zh": reasons.REASONS[code].zh, "en": reasons.REASONS[code].en})
        for code in RULE_CODES
    }
)

#: Every reason code ``apply`` or ``admit`` can return (plus ``valid``).
CODES: frozenset[str] = frozenset(RULE_CODES)


def describe(code: str, lang: str = "zh") -> str:
    """The registry message of ``code`` in ``lang`` ("zh" or "en"; anything else falls back to zh)."""
    return reasons.message(code, lang)


def message(code: str, detail: str = "") -> str:
    """The Chinese outcome message: registry text, then the language-neutral details."""
    text = describe(code, "zh")
    return f"{text}：{detail}" if detail else text
