"""ledger.core.transaction: signed envelopes, strict decoding, admission checks, split_leaf."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.crypto import PrivateKey
from ledger.core.encoding import b64, canonical
from ledger.core.transaction import TX_CONTEXT, Transaction, parse_time, split_leaf
from ledger.errors import (
    BadSignature,
    Forbidden,
    LedgerError,
    MalformedTransaction,
    OversizePayload,
    UnknownSigner,
)
from ledger.testing import Throwaway, throwaway_consortium

TS = "2026-11-23T22:15:00.000+08:00"

json_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | json_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_text, inner, max_size=3),
    max_leaves=12,
)
# Payloads that deliberately look like envelopes: a nested "signature" object with "alg", etc.
fake_sig = st.fixed_dictionaries({"alg": st.sampled_from(["ed25519", "x}", '"', ""]), "value": json_text})
payloads = st.dictionaries(
    json_text | st.sampled_from(["signature", "submitter", "type", "payload"]),
    json_values | fake_sig | st.fixed_dictionaries({"signature": fake_sig}),
    max_size=5,
)


def make(t: Throwaway, payload: dict[str, Any] | None = None, **kw: Any) -> Transaction:
    args: dict[str, Any] = {
        "key": t.gateway, "type": "ticket.issue", "payload": payload if payload is not None else {"n": 1},
        "actor": "contractor:渝建工", "timestamp": TS,
    }
    args.update(kw)
    return Transaction.create(**args)


def envelope(t: Throwaway) -> dict[str, Any]:
    return make(t).to_dict()


def test_create_decode_round_trip(t: Throwaway) -> None:
    """decode(encode(tx)) == tx, with the same id, and the signature passes admission."""
    tx = make(t, {"ticket_id": "T1", "plate": "渝A12345", "volume_m3": 15.5})
    data = tx.encode()
    back = Transaction.decode(data)
    assert back == tx
    assert back.tx_id == tx.tx_id == hashlib.sha256(tx.signed_content).hexdigest()
    assert back.encode() == data
    assert tx.check(t.consortium).name == "gateway"
    assert Transaction.from_dict(tx.to_dict()) == tx


def test_signed_message_is_domain_separated(t: Throwaway) -> None:
    """The signature is over TX_CONTEXT || canonical content, nothing else."""
    tx = make(t)
    assert t.gateway.public_key.verify(TX_CONTEXT + tx.signed_content, tx.signature.value)
    assert not t.gateway.public_key.verify(tx.signed_content, tx.signature.value)


def test_nonce_makes_ids_unique(t: Throwaway) -> None:
    """Two otherwise identical transactions get different nonces and ids."""
    assert make(t).tx_id != make(t).tx_id
    assert make(t, nonce="ab" * 8).tx_id == make(t, nonce="ab" * 8).tx_id


# -- malformed -----------------------------------------------------------------

BAD_FIELDS: list[tuple[str, Any]] = [
    ("type", "Ticket.Issue"), ("type", "ticket..issue"), ("type", "ticket.issue\n"), ("type", ""),
    ("type", 5), ("type", "a.b.c.d.e"),
    ("payload", []), ("payload", "x"), ("payload", None),
    ("submitter", "ABCDEF0123456789"), ("submitter", "abc"), ("submitter", 1), ("submitter", "0123456789abcdef\n"),
    ("actor", ""), ("actor", "x" * 129), ("actor", None),
    ("nonce", "short"), ("nonce", "G" * 16), ("nonce", "0123456789abcdef\n"), ("nonce", "0" * 65), ("nonce", 7),
    ("timestamp", "2026-11-23T22:15:00"), ("timestamp", "2026-11-23 22:15:00+08:00"),
    ("timestamp", "2026-13-23T22:15:00+08:00"), ("timestamp", "2026-11-23T22:15:00+08:00\n"),
    ("timestamp", 1700000000),
    ("signature", "sig"), ("signature", {"alg": "ed25519"}), ("signature", {"alg": "ed25519", "value": "!!"}),
    ("signature", {"alg": "ed25519", "value": "AA==", "extra": 1}), ("signature", {"alg": 1, "value": "AA=="}),
    ("signature", {"alg": "ed25519", "value": 12}),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_every_malformed_field_is_malformed_transaction(t: Throwaway, field: str, value: Any) -> None:
    """Each ill-typed or ill-formatted field raises MalformedTransaction (reason 'malformed'),
    both from the wire dict and from canonical bytes."""
    d = envelope(t)
    d[field] = value
    with pytest.raises(MalformedTransaction) as info:
        Transaction.from_dict(d)
    assert info.value.reason == "malformed"
    assert info.value.message
    try:
        data = canonical(d)
    except LedgerError:
        return
    with pytest.raises(MalformedTransaction):
        Transaction.decode(data)


@pytest.mark.parametrize("field", ["type", "payload", "submitter", "actor", "nonce", "timestamp", "signature"])
def test_missing_field(t: Throwaway, field: str) -> None:
    """A missing member is named in the error."""
    d = envelope(t)
    del d[field]
    with pytest.raises(MalformedTransaction, match=field):
        Transaction.from_dict(d)


def test_unknown_field(t: Throwaway) -> None:
    """An extra member is refused and named."""
    d = envelope(t)
    d["memo"] = "hi"
    with pytest.raises(MalformedTransaction, match="memo"):
        Transaction.from_dict(d)


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b"null", b'"tx"', b"{", b"\xff", b'{"a":1,"a":1}', b'{"payload":NaN}'],
)
def test_decode_garbage_is_malformed(data: bytes) -> None:
    """Bytes that are not a JSON object envelope raise MalformedTransaction."""
    with pytest.raises(MalformedTransaction):
        Transaction.decode(data)


def test_decode_refuses_non_canonical_bytes(t: Throwaway) -> None:
    """The same envelope pretty-printed or with unsorted members is refused."""
    import json

    tx = make(t)
    for data in (json.dumps(tx.to_dict(), indent=1).encode(), json.dumps(tx.to_dict()).encode()):
        with pytest.raises(MalformedTransaction, match="canonical"):
            Transaction.decode(data)


def test_payload_without_canonical_form_cannot_be_created(t: Throwaway) -> None:
    """NaN or unsafe integers in a payload raise MalformedTransaction at creation."""
    for bad in ({"x": float("nan")}, {"x": 2**60}, {"x": b"raw"}):
        with pytest.raises(MalformedTransaction):
            make(t, bad)


def test_large_float_payload_round_trips(t: Throwaway) -> None:
    """A payload float of 1e16 (written as digits) decodes back to the same transaction (regression)."""
    tx = make(t, {"weight_g": 1e16})
    assert Transaction.decode(tx.encode()).tx_id == tx.tx_id


def test_parse_time() -> None:
    """Times need an offset; the parsed datetime keeps it."""
    assert parse_time("2026-11-23T22:15:00+08:00").utcoffset() is not None
    assert parse_time("2026-11-23T14:15:00.123456Z").microsecond == 123456
    with pytest.raises(MalformedTransaction):
        parse_time("2026-11-23T25:15:00+08:00")


# -- admission -----------------------------------------------------------------

def test_oversize_payload() -> None:
    """A payload over max_payload_bytes raises OversizePayload (a MalformedTransaction), reason oversize_payload."""
    small = throwaway_consortium(nodes=1, parameters={"max_payload_bytes": 100, "max_block_txs": 10})
    ok = make(small, {"pad": "x" * 80})
    ok.check(small.consortium)
    big = make(small, {"pad": "x" * 100})
    with pytest.raises(OversizePayload, match="100") as info:
        big.check(small.consortium)
    assert info.value.reason == "oversize_payload"
    assert isinstance(info.value, MalformedTransaction)


def test_unknown_signer(t: Throwaway) -> None:
    """A key that is not a member raises UnknownSigner with its key id."""
    stranger = PrivateKey.generate()
    tx = make(t, key=stranger)
    with pytest.raises(UnknownSigner, match=stranger.key_id) as info:
        tx.check(t.consortium)
    assert info.value.reason == "unknown_signer"


def test_forbidden_by_role_policy() -> None:
    """A member whose roles the policy does not allow for the type raises Forbidden."""
    from ledger.core.consortium import MemberSpec, create

    c, keys = create(
        name="p", origin="o",
        members=[MemberSpec("n", "N", ["node"]), MemberSpec("gate1", "G", ["gate"]),
                 MemberSpec("gw", "W", ["gateway"])],
        policy={"gate.*": ["gate"], "ticket.issue": ["gateway"], "*": ["admin"]},
    )
    t2 = Throwaway(consortium=c, keys=keys)
    Transaction.create(key=keys["gate1"], type="gate.exit", payload={}, actor="a", timestamp=TS).check(c)
    Transaction.create(key=keys["gw"], type="ticket.issue", payload={}, actor="a", timestamp=TS).check(c)
    for key, typ in ((keys["gate1"], "ticket.issue"), (keys["gw"], "gate.exit"), (keys["n"], "other.thing")):
        tx = Transaction.create(key=key, type=typ, payload={}, actor="a", timestamp=TS)
        with pytest.raises(Forbidden, match=typ) as info:
            tx.check(t2.consortium)
        assert info.value.reason == "forbidden"


def test_bad_signature(t: Throwaway) -> None:
    """A flipped signature bit, or content changed after signing, raises BadSignature."""
    tx = make(t)
    d = tx.to_dict()
    sig = bytearray(tx.signature.value)
    sig[10] ^= 1
    d["signature"]["value"] = b64(bytes(sig))
    with pytest.raises(BadSignature) as info:
        Transaction.from_dict(d).check(t.consortium)
    assert info.value.reason == "bad_signature"
    d = tx.to_dict()
    d["payload"] = {"n": 2}
    with pytest.raises(BadSignature):
        Transaction.from_dict(d).check(t.consortium)


def test_wrong_signature_algorithm_is_bad_signature(t: Throwaway) -> None:
    """A signature claiming another algorithm than the member's key is BadSignature."""
    d = make(t).to_dict()
    d["signature"]["alg"] = "sm2"
    with pytest.raises(BadSignature):
        Transaction.from_dict(d).check(t.consortium)


