"""Messages in Chinese (default) and English for every reason code."""

from __future__ import annotations

import pytest

from ticket_api import i18n
from ticket_api.errors import REASON_STATUS

GATE_REASONS = [
    "bad_signature",
    "malformed",
    "unknown_ticket",
    "expired",
    "wrong_truck",
    "wrong_site",
    "not_departed",
    "already_departed",
    "already_received",
    "permit_not_approved",
    "quota_exceeded",
    "truck_suspended",
    "site_full",
    "forbidden",
]


@pytest.mark.parametrize("reason", sorted(set(REASON_STATUS) | set(GATE_REASONS)))
def test_every_reason_has_chinese_and_english(reason: str) -> None:
    """Every mapped reason code has a distinct zh and en message (not the bare code)."""
    zh, en = i18n.message(reason, "zh"), i18n.message(reason, "en")
    assert zh != reason and en != reason
    assert zh != en
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh)


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "zh"),
        ("", "zh"),
        ("en", "en"),
        ("en-US,en;q=0.9", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("en;q=0.5,zh;q=0.8", "zh"),
        ("fr-FR, en;q=0.3", "en"),
        ("fr, de", "zh"),
        ("*", "zh"),
        ("en;q=0", "zh"),
        ("en;q=bogus", "zh"),
    ],
)
def test_accept_language(header: str | None, lang: str) -> None:
    """English only when the client prefers it to Chinese; Chinese otherwise."""
    assert i18n.pick_language(header) == lang


def test_unknown_reason_falls_back() -> None:
    """An unknown reason gives the default text, else the code itself."""
    assert i18n.message("no_such_code", "en", default="fallback") == "fallback"
    assert i18n.message("no_such_code", "en") == "no_such_code"
