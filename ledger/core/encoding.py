"""Canonical byte encoding (RFC 8785 JSON Canonicalization Scheme) of ledger objects, and China time texts."""

from __future__ import annotations

import base64
import binascii
import json
import re
from array import array
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from itertools import accumulate
from typing import Any

import rfc8785

from ledger.errors import EncodingError

JSONValue = Any


_SAFE_INT = 2**53 - 1


def _plain(obj: JSONValue) -> bool:
    """True when json.dumps(sort_keys, compact) is exactly RFC 8785 for ``obj``.

    That holds without floats (ECMAScript number formatting differs), without
    integers beyond 2**53 (RFC 8785 refuses them) and without characters above
    U+FFFF in member names (UTF-16 code-unit order differs from code points).
    """
    stack = [obj]
    while stack:
        v = stack.pop()
        t = type(v)
        # Exact types first (what JSON parsing gives: the hot path of decoding); subclasses below.
        if t is str or v is None or t is bool:
            continue
        if t is int:
            if -_SAFE_INT <= v <= _SAFE_INT:
                continue
            return False
        if t is dict:
            for k, x in v.items():
                if type(k) is not str or (not k.isascii() and any(ord(c) > 0xFFFF for c in k)):
                    return False
                stack.append(x)
            continue
        if t is list:
            stack.extend(v)
            continue
        if isinstance(v, str | bool):
            continue
        if isinstance(v, int):
            if -_SAFE_INT <= v <= _SAFE_INT:
                continue
            return False
        if isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str) or (not k.isascii() and any(ord(c) > 0xFFFF for c in k)):
                    return False
                stack.append(x)
            continue
        if isinstance(v, list | tuple):
            stack.extend(v)
            continue
        return False
    return True


def canonical(obj: JSONValue) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of a JSON value.

    The same object gives the same bytes on every node and every Python:
    object members sorted by UTF-16 code units, no white space, ECMAScript
    number formatting.  Integers outside the IEEE 754 safe range, NaN and
    non-string keys raise :class:`EncodingError`.  Values for which the
    standard library's compact sorted output is provably identical (see
    ``_plain``) take that path, four times faster; all others go through the
    ``rfc8785`` package.
    """
    if _plain(obj):
        try:
            return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
        except (UnicodeEncodeError, RecursionError) as exc:  # lone surrogates, absurd nesting
            raise EncodingError(f"value has no canonical JSON encoding: {exc}") from exc
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise EncodingError(f"value has no canonical JSON encoding: {exc}") from exc


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise EncodingError(f"duplicate member {key!r} in JSON object")
        out[key] = value
    return out


def parse(data: bytes | str) -> JSONValue:
    """Parse JSON text strictly: UTF-8, no duplicate members, no NaN/Infinity."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        return json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_no_constant,
            parse_int=_parse_int,
        )
    except EncodingError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise EncodingError(f"not valid JSON: {exc}") from exc


