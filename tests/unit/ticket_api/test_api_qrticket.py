"""The signed QR ticket payload: layout, round trip, size and every refusal of verify_ticket."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.qrticket.base45 import b45decode, b45encode
from ledger.qrticket.ticket import (
    CHINA_TZ,
    DOMAIN,
    PREFIX,
    PROVINCES,
    BadTicketSignature,
    MalformedTicket,
    TicketClaims,
    TicketExpired,
    TicketNotYetValid,
    UnknownTicketKey,
    decode_ticket,
    encode_ticket,
    signed_bytes,
    verify_ticket,
)
from ticket_api.issuer import qr_version
from ticket_api.testing import NIGHT, issuer_key, sample_claims

KEY = issuer_key()
KEYS = {KEY.key_id: KEY.public_key}

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,40}\Z")
plates = st.builds(
    lambda p, rest: p + rest,
    st.sampled_from(PROVINCES[:31]),
    st.from_regex(r"\A[A-Z][A-Z0-9]{5,6}\Z"),
)
times = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2040, 1, 1)).map(
    lambda t: t.replace(second=0, microsecond=0, tzinfo=CHINA_TZ)
)
claims_strategy = st.builds(
    TicketClaims,
    ticket_id=ids,
    permit_id=ids,
    project_id=ids,
    plate=plates | st.text(min_size=1, max_size=10).filter(lambda s: len(s.encode()) <= 64),
    disposal_site_id=ids,
    volume_m3=st.integers(1, 4000).map(lambda n: n / 10),
    valid_from=times,
    valid_until=st.just(None),
).map(lambda c: TicketClaims(**{**c.__dict__, "valid_until": c.valid_from + timedelta(hours=24)}))


def resign(body: bytes) -> str:
    return PREFIX + b45encode(body + KEY.sign(signed_bytes(body)))


@settings(max_examples=150)
@given(claims_strategy)
def test_round_trip(claims: TicketClaims) -> None:
    """Any encodable claims come back unchanged from verify_ticket and decode_ticket."""
    text = encode_ticket(claims, KEY)
    assert text.startswith(PREFIX)
    assert verify_ticket(text, KEYS) == claims
    decoded, key_id, sig = decode_ticket(text)
    assert decoded == claims and key_id == KEY.key_id and len(sig) == 64


def test_text_uses_only_qr_alphanumeric_characters() -> None:
    """The QR text is MT1: + Base45, nothing a QR alphanumeric segment cannot hold."""
    text = encode_ticket(sample_claims(), KEY)
    assert set(text) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


@pytest.mark.parametrize(
    ("overrides", "max_version"),
    [
        ({}, 9),
        ({"ticket_id": "ET202611230001234", "permit_id": "PM-2026-000123", "project_id": "P-2026-0042"}, 10),
        ({"plate": "渝AD12345", "disposal_site_id": "S-099", "volume_m3": 19.5}, 9),
        ({"ticket_id": "3f2b6c1e-9a4d-4c1e-8f00-123456789abc", "permit_id": "PM-2026-0001"}, 10),
    ],
)
def test_realistic_tickets_fit_qr_version_10_at_level_q(
    overrides: dict[str, object], max_version: int
) -> None:
    """Realistic ids (docs/ETICKET.md style, or a UUID ticket id) need QR version <= 10 at level Q."""
    text = encode_ticket(sample_claims(**overrides), KEY)
    assert qr_version(text) <= max_version


def test_plate_with_province_is_compact() -> None:
    """渝A12345 costs 6 bytes (province index, header, 4 packed bytes), as little as A12345."""
    a = len(b45decode(encode_ticket(sample_claims(plate="渝A12345"), KEY)[4:]))
    b = len(b45decode(encode_ticket(sample_claims(plate="A12345"), KEY)[4:]))
    c = len(b45decode(encode_ticket(sample_claims(plate="渝A1234学"), KEY)[4:]))
    assert a == b
    assert c == a + 4  # a Chinese suffix falls back to UTF-8 for the rest: 1 + 1 + 8 bytes


def test_times_round_to_whole_minutes() -> None:
    """valid_from rounds down and valid_until up to whole minutes (+08:00)."""
    claims = sample_claims(
        valid_from=NIGHT + timedelta(seconds=59), valid_until=NIGHT + timedelta(hours=1, seconds=1)
    )
    got = verify_ticket(encode_ticket(claims, KEY), KEYS)
    assert got.valid_from == NIGHT
    assert got.valid_until == NIGHT + timedelta(hours=1, minutes=1)
    assert got.valid_from.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    "overrides",
    [
        {"volume_m3": 12.25},
        {"volume_m3": 0},
        {"ticket_id": ""},
        {"ticket_id": "x" * 65},
        {"valid_until": NIGHT},
        {"valid_from": datetime(2023, 12, 31, tzinfo=CHINA_TZ)},
    ],
)
def test_unencodable_claims_raise_value_error(overrides: dict[str, object]) -> None:
    """Two decimals, empty or too long ids and empty windows cannot be encoded."""
    with pytest.raises(ValueError):
        encode_ticket(sample_claims(**overrides), KEY)


GOOD = encode_ticket(sample_claims(), KEY)
BODY = b45decode(GOOD[len(PREFIX) :])[:-64]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "MT2:" + GOOD[4:],
        "mt1:" + GOOD[4:],
        GOOD[4:],
        GOOD + "A",
        GOOD.lower(),
        "MT1:" + b45encode(b"\x01" * 20),
        PREFIX + "GGW",
        GOOD[:-30],
        "X" * 5000,
    ],
)
def test_malformed_texts(text: str) -> None:
    """Wrong prefix, bad Base45, truncated or oversize texts are refused as malformed."""
    with pytest.raises(MalformedTicket) as info:
        verify_ticket(text, KEYS)
    assert info.value.reason == "malformed"


@pytest.mark.parametrize(
    "body",
    [
        BODY + b"\x00",  # trailing byte
        b"\x02" + BODY[1:],  # unknown payload version
        BODY[:1]
        + bytes([0x00 | 14])
        + b"ET202611230001"
        + BODY[1 + 1 + 10 :],  # UTF-8 where base-40 is canonical
    ],
)
def test_non_canonical_or_unknown_layouts_are_malformed_even_when_signed(body: bytes) -> None:
    """A correctly signed but non-canonical or unknown layout is still malformed."""
    with pytest.raises(MalformedTicket):
        verify_ticket(resign(body), KEYS)


def test_forged_signature_is_bad_signature() -> None:
    """A signature by another key under the issuer's key id is refused bad_signature."""
    forger = issuer_key("forger")
    forged = PREFIX + b45encode(BODY + forger.sign(signed_bytes(BODY)))
    with pytest.raises(BadTicketSignature) as info:
        verify_ticket(forged, KEYS)
    assert info.value.reason == "bad_signature"


