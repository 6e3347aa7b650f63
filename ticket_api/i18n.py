"""The language of an answer, and the messages of reason codes in it (Chinese by default, or English).

The messages themselves live in the one registry of reason codes, :mod:`ledger.reasons`.

The language is chosen from ``Accept-Language``: English only when the
client prefers it over Chinese; anything else (missing, unknown, ``*``) gets
Chinese.
"""

from __future__ import annotations

from ledger import reasons

DEFAULT_LANGUAGE = "zh"
LANGUAGES = reasons.LANGUAGES


def parse_accept_language(header: str | None) -> list[tuple[str, float]]:
    """``Accept-Language`` as (lower-case tag, q) pairs, best first (stable)."""
    out: list[tuple[str, float]] = []
    for part in (header or "").split(","):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            out.append((tag, q))
    out.sort(key=lambda item: -item[1])
    return out


def pick_language(header: str | None) -> str:
    """``"en"`` or ``"zh"`` for an ``Accept-Language`` header (default Chinese)."""
    for tag, _q in parse_accept_language(header):
        primary = tag.split("-", 1)[0]
        if primary in LANGUAGES:
            return primary
    return DEFAULT_LANGUAGE


def message(reason: str, language: str = DEFAULT_LANGUAGE, default: str | None = None) -> str:
    """The registry message (:mod:`ledger.reasons`) for ``reason`` in ``language``; ``default`` (or the
    code) if unknown."""
    return reasons.message(reason, language, default=default)
