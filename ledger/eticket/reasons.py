"""The reason codes of the e-ticket rules, a view of the one registry :mod:`ledger.reasons`.

The rules' codes are listed here (docs/ETICKET.md "Reason codes"); their statuses and messages
live in the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ledger import reasons

#: Every reason code ``apply`` or ``admit`` can return (plus ``valid``), in catalogue order.
RULE_CODES: tuple[str, ...] = (
    "valid",
    "malformed",
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