def test_altered_field_is_bad_signature() -> None:
    """Changing one field (the volume) after signing breaks the signature."""
    claims = sample_claims()
    text = encode_ticket(claims, KEY)
    raw = b45decode(text[4:])
    body, sig = raw[:-64], raw[-64:]
    altered_body = body.replace(bytes([160, 1]), bytes([200, 1]))  # 16.0 m3 -> 20.0 m3 (varints)
    assert altered_body != body
    with pytest.raises(BadTicketSignature):
        verify_ticket(PREFIX + b45encode(altered_body + sig), KEYS)


def test_unknown_key_id_is_bad_signature_with_a_distinct_class() -> None:
    """An issuer key id that is not published: reason bad_signature, class UnknownTicketKey."""
    other = issuer_key("retired")
    with pytest.raises(UnknownTicketKey) as info:
        verify_ticket(encode_ticket(sample_claims(), other), KEYS)
    assert info.value.reason == "bad_signature"
    assert info.value.key_id == other.key_id


def test_signature_is_domain_separated() -> None:
    """The signature covers DOMAIN + body, not the bare body."""
    raw = b45decode(GOOD[4:])
    assert KEY.public_key.verify(DOMAIN + raw[:-64], raw[-64:])
    assert not KEY.public_key.verify(raw[:-64], raw[-64:])


def test_expiry_only_when_at_is_given() -> None:
    """Without ``at`` no clock is read; with it, the window [valid_from, valid_until) holds."""
    claims = sample_claims()
    assert verify_ticket(GOOD, KEYS) == claims
    assert verify_ticket(GOOD, KEYS, at=claims.valid_from) == claims
    with pytest.raises(TicketExpired) as info:
        verify_ticket(GOOD, KEYS, at=claims.valid_until)
    assert info.value.reason == "expired"
    with pytest.raises(TicketNotYetValid) as info2:
        verify_ticket(GOOD, KEYS, at=claims.valid_from - timedelta(minutes=1))
    assert info2.value.reason == "not_yet_valid"


def test_leeway_tolerates_clock_skew_and_naive_times_are_china_time() -> None:
    """A gate clock two minutes late still accepts; naive ``at`` is read as +08:00."""
    claims = sample_claims()
    late = claims.valid_until + timedelta(minutes=1)
    assert verify_ticket(GOOD, KEYS, at=late, leeway=timedelta(minutes=2)) == claims
    naive = claims.valid_from.replace(tzinfo=None)
    assert verify_ticket(GOOD, KEYS, at=naive) == claims