def test_signature_by_another_member_is_bad(t: Throwaway) -> None:
    """Submitter says gateway but a node signed: BadSignature."""
    tx = make(t)
    other = t.keys["chengguan"].sign(TX_CONTEXT + tx.signed_content)
    d = tx.to_dict()
    d["signature"]["value"] = b64(other)
    with pytest.raises(BadSignature):
        Transaction.from_dict(d).check(t.consortium)


# -- split_leaf ----------------------------------------------------------------

@given(payload=payloads)
@settings(max_examples=300, deadline=None)
def test_split_leaf_recovers_signed_content(payload: dict[str, Any]) -> None:
    """For any payload, even one holding its own "signature" objects, split_leaf(tx.encode())
    yields exactly the signed content, submitter, algorithm and signature."""
    tx = make(_T, payload)
    parts = split_leaf(tx.encode())
    assert parts.content == tx.signed_content
    assert parts.submitter == tx.submitter
    assert parts.alg == tx.signature.alg
    assert parts.signature == tx.signature.value


@pytest.mark.parametrize("body", [b"", b"{}", b'{"a":1}', b'{"x":1,"signature":{"alg":"ed25519"}', b"\xff" * 10])
def test_split_leaf_garbage_is_malformed(body: bytes) -> None:
    """Bodies without a parsable top-level signature raise MalformedTransaction."""
    with pytest.raises(MalformedTransaction):
        split_leaf(body)


def test_split_leaf_incomplete_is_malformed(t: Throwaway) -> None:
    """A signature object without its value, or a body without submitter, is MalformedTransaction."""
    with pytest.raises(MalformedTransaction):
        split_leaf(b'{"actor":"a","signature":{"alg":"ed25519","x":"y"},"submitter":"0123456789abcdef"}')
    with pytest.raises(MalformedTransaction):
        split_leaf(b'{"actor":"a","signature":{"alg":"ed25519","value":"AA=="},"type":"t"}')


_T = throwaway_consortium(nodes=1)
