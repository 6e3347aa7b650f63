"""The compact signed payload of an e-ticket QR code (pure: no I/O, no clock).

Text form::

    MT1:<Base45(body || signature)>

Only QR alphanumeric-mode characters appear (``0-9 A-Z space $%*+-./:``), so a
QR encoder can use alphanumeric mode, as the EU Digital COVID Certificate
does with its ``HC1:`` prefix.

Binary body (version 1), every integer an unsigned LEB128 varint, minimal::

    version          1 byte, = 1 (the prefix repeats it; the body byte is signed)
    ticket_id        compact string (see below)
    permit_id        compact string
    project_id       compact string (the project site: lets an exit gate check
                     "my site" offline; not in the original field list, adds ~5 bytes)
    plate            1 byte province index (1..N into PROVINCES, 0 = none)
                     + compact string of the rest (e.g. 渝A12345 -> 0x04 "A12345")
    disposal_site_id compact string
    volume           varint, tenths of a cubic metre (12.5 m³ -> 125), > 0
    valid_from       varint, minutes since 2024-01-01T00:00+08:00
    validity         varint, minutes from valid_from to valid_until, > 0
    key_id           8 bytes: the issuer key id (16 hex digits) as bytes
    signature        64 bytes Ed25519 over DOMAIN || body

A compact string is one header byte ``tag << 5 | n`` (n < 31 is the length;
n = 31 means a varint ``length - 31`` follows), then:

    tag 0  UTF-8 bytes, length = byte count
    tag 1  base-40 packed text over ``0-9 A-Z - _ . /``: each 3 characters in
           2 bytes, a final 1 or 2 characters in 1 or 2 bytes; length = chars
    tag 2  the same over ``0-9 a-z - _ . /`` (lower-case ids)
    tag 3  a canonical lower-case UUID as 16 raw bytes; length = 0
    tag 4  a decimal digit string (leading zeros kept): length = digits, then
           the number big-endian in the fewest bytes that hold 10**length - 1

The encoder always picks the first applicable of tag 4, 3, 1, 2, 0 and the
decoder re-encodes and rejects any other (non-canonical) form, so a ticket has
exactly one body.  Times are whole minutes: ``valid_from`` is rounded down and
``valid_until`` up.

Errors carry a stable ``reason``: ``malformed``, ``bad_signature`` (a wrong
signature *and* an issuer key id that is not among the given keys: the gate
cannot tell a forgery under an invented key id from one under a real one, so
both are one reason; :class:`UnknownTicketKey` lets callers tell them apart
when logging), ``expired`` and ``not_yet_valid`` (only when ``at`` is given).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.core.crypto import PrivateKey, PublicKey
from ledger.core.encoding import CHINA_TZ
from ledger.qrticket.base45 import Base45Error, b45decode, b45encode
from ledger.qrticket.errors import QrTicketError

VERSION = 1
PREFIX = "MT1:"
DOMAIN = b"muck-eticket/qr/v1\x00"
EPOCH = datetime(2024, 1, 1, tzinfo=CHINA_TZ)
SIGNATURE_BYTES = 64
KEY_ID_BYTES = 8
MAX_TEXT = 600  # far above any real ticket; bounds the work done on hostile input

# Fixed forever for version 1: the index (1-based) is on the wire.
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领警学港澳"

_B40 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_./"
_B40_VALUE = {c: i for i, c in enumerate(_B40)}
_B40L = "0123456789abcdefghijklmnopqrstuvwxyz-_./"
_B40L_VALUE = {c: i for i, c in enumerate(_B40L)}
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_KEY_ID_RE = re.compile(r"[0-9a-f]{16}\Z")
_MAX_STR = 64


class TicketError(QrTicketError):
    """Base of the ticket format's errors; ``reason`` is the stable machine code, ``message`` the text."""

    reason = "malformed"


class MalformedTicket(TicketError):
    """Not a version-1 ticket text (prefix, Base45, layout, canonical form)."""

    reason = "malformed"


class BadTicketSignature(TicketError):
    """The signature does not verify with the issuer key named in the ticket."""

    reason = "bad_signature"


