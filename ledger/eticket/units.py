"""Exact conversions of payload values (decimals, times, places) to integer units."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from ledger.core.encoding import CHINA_TZ, iso_epoch
from ledger.eticket.errors import PayloadError

# the same format as ledger.core.transaction.parse_time (ISO 8601 with a mandatory offset)
_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
DIGEST_RE = re.compile(r"^(sha256|sm3):[0-9a-f]{64}$")
_CREDIT_CODE_RE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{18}$")

# Plates: province abbreviation, issuing-authority letter, then 5 (ordinary) or 6 (new-energy) chars.
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PLATE_RE = re.compile(
    rf"^[{_PROVINCES}][A-HJ-NP-Z]"
    r"(?:[A-HJ-NP-Z0-9]{4}[A-HJ-NP-Z0-9挂学警港澳]"  # ordinary 7-char plate
    r"|[DF][A-HJ-NP-Z0-9][0-9]{4}"  # new-energy small car: D/F then 5
    r"|[0-9]{5}[DF])$"  # new-energy large vehicle: 5 digits then D/F
)


def decimal_units(value: object, *, scale: int, what: str, minimum: int = 0, maximum: int | None = None) -> int:
    """Convert a JSON number or decimal string to integer units of ``10**-scale`` exactly.

    ``15.5`` with scale 3 → ``15500``.  More decimals than ``scale`` (other than trailing zeros),
    booleans, exponents, NaN and values outside [minimum, maximum] raise :class:`PayloadError`.
    Floats are read through their shortest ``repr``, so ``29.563012`` is exactly 29563012 µdeg.
    """
    units: int
    if type(value) is int:
        units = int(value) * 10**scale
    else:
        if type(value) is float:
            text = repr(value)
            if "e" in text or "E" in text:
                text = format(Decimal(text), "f")
        elif type(value) is str:
            text = value
        else:
            raise PayloadError(f"{what} must be a number or a decimal string")
        whole, dot, frac = text.partition(".")
        sign = whole[:1] == "-"
        if sign:
            whole = whole[1:]
        if not (
            0 < len(whole) <= 12
            and whole.isascii()
            and whole.isdigit()
            and (not dot or (0 < len(frac) <= 9 and frac.isascii() and frac.isdigit()))
        ):
            raise PayloadError(f"{what} is not a plain decimal number: {text[:32]!r}")
        if not dot:
            units = int(whole) * 10**scale
        else:
            if len(frac) > scale:
                if frac[scale:].strip("0"):
                    raise PayloadError(f"{what} has more than {scale} decimals")
                frac = frac[:scale]
            units = int(whole) * 10**scale + (int(frac) * 10 ** (scale - len(frac)) if frac else 0)
        if sign:
            units = -units
    if units < minimum or (maximum is not None and units > maximum):
        raise PayloadError(f"{what} is out of range")
    return units


def litres(value: object, *, what: str, minimum: int = 0, maximum: int = 10**12) -> int:
    """Cubic metres (≤ 3 decimals) → integer litres."""
    return decimal_units(value, scale=3, what=what, minimum=minimum, maximum=maximum)


def m3_text(litres_value: int) -> str:
    """Integer litres → a canonical decimal string of cubic metres ("15.5")."""
    whole, frac = divmod(litres_value, 1000)
    return str(whole) if frac == 0 else f"{whole}.{frac:03d}".rstrip("0")


def fen_text(fen: int) -> str:
    """Integer fen → yuan string with two decimals."""
    return f"{fen // 100}.{fen % 100:02d}"


def epoch(text: object, *, what: str = "time") -> int:
    """An ISO 8601 time with offset → integer epoch seconds (sub-seconds truncated)."""
    if not isinstance(text, str):
        raise PayloadError(f"{what} must be an ISO 8601 string with an offset")
    if _TS_RE.match(text) is None:
        raise PayloadError(f"{what} must be ISO 8601 with an offset, e.g. 2026-11-23T22:15:00+08:00")
    try:
        return int(datetime.fromisoformat(text).timestamp() // 1)
    except ValueError as exc:
        raise PayloadError(f"{what} is not a valid time: {exc}") from exc


def epoch_of(dt: datetime) -> int:
    """A timezone-aware datetime → epoch seconds."""
    return int(dt.timestamp() // 1)


#: Epoch seconds → ISO 8601 in China time (+08:00).
iso = iso_epoch


def compact_local(seconds: int) -> str:
    """Epoch seconds → YYYYMMDDHHMMSS in China time (for violation numbers)."""
    return datetime.fromtimestamp(seconds, tz=UTC).astimezone(CHINA_TZ).strftime("%Y%m%d%H%M%S")


def micro_degrees(value: object, *, what: str, limit: int) -> int:
    """Degrees (≤ 6 decimals) → integer micro-degrees within ±limit degrees."""
    return decimal_units(value, scale=6, what=what, minimum=-limit * 10**6, maximum=limit * 10**6)


def is_plate(text: object) -> bool:
    """True for a Chinese vehicle plate (7-char ordinary or 8-char new-energy)."""
    return isinstance(text, str) and bool(_PLATE_RE.match(text))


def is_id(text: object) -> bool:
    """True for a submitter-chosen object id."""
    return isinstance(text, str) and bool(ID_RE.match(text))


def is_digest(text: object) -> bool:
    """True for an algorithm-tagged hex digest such as ``sha256:<64 hex>``."""
    return isinstance(text, str) and bool(DIGEST_RE.match(text))


def is_credit_code(text: object) -> bool:
    """True for an 18-character unified social credit code (统一社会信用代码), format only."""
    return isinstance(text, str) and bool(_CREDIT_CODE_RE.match(text))


def deg_text(udeg: int) -> str:
    """Integer micro-degrees → decimal degrees text ("29.563012")."""
    sign = "-" if udeg < 0 else ""
    whole, frac = divmod(abs(udeg), 10**6)
    return f"{sign}{whole}.{frac:06d}"


def location_json(lat: int | None, lon: int | None) -> dict[str, str] | None:
    """A location as ``{"lat": "29.563012", "lon": "106.551556"}`` or None."""
    if lat is None or lon is None:
        return None
    return {"lat": deg_text(lat), "lon": deg_text(lon)}


def median(values: list[int]) -> float | None:
    """The median (mean of the two middle values for an even count), None for no values."""
    if not values:
        return None
    values = sorted(values)
    mid = len(values) // 2
    return float(values[mid]) if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
