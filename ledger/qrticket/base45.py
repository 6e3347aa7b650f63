"""Base45 (RFC 9285): strict encoder and decoder.

The 45 characters are exactly the QR code alphanumeric-mode alphabet, so a
Base45 text fits a QR symbol in alphanumeric mode (5.5 bits a character).
"""

from __future__ import annotations

from ledger.qrticket.errors import QrTicketError

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}


class Base45Error(QrTicketError, ValueError):
    """Text that is not strict Base45 (reason ``malformed``; still a ``ValueError``, as it always was)."""

    reason = "malformed"


def b45encode(data: bytes) -> str:
    """Encode bytes as Base45 text (RFC 9285 section 4)."""
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        e, n = divmod(n, 45 * 45)
        d, c = divmod(n, 45)
        out.append(ALPHABET[c] + ALPHABET[d] + ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out.append(ALPHABET[c] + ALPHABET[d])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Decode strict Base45; anything else raises :class:`Base45Error`.

    Rejected: characters outside the alphabet (lower case included), a length
    of 1 modulo 3, and triplets or pairs whose value overflows (RFC 9285
    section 4.2: "GGW" is 65536, "GG" 1035; both are invalid).
    """
    if not isinstance(text, str):
        raise Base45Error("Base45 input must be text")
    if len(text) % 3 == 1:
        raise Base45Error("Base45 text length must not be 1 modulo 3")
    try:
        values = [_VALUE[c] for c in text]
    except KeyError as exc:
        raise Base45Error(f"character {exc.args[0]!r} is not in the Base45 alphabet") from None
    out = bytearray()
    full = len(values) - len(values) % 3
    for i in range(0, full, 3):
        n = values[i] + values[i + 1] * 45 + values[i + 2] * 45 * 45
        if n > 0xFFFF:
            raise Base45Error(f"Base45 triplet at {i} exceeds 65535")
        out += n.to_bytes(2, "big")
    if full < len(values):
        n = values[full] + values[full + 1] * 45
        if n > 0xFF:
            raise Base45Error(f"Base45 pair at {full} exceeds 255")
        out.append(n)
    return bytes(out)