def parse_fast(data: bytes | str) -> JSONValue:
    """Parse JSON like :func:`parse` but without the per-object duplicate-member check.

    Only for bytes the caller then compares with their canonical re-encoding (as
    ``Transaction.decode`` does): a duplicate member makes the parsed value re-encode
    shorter, so that comparison refuses it anyway, and the C parser runs without a
    Python callback per object.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        return json.loads(text, parse_constant=_no_constant, parse_int=_parse_int)
    except EncodingError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise EncodingError(f"not valid JSON: {exc}") from exc


#: Arrays and objects inside each other at most this deep in a request body (no body of ours nests past ~8).
MAX_JSON_DEPTH = 32

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
# Brackets become +1 / -1 (signed bytes), everything else is deleted: the running sum is the depth.
_JSON_SIGNS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JsonTooDeep(EncodingError):
    """A JSON text nests arrays/objects deeper than allowed (the decoder would recurse until RecursionError)."""

    reason = "json_too_deep"


class JsonBadText(EncodingError):
    """A JSON string holds a lone UTF-16 surrogate escape (valid JSON, but no Unicode text)."""

    reason = "bad_text"


def json_depth(data: bytes) -> int:
    """How deep arrays and objects nest in the JSON text ``data`` (brackets inside strings do not count);
    for a text with at most :data:`MAX_JSON_DEPTH` opening brackets their count, an upper bound that is enough."""
    opening = data.count(b"[") + data.count(b"{")
    if opening <= MAX_JSON_DEPTH:
        return opening
    signs = _JSON_STRING.sub(b"", data).translate(_JSON_SIGNS, _NOT_BRACKETS)
    return max(accumulate(array("b", signs)), default=0)


def parse_untrusted(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON text from anyone (a request body): too deep raises :class:`JsonTooDeep`, a lone surrogate
    :class:`JsonBadText`, anything else that is not JSON (bad UTF-8, an integer of thousands of digits, …)
    :class:`EncodingError` — never RecursionError, UnicodeError or a bare ValueError."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if json_depth(raw) > max_depth:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth}")
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise EncodingError(f"not valid JSON: {exc.__class__.__name__}") from None
    if b"\\u" in raw:  # only an escape can make a surrogate out of strict UTF-8
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise JsonBadText("a JSON string holds a lone surrogate") from None
    return value


#: Largest integer RFC 8785 (IEEE 754 double) represents exactly.
_SAFE_INT = 2**53 - 1


def _parse_int(text: str) -> int | float:
    """Read JSON integers outside the IEEE 754 safe range as floats, as RFC 8785 does.

    A float of 1e16 is written "10000000000000000"; reading it back as an int
    would make ``canonical(parse(canonical(x)))`` fail."""
    if len(text) <= 20:
        n = int(text)
        if -_SAFE_INT <= n <= _SAFE_INT:
            return n
    return float(text)


def _no_constant(name: str) -> None:
    raise EncodingError(f"{name} is not allowed in ledger JSON")


def parse_canonical(data: bytes) -> JSONValue:
    """Parse bytes that must already be in canonical form (else EncodingError)."""
    value = parse(data)
    if canonical(value) != bytes(data):
        raise EncodingError("JSON is not in RFC 8785 canonical form")
    return value


def b64(data: bytes) -> str:
    """Standard base64 with padding (RFC 4648 section 4)."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, *, what: str = "value") -> bytes:
    """Decode strict standard base64, raising EncodingError on anything else."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError) as exc:
        raise EncodingError(f"{what} is not valid base64") from exc


def unhex(text: str, *, length: int | None = None, what: str = "value") -> bytes:
    """Decode lower-case hex (optionally of a fixed byte length)."""
    try:
        raw = bytes.fromhex(text)
    except (ValueError, TypeError) as exc:
        raise EncodingError(f"{what} is not valid hex") from exc
    if length is not None and len(raw) != length:
        raise EncodingError(f"{what} must be {length} bytes, got {len(raw)}")
    return raw


def require_mapping(value: JSONValue, *, what: str) -> Mapping[str, Any]:
    """Return ``value`` if it is a JSON object, else raise EncodingError."""
    if not isinstance(value, Mapping):
        raise EncodingError(f"{what} must be a JSON object")
    return value


CHINA_TZ = timezone(timedelta(hours=8))


def iso(t: datetime, *, timespec: str = "milliseconds") -> str:
    """ISO 8601 in China Standard Time, e.g. ``2026-11-23T22:15:00.000+08:00`` (``timespec`` as in isoformat)."""
    return t.astimezone(CHINA_TZ).isoformat(timespec=timespec)


def iso_epoch(seconds: int) -> str:
    """Epoch seconds → ISO 8601 in China Standard Time, whole seconds."""
    return datetime.fromtimestamp(seconds, tz=UTC).astimezone(CHINA_TZ).isoformat()
