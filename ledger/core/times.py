"""China Standard Time and the ledger's ISO 8601 time texts (every time on the chain carries +08:00)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

CHINA_TZ = timezone(timedelta(hours=8))


def iso(t: datetime, *, timespec: str = "milliseconds") -> str:
    """ISO 8601 in China Standard Time, e.g. ``2026-11-23T22:15:00.000+08:00`` (``timespec`` as in isoformat)."""
    return t.astimezone(CHINA_TZ).isoformat(timespec=timespec)


def iso_epoch(seconds: int) -> str:
    """Epoch seconds → ISO 8601 in China Standard Time, whole seconds."""
    return datetime.fromtimestamp(seconds, tz=UTC).astimezone(CHINA_TZ).isoformat()
