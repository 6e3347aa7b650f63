"""The personal-data screen: what the chain (kept forever, read by every member) must never hold.

Pure and deterministic: every node runs it in its rules (:mod:`ledger.eticket.machine`) and the API runs
the same function before it signs, so a submission is refused the same way everywhere, with reason
``personal_data`` and the path of the field (never the value).  What is recognised
(docs/ETICKET.md "Personal data"):

- Chinese resident ID numbers (GB 11643): 18 characters (17 digits and a check digit ``0-9X``) with a
  province code, a real date of birth and the ISO 7064 MOD 11-2 check digit; and the old 15-digit form
  (province code, ``YYMMDD`` date of birth in the 1900s);
- mainland mobile numbers ``1[3-9]`` and 9 digits, with an optional ``+86`` / ``86`` / ``0086`` prefix and
  spaces or hyphens between the groups (``138 0013 8000``, ``+86-138-0013-8000``);
- e-mail addresses;
- bank card numbers: 16 to 19 digits (spaces or hyphens allowed between) starting with 3-6, passing Luhn.

A number counts only as a whole: digits right before or after it make it part of a longer number (a
violation id ``LZZTC2026112322103100042``, a ticket id ``ET202611232210054711``), so these never match.
Text is NFKC-normalised first, so full-width digits ``１３８…`` are caught too.  Digest, plate and credit-code
fields hold no personal data by construction and are not screened.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

from ledger.eticket.errors import PersonalData

#: Payload members that are not free text or ids: digests, plates, public company codes, GPS points.
UNSCREENED = frozenset({"person_hash", "photo_digest", "evidence", "sha256", "plate", "credit_code", "points",
                        # key ids, public keys and signatures (hex / base64; their schemas allow nothing else)
                        "key_id", "public_key", "act_sig"})

#: GB/T 2260 province-level codes (first two digits of an ID number).
PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54,
     61, 62, 63, 64, 65, 71, 81, 82, 83, 91}
)
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"

_ID18 = re.compile(r"(?<!\d)(\d{6})(\d{8})(\d{3})([0-9Xx])(?![0-9Xx])")
_ID15 = re.compile(r"(?<!\d)(\d{6})(\d{6})(\d{3})(?!\d)")
_MOBILE = re.compile(r"(?<!\d)(?:(?:\+|00)?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![A-Za-z0-9])[3-6](?:[ -]?\d){15,18}(?![A-Za-z0-9])")


def id_check_digit(first17: str) -> str:
    """The GB 11643 check character (ISO 7064 MOD 11-2) of the first 17 digits of an ID number."""
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def _real_date(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _is_id18(m: re.Match[str]) -> bool:
    region, born, seq, check = m.groups()
    y, mo, d = int(born[:4]), int(born[4:6]), int(born[6:])
    return (
        int(region[:2]) in PROVINCES
        and 1900 <= y <= 2099
        and _real_date(y, mo, d)
        and id_check_digit(region + born + seq) == check.upper()
    )


def _is_id15(m: re.Match[str]) -> bool:
    region, born, _ = m.groups()
    return int(region[:2]) in PROVINCES and _real_date(1900 + int(born[:2]), int(born[2:4]), int(born[4:]))


def luhn(digits: str) -> bool:
    """The Luhn (mod 10) check of a digit string."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        n = int(c)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _is_card(m: re.Match[str]) -> bool:
    digits = m.group(0).replace(" ", "").replace("-", "")
    return 16 <= len(digits) <= 19 and luhn(digits)


def find(text: str) -> str | None:
    """The kind of personal data in ``text`` (``id_number``, ``mobile``, ``email``, ``bank_card``) or None."""
    if "@" not in text and sum(map(str.isdigit, text)) < 11:
        return None  # the common case: a name, a sentence, an id or a plate (an ID or mobile has >= 11 digits)
    t = unicodedata.normalize("NFKC", text)
    if any(_is_id18(m) for m in _ID18.finditer(t)) or any(_is_id15(m) for m in _ID15.finditer(t)):
        return "id_number"
    if _MOBILE.search(t):
        return "mobile"
    if "@" in t and _EMAIL.search(t):
        return "email"
    if any(_is_card(m) for m in _CARD.finditer(t)):
        return "bank_card"
    return None


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if str(k) not in UNSCREENED:
                yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def screen(payload: Mapping[str, Any], actor: str | None = None) -> None:
    """Raise :class:`PersonalData` naming the first field (in payload order; then ``actor``) that holds
    personal data; screens every string of the payload except the :data:`UNSCREENED` members."""
    for path, text in _strings(payload, ""):
        kind = find(text)
        if kind is not None:
            raise PersonalData(path, kind)
    if actor is not None:
        kind = find(actor)
        if kind is not None:
            raise PersonalData("actor", kind)
