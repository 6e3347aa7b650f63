"""A key's validity period (ISO 8601 with an offset, +08:00 by convention) and who expires soon."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ledger.errors import ConsortiumError

_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")

#: reason codes of a signature made outside its key's validity (``ledger/reasons.py``)
KEY_EXPIRED, KEY_NOT_YET_VALID = "key_expired", "key_not_yet_valid"
#: ``keys_expiring`` lists the keys whose validity ends within this many days
EXPIRY_WARNING_DAYS = 30


def parse_instant(text: str, *, what: str) -> datetime:
    """An ISO 8601 time that carries an offset; :class:`ConsortiumError` otherwise."""
    if not isinstance(text, str) or not _TS_RE.fullmatch(text):
        raise ConsortiumError(f"{what} must be ISO 8601 with an offset, e.g. 2026-11-23T22:15:00+08:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConsortiumError(f"{what} is not a valid time: {exc}") from exc


@dataclass(frozen=True)
class Validity:
    """``not_before`` ≤ t ≤ ``not_after``: when a signature by the key counts (judged at a block's time)."""

    not_before: str
    not_after: str

    def __post_init__(self) -> None:
        start = parse_instant(self.not_before, what="not_before")
        end = parse_instant(self.not_after, what="not_after")
        if start >= end:
            raise ConsortiumError(f"not_after {self.not_after} must be after not_before {self.not_before}")
        object.__setattr__(self, "_start", start)  # parsed once: judged for every transaction of a block
        object.__setattr__(self, "_end", end)

    @property
    def start(self) -> datetime:
        start: datetime = self.__dict__["_start"]
        return start

    @property
    def end(self) -> datetime:
        end: datetime = self.__dict__["_end"]
        return end

    def refusal(self, when: datetime) -> str | None:
        """None when ``when`` lies in the period, else the reason code (``key_not_yet_valid``, ``key_expired``)."""
        if when < self.start:
            return KEY_NOT_YET_VALID
        if when > self.end:
            return KEY_EXPIRED
        return None

    def days_left(self, now: datetime) -> int:
        """Whole days from ``now`` to ``not_after`` (negative once it passed)."""
        return int((self.end - now).total_seconds() // 86400)

    def to_dict(self) -> dict[str, str]:
        return {"not_before": self.not_before, "not_after": self.not_after}


class _Keyed(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def validity(self) -> Validity | None: ...


def expiring(members: Iterable[_Keyed], now: datetime, *, within_days: int = EXPIRY_WARNING_DAYS
             ) -> list[dict[str, Any]]:
    """``[{"member", "key_id", "not_after", "days_left"}]`` of the keys whose validity ends within
    ``within_days`` of ``now`` (the expired ones too, with ``days_left`` < 0), soonest first."""
    out = []
    for m in members:
        v = m.validity
        if v is None:
            continue
        left = v.days_left(now)
        if left <= within_days:
            out.append({"member": m.name, "key_id": m.key_id, "not_after": v.not_after, "days_left": left})
    return sorted(out, key=lambda d: (d["days_left"], d["member"]))
