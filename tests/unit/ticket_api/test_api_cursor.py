"""Page cursors (``ticket_api.cursor``): opaque, round-trip, bound to their list and filters, hostile text
refused as ``bad_cursor``."""

from __future__ import annotations

import base64
import json

import pytest

from ticket_api import cursor
from ticket_api.cursor import BadCursor

FP = cursor.fingerprint("ticket:newest", {"org": "ORG-001"}, {"status": "issued"})


def test_round_trip_and_opaque() -> None:
    """A cursor decodes to the key it was made from; it is URL-safe text holding no padding."""
    text = cursor.encode("ticket", FP, (-1795435210, "ORG-001:渝A-票"))
    assert cursor.decode(text, "ticket", FP) == (-1795435210, "ORG-001:渝A-票")
    assert "=" not in text and text.isascii() and "/" not in text and "+" not in text


def test_fingerprint_names_list_scope_and_filters() -> None:
    """Another list, another tenant or other filters make another fingerprint; the order of filters does not."""
    assert cursor.fingerprint("ticket:newest", {"org": "ORG-002"}, {"status": "issued"}) != FP
    assert cursor.fingerprint("ticket:newest", {"org": "ORG-001"}, {"status": "voided"}) != FP
    assert cursor.fingerprint("permit:newest", {"org": "ORG-001"}, {"status": "issued"}) != FP
    a = cursor.fingerprint("ticket:newest", None, {"a": 1, "b": 2})
    assert a == cursor.fingerprint("ticket:newest", None, {"b": 2, "a": 1})


def _b64(doc: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("text", [
    "", "x" * 513, "不是游标", "!!!!", _b64([1, 2]), _b64({"v": 2, "l": "ticket", "f": FP, "a": [1, "T"]}),
    _b64({"v": 1, "l": "permit", "f": FP, "a": [1, "T"]}), _b64({"v": 1, "l": "ticket", "f": "0" * 16, "a": [1, "T"]}),
    _b64({"v": 1, "l": "ticket", "f": FP, "a": [1.5, "T"]}), _b64({"v": 1, "l": "ticket", "f": FP, "a": [True, "T"]}),
    _b64({"v": 1, "l": "ticket", "f": FP, "a": [2**60, "T"]}), _b64({"v": 1, "l": "ticket", "f": FP, "a": [1, ""]}),
    _b64({"v": 1, "l": "ticket", "f": FP, "a": [1, "T" * 201]}), _b64({"v": 1, "l": "ticket", "f": FP}),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(), _b64("[" * 300),
])
def test_hostile_or_foreign_cursors_are_bad_cursor(text: str) -> None:
    """Text that is not a cursor, a cursor of another version, list or filters, or one whose key is not
    ``[int, non-empty id]`` raises ``bad_cursor`` (400), naming the ``cursor`` field."""
    with pytest.raises(BadCursor) as err:
        cursor.decode(text, "ticket", FP)
    assert err.value.reason == "bad_cursor" and err.value.http_status == 400
    assert "cursor" in (err.value.fields or {})