class UnknownTicketKey(BadTicketSignature):
    """The ticket names an issuer key id that is not published (reason ``bad_signature``)."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"issuer key {key_id} is not a published ticket key")
        self.key_id = key_id


class TicketExpired(TicketError):
    """``at`` is at or after ``valid_until``."""

    reason = "expired"


class TicketNotYetValid(TicketError):
    """``at`` is before ``valid_from``."""

    reason = "not_yet_valid"


@dataclass(frozen=True)
class TicketClaims:
    """What a ticket QR asserts.  Times are aware datetimes (naive = +08:00)."""

    ticket_id: str
    permit_id: str
    project_id: str
    plate: str
    disposal_site_id: str
    volume_m3: float
    valid_from: datetime
    valid_until: datetime
    version: int = VERSION


# ---------------------------------------------------------------- primitives


def _varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _digit_bytes(n: int) -> int:
    return (int(10**n - 1).bit_length() + 7) // 8


def _head(tag: int, length: int) -> bytes:
    if length < 31:
        return bytes([tag << 5 | length])
    return bytes([tag << 5 | 31]) + _varint(length - 31)


def _pack40(s: str, alphabet: Mapping[str, int]) -> bytes:
    out = bytearray()
    for i in range(0, len(s), 3):
        group = s[i : i + 3]
        n = 0
        for c in reversed(group):
            n = n * 40 + alphabet[c]
        out += n.to_bytes(1 if len(group) == 1 else 2, "big")
    return bytes(out)


def _enc_str(s: str, what: str) -> bytes:
    if not isinstance(s, str) or not s:
        raise ValueError(f"{what} must be a non-empty string")
    if len(s) > _MAX_STR:
        raise ValueError(f"{what} is longer than {_MAX_STR} characters")
    if s.isascii() and s.isdigit():
        return _head(4, len(s)) + int(s).to_bytes(_digit_bytes(len(s)), "big")
    if _UUID_RE.match(s):
        return _head(3, 0) + bytes.fromhex(s.replace("-", ""))
    if all(c in _B40_VALUE for c in s):
        return _head(1, len(s)) + _pack40(s, _B40_VALUE)
    if all(c in _B40L_VALUE for c in s):
        return _head(2, len(s)) + _pack40(s, _B40L_VALUE)
    raw = s.encode("utf-8")
    if len(raw) > _MAX_STR:
        raise ValueError(f"{what} is longer than {_MAX_STR} bytes")
    return _head(0, len(raw)) + raw


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise MalformedTicket("ticket payload is truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        n = shift = 0
        for _ in range(5):
            b = self.byte()
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
        raise MalformedTicket("varint too long")

    def string(self) -> str:
        head = self.byte()
        tag, length = head >> 5, head & 0x1F
        if length == 31:
            length += self.varint()
        if length > _MAX_STR:
            raise MalformedTicket("string too long")
        if tag == 0:
            try:
                return self.take(length).decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedTicket("string is not UTF-8") from None
        if tag in (1, 2):
            alphabet = _B40 if tag == 1 else _B40L
            chars: list[str] = []
            remaining = length
            while remaining > 0:
                k = min(3, remaining)
                n = int.from_bytes(self.take(1 if k == 1 else 2), "big")
                for _ in range(k):
                    n, v = divmod(n, 40)
                    chars.append(alphabet[v])
                if n:
                    raise MalformedTicket("base-40 group out of range")
                remaining -= k
            return "".join(chars)
        if tag == 3:
            raw = self.take(16).hex()
            return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
        if tag == 4:
            n = int.from_bytes(self.take(_digit_bytes(length)), "big")
            if length == 0 or n >= 10**length:
                raise MalformedTicket("digit string out of range")
            return str(n).zfill(length)
        raise MalformedTicket(f"unknown string tag {tag}")


def _as_aware(t: datetime) -> datetime:
    return t.replace(tzinfo=CHINA_TZ) if t.tzinfo is None else t


def _minutes(t: datetime, *, up: bool) -> int:
    seconds = (_as_aware(t) - EPOCH).total_seconds()
    whole, rest = divmod(seconds, 60)
    return int(whole) + (1 if up and rest else 0)


def _enc_plate(plate: str) -> bytes:
    if not isinstance(plate, str) or not plate:
        raise ValueError("plate must be a non-empty string")
    idx = PROVINCES.find(plate[0])
    if idx >= 0 and len(plate) > 1:
        return bytes([idx + 1]) + _enc_str(plate[1:], "plate")
    return b"\x00" + _enc_str(plate, "plate")


def _deci(volume_m3: float) -> int:
    deci = round(volume_m3 * 10)
    if abs(volume_m3 * 10 - deci) > 1e-6:
        raise ValueError("volume_m3 must have at most one decimal")
    if not 0 < deci <= 0xFFFFF:
        raise ValueError("volume_m3 must be positive and below 100000")
    return deci


def _body(claims: TicketClaims, key_id: str) -> bytes:
    if claims.version != VERSION:
        raise ValueError(f"only version {VERSION} tickets can be encoded")
    if not _KEY_ID_RE.match(key_id):
        raise ValueError("key id must be 16 lower-case hex digits")
    start = _minutes(claims.valid_from, up=False)
    end = _minutes(claims.valid_until, up=True)
    if start < 0:
        raise ValueError("valid_from is before 2024-01-01T00:00+08:00")
    if end <= start:
        raise ValueError("valid_until must be after valid_from")
    return b"".join(
        (
            bytes([VERSION]),
            _enc_str(claims.ticket_id, "ticket_id"),
            _enc_str(claims.permit_id, "permit_id"),
            _enc_str(claims.project_id, "project_id"),
            _enc_plate(claims.plate),
            _enc_str(claims.disposal_site_id, "disposal_site_id"),
            _varint(_deci(claims.volume_m3)),
            _varint(start),
            _varint(end - start),
            bytes.fromhex(key_id),
        )
    )


def signed_bytes(body: bytes) -> bytes:
    """The bytes the issuer signs: a domain-separation prefix and the body."""
    return DOMAIN + body


# ---------------------------------------------------------------- public API


def encode_ticket(claims: TicketClaims, key: PrivateKey) -> str:
    """Sign ``claims`` with the issuer ``key`` and return the QR text (``MT1:...``).

    Raises ValueError for claims that cannot be encoded (empty or too long
    strings, a volume with two decimals, an empty validity window...).
    """
    body = _body(claims, key.key_id)
    return PREFIX + b45encode(body + key.sign(signed_bytes(body)))


def _split(text: str) -> tuple[bytes, bytes]:
    if not isinstance(text, str):
        raise MalformedTicket("ticket must be text")
    if len(text) > MAX_TEXT:
        raise MalformedTicket("ticket text is too long")
    if not text.startswith(PREFIX):
        raise MalformedTicket(f"ticket text must start with {PREFIX!r}")
    try:
        raw = b45decode(text[len(PREFIX) :])
    except Base45Error as exc:
        raise MalformedTicket(f"ticket is not Base45: {exc}") from None
    if len(raw) < SIGNATURE_BYTES + KEY_ID_BYTES + 1:
        raise MalformedTicket("ticket payload is truncated")
    return raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]


def _parse_body(body: bytes) -> tuple[TicketClaims, str]:
    r = _Reader(body)
    if r.byte() != VERSION:
        raise MalformedTicket("unsupported ticket payload version")
    ticket_id = r.string()
    permit_id = r.string()
    project_id = r.string()
    province = r.byte()
    rest = r.string()
    if province > len(PROVINCES):
        raise MalformedTicket("unknown province code in plate")
    plate = (PROVINCES[province - 1] if province else "") + rest
    site = r.string()
    deci = r.varint()
    start = r.varint()
    length = r.varint()
    key_id = r.take(KEY_ID_BYTES).hex()
    if r.pos != len(body):
        raise MalformedTicket("trailing bytes after ticket payload")
    if deci == 0 or length == 0:
        raise MalformedTicket("volume and validity must be positive")
    valid_from = EPOCH + timedelta(minutes=start)
    claims = TicketClaims(
        ticket_id=ticket_id,
        permit_id=permit_id,
        project_id=project_id,
        plate=plate,
        disposal_site_id=site,
        volume_m3=deci / 10,
        valid_from=valid_from,
        valid_until=valid_from + timedelta(minutes=length),
    )
    try:
        canonical = _body(claims, key_id)
    except ValueError as exc:
        raise MalformedTicket(f"ticket payload is invalid: {exc}") from None
    if canonical != body:
        raise MalformedTicket("ticket payload is not in canonical form")
    return claims, key_id


def decode_ticket(text: str) -> tuple[TicketClaims, str, bytes]:
    """Parse a ticket text without verifying it: ``(claims, key_id, signature)``."""
    body, signature = _split(text)
    claims, key_id = _parse_body(body)
    return claims, key_id, signature


def verify_ticket(
    text: str,
    keys: Mapping[str, PublicKey],
    *,
    at: datetime | None = None,
    leeway: timedelta = timedelta(0),
) -> TicketClaims:
    """Verify a ticket text offline and return its claims.

    ``keys`` maps issuer key ids to public keys (the published ``/api/v1/keys``).
    The validity window is checked only when ``at`` is given (naive = +08:00),
    with ``leeway`` of clock skew tolerated on both ends.
    """
    body, signature = _split(text)
    claims, key_id = _parse_body(body)
    key = keys.get(key_id)
    if key is None:
        raise UnknownTicketKey(key_id)
    if not key.verify(signed_bytes(body), signature):
        raise BadTicketSignature(f"ticket signature does not verify with key {key_id}")
    if at is not None:
        when = _as_aware(at)
        if when + leeway < claims.valid_from:
            raise TicketNotYetValid(f"ticket is valid from {claims.valid_from.isoformat()}")
        if when - leeway >= claims.valid_until:
            raise TicketExpired(f"ticket expired at {claims.valid_until.isoformat()}")
    return claims
