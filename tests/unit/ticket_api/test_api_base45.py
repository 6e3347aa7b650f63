"""Base45 (RFC 9285) encoder and strict decoder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.qrticket.base45 import ALPHABET, Base45Error, b45decode, b45encode

RFC_EXAMPLES = [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
    (b"", ""),
]


@pytest.mark.parametrize(("raw", "text"), RFC_EXAMPLES)
def test_rfc9285_examples_encode_and_decode(raw: bytes, text: str) -> None:
    """The examples of RFC 9285 sections 4.3 and 4.4 encode and decode exactly."""
    assert b45encode(raw) == text
    assert b45decode(text) == raw


@pytest.mark.parametrize(
    "bad",
    ["GGW", "GG", "A", "BB8A", "bb8", "BB8\n", "ÄBC", "BB#"],
)
def test_decoder_is_strict(bad: str) -> None:
    """Overflowing triplets/pairs, a length of 1 mod 3 and foreign characters are refused."""
    with pytest.raises(Base45Error):
        b45decode(bad)


def test_alphabet_is_the_qr_alphanumeric_set() -> None:
    """The 45 characters are exactly QR alphanumeric mode's."""
    assert ALPHABET == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


@given(st.binary(max_size=300))
def test_round_trip_any_bytes(data: bytes) -> None:
    """Any bytes survive encode/decode and the text uses only the alphabet."""
    text = b45encode(data)
    assert set(text) <= set(ALPHABET)
    assert b45decode(text) == data
