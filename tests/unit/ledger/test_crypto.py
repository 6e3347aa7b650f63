"""ledger.core.crypto: Ed25519 keys, signatures, key ids, PEM, digests."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.crypto import (
    ED25519,
    SHA256,
    PrivateKey,
    PublicKey,
    digest,
    key_id_for,
    register_digest,
    verify_raw,
)
from ledger.errors import ConsortiumError, UnsupportedAlgorithm
from ledger.store.keyfiles import read_private_key, write_private_key

SEED = bytes(range(32))
KEY = PrivateKey(alg=ED25519, seed=SEED)

# RFC 8032 section 7.1, TEST 1 (empty message).
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUB = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_rfc8032_test_vector() -> None:
    """Key derivation and signing match RFC 8032 TEST 1."""
    k = PrivateKey(alg=ED25519, seed=RFC8032_SEED)
    assert k.public_key.raw == RFC8032_PUB
    assert k.sign(b"") == RFC8032_SIG
    assert verify_raw(ED25519, RFC8032_PUB, b"", RFC8032_SIG)


@given(st.binary(max_size=512))
@settings(max_examples=50, deadline=None)
def test_sign_verify_round_trip(message: bytes) -> None:
    """A signature verifies over its message and is deterministic."""
    sig = KEY.sign(message)
    assert len(sig) == 64
    assert sig == KEY.sign(message)
    assert KEY.public_key.verify(message, sig)
    KEY.public_key.require(message, sig)


@given(st.binary(min_size=1, max_size=128), st.data())
@settings(max_examples=50, deadline=None)
def test_any_flipped_bit_fails(message: bytes, data: st.DataObject) -> None:
    """Flipping any bit of the signature or of the message makes verification fail."""
    sig = KEY.sign(message)
    i = data.draw(st.integers(0, 64 * 8 - 1))
    bad_sig = bytearray(sig)
    bad_sig[i // 8] ^= 1 << (i % 8)
    assert not KEY.public_key.verify(message, bytes(bad_sig))
    j = data.draw(st.integers(0, len(message) * 8 - 1))
    bad_msg = bytearray(message)
    bad_msg[j // 8] ^= 1 << (j % 8)
    assert not KEY.public_key.verify(bytes(bad_msg), sig)


def test_tampered_signature_raises_bad_signature() -> None:
    """require() raises BadSignature naming the key id."""
    from ledger.errors import BadSignature

    sig = bytearray(KEY.sign(b"ticket"))
    sig[0] ^= 0xFF
    with pytest.raises(BadSignature, match=KEY.key_id) as info:
        KEY.public_key.require(b"ticket", bytes(sig))
    assert info.value.reason == "bad_signature"


@pytest.mark.parametrize("sig", [b"", b"\x00" * 63, b"\x00" * 65, b"\x00" * 64])
def test_wrong_length_or_zero_signature_is_false_not_exception(sig: bytes) -> None:
    """Malformed signatures verify False rather than raising."""
    assert verify_raw(ED25519, KEY.public_key.raw, b"m", sig) is False


def test_other_keys_signature_fails() -> None:
    """A signature by another key does not verify."""
    other = PrivateKey.generate()
    assert not KEY.public_key.verify(b"m", other.sign(b"m"))


def test_key_id_is_stable_and_documented() -> None:
    """The key id is the first 16 hex digits of SHA-256(alg || 0 || raw key), forever."""
    raw = KEY.public_key.raw
    want = hashlib.sha256(b"ed25519\x00" + raw).hexdigest()[:16]
    assert KEY.key_id == KEY.public_key.key_id == key_id_for(ED25519, raw) == want
    assert PrivateKey(alg=ED25519, seed=SEED).key_id == want
    assert PublicKey(alg=ED25519, raw=RFC8032_PUB).key_id == key_id_for(ED25519, RFC8032_PUB)
    # Pinned value: changing the derivation would orphan every stored signature.
    assert PrivateKey(alg=ED25519, seed=RFC8032_SEED).key_id == hashlib.sha256(
        b"ed25519\x00" + RFC8032_PUB
    ).hexdigest()[:16]


def test_public_pem_round_trip() -> None:
    """SubjectPublicKeyInfo PEM round trips to the same key and key id."""
    pem = KEY.public_key.to_pem()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    back = PublicKey.from_pem(pem)
    assert back == KEY.public_key
    assert back.key_id == KEY.key_id
    assert PublicKey.from_pem(pem.encode()) == back


def test_private_pem_and_file_round_trip(tmp_path) -> None:
    """PKCS#8 PEM round trips; write() makes an owner-only file that from_file reads back."""
    pem = KEY.to_pem()
    assert "PRIVATE KEY" in pem
    assert PrivateKey.from_pem(pem).seed == SEED
    path = tmp_path / "k.pem"
    write_private_key(KEY, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    back = read_private_key(path)
    assert back.key_id == KEY.key_id
    assert back.sign(b"x") == KEY.sign(b"x")


def test_private_key_repr_hides_the_seed() -> None:
    """repr() shows the key id, never the seed."""
    r = repr(KEY)
    assert KEY.key_id in r
    assert SEED.hex() not in r and str(SEED) not in r


def test_unsupported_algorithms_raise_typed_errors() -> None:
    """Unknown signature or digest algorithms raise UnsupportedAlgorithm (reason unsupported_algorithm)."""
    with pytest.raises(UnsupportedAlgorithm) as info:
        PublicKey(alg="sm2", raw=b"\x00" * 32)
    assert info.value.reason == "unsupported_algorithm"
    with pytest.raises(UnsupportedAlgorithm):
        PrivateKey(alg="sm2", seed=SEED)
    with pytest.raises(UnsupportedAlgorithm):
        PrivateKey.generate("rsa")
    with pytest.raises(UnsupportedAlgorithm):
        verify_raw("sm2", KEY.public_key.raw, b"m", KEY.sign(b"m"))
    with pytest.raises(UnsupportedAlgorithm):
        digest(b"x", "sm3-not-registered")


def test_non_ed25519_pem_keys_are_refused() -> None:
    """An EC (P-256) PEM key is UnsupportedAlgorithm, not silently accepted."""
    k = ec.generate_private_key(ec.SECP256R1())
    pub_pem = k.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    priv_pem = k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_pem(pub_pem)
    with pytest.raises(UnsupportedAlgorithm):
        PrivateKey.from_pem(priv_pem)


@pytest.mark.parametrize("pem", ["", "not a pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
def test_garbage_pem_is_a_consortium_error(pem: str) -> None:
    """Unreadable PEM text raises ConsortiumError."""
    with pytest.raises(ConsortiumError):
        PublicKey.from_pem(pem)
    with pytest.raises(ConsortiumError):
        PrivateKey.from_pem(pem)


def test_missing_key_file_is_a_consortium_error(tmp_path) -> None:
    """A missing key file raises ConsortiumError with the path."""
    with pytest.raises(ConsortiumError, match="cannot read key file"):
        read_private_key(tmp_path / "nope.pem")


@pytest.mark.parametrize("n", [0, 31, 33])
def test_wrong_key_lengths(n: int) -> None:
    """Public keys and seeds must be 32 bytes."""
    with pytest.raises(ConsortiumError):
        PublicKey(alg=ED25519, raw=b"\x01" * n)
    with pytest.raises(ConsortiumError):
        PrivateKey(alg=ED25519, seed=b"\x01" * n)


def test_digests() -> None:
    """SHA-256 is built in; a registered provider (e.g. SM3) becomes available by id."""
    assert digest(b"abc") == hashlib.sha256(b"abc").digest()
    assert digest(b"abc", SHA256) == hashlib.sha256(b"abc").digest()
    register_digest("test-blake2s", lambda d: hashlib.blake2s(d).digest())
    assert digest(b"abc", "test-blake2s") == hashlib.blake2s(b"abc").digest()
