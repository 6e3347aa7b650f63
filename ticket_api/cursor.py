"""Opaque page cursors of the work lists (``GET /api/v1/permits``, ``/tickets`` …).

A cursor is the URL-safe base64 (no padding) of ``{"v": 1, "l": list, "f": fingerprint, "a": [n, id]}``:
the list it belongs to, a fingerprint of the caller's scope and filters, and the sort key of the last item
served (``ledger.eticket.lists``).  It is not a secret and needs no signature: the ledger applies the
caller's tenant scope on every page, so a forged cursor only moves within what the caller may see anyway.
A cursor of another list, of other filters or another tenant, or one that is not ours at all answers
``400 bad_cursor``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ticket_api.errors import ApiError

VERSION = 1
MAX_LENGTH = 512
MAX_ID = 200
MAX_N = 2**53


class BadCursor(ApiError):
    reason = "bad_cursor"


def fingerprint(list_name: str, scope: Mapping[str, Any] | None, filters: Mapping[str, Any]) -> str:
    """16 hex digits naming the list, scope and filters a cursor was made for (canonical JSON, SHA-256)."""
    doc = json.dumps({"l": list_name, "s": scope or {}, "f": filters}, sort_keys=True, ensure_ascii=False,
                     separators=(",", ":"), default=str)
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()[:16]


def encode(list_name: str, fp: str, after: tuple[int, str]) -> str:
    """The cursor continuing ``list_name`` after the key ``after``."""
    raw = json.dumps({"v": VERSION, "l": list_name, "f": fp, "a": [after[0], after[1]]}, ensure_ascii=False,
                     separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(text: str, list_name: str, fp: str) -> tuple[int, str]:
    """The key a cursor continues after; :class:`BadCursor` unless it is ours, for this list and these filters."""
    if not text or len(text) > MAX_LENGTH or not text.isascii():
        raise BadCursor("cursor empty, too long or not ASCII", fields={"cursor": ["not a cursor"]})
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        doc: Any = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise BadCursor("cursor not decodable", fields={"cursor": ["not a cursor"]}) from exc
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise BadCursor("cursor of no known version", fields={"cursor": ["not a cursor"]})
    if doc.get("l") != list_name or doc.get("f") != fp:
        raise BadCursor("cursor of another list or other filters",
                        fields={"cursor": ["made for another list or other filters"]})
    after = doc.get("a")
    if (not isinstance(after, list) or len(after) != 2 or type(after[0]) is not int or abs(after[0]) > MAX_N
            or not isinstance(after[1], str) or not 0 < len(after[1]) <= MAX_ID):
        raise BadCursor("cursor key malformed", fields={"cursor": ["not a cursor"]})
    return after[0], after[1]
