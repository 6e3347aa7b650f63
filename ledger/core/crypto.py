"""Algorithm-agile keys, signatures and digests (Ed25519/SHA-256 now, SM2/SM3 pluggable)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ledger.errors import BadSignature, ConsortiumError, UnsupportedAlgorithm

ED25519 = "ed25519"
SHA256 = "sha256"

# Digest algorithms by id.  An SM3 entry can be registered by a provider
# package (e.g. gmssl) without changing any stored format: every digest and
# key in the ledger carries its algorithm id.
_DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    SHA256: lambda data: hashlib.sha256(data).digest(),
}


def register_digest(alg: str, fn: Callable[[bytes], bytes]) -> None:
    """Make digest algorithm ``alg`` available (used by national-crypto providers)."""
    _DIGESTS[alg] = fn


def digest(data: bytes, alg: str = SHA256) -> bytes:
    """Hash ``data`` with the digest algorithm ``alg``."""
    try:
        fn = _DIGESTS[alg]
    except KeyError:
        raise UnsupportedAlgorithm(f"digest algorithm {alg!r} is not available") from None
    return fn(data)


def key_id_for(alg: str, raw_public: bytes) -> str:
    """Stable key id: 16 hex digits of SHA-256(alg || 0x00 || raw public key)."""
    return hashlib.sha256(alg.encode("ascii") + b"\x00" + raw_public).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKey:
    """A public key with its algorithm id; ``key_id`` names it in signatures."""

    alg: str
    raw: bytes
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        if self.alg != ED25519:
            raise UnsupportedAlgorithm(f"signature algorithm {self.alg!r} is not available")
        if len(self.raw) != 32:
            raise ConsortiumError("an Ed25519 public key is 32 bytes")
        object.__setattr__(self, "key_id", key_id_for(self.alg, self.raw))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return True when ``signature`` is this key's over ``message``."""
        return verify_raw(self.alg, self.raw, message, signature)

    def require(self, message: bytes, signature: bytes, *, what: str = "signature") -> None:
        """Raise :class:`BadSignature` unless the signature verifies."""
        if not self.verify(message, signature):
            raise BadSignature(f"{what} does not verify with key {self.key_id}")

    def to_pem(self) -> str:
        """SubjectPublicKeyInfo PEM (RFC 8410)."""
        key = ed25519.Ed25519PublicKey.from_public_bytes(self.raw)
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    @classmethod
    def from_pem(cls, pem: str | bytes) -> PublicKey:
        """Load a SubjectPublicKeyInfo PEM; only Ed25519 keys are accepted now."""
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise ConsortiumError(f"not a PEM public key: {exc}") from exc
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise UnsupportedAlgorithm("only Ed25519 public keys are supported")
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls(alg=ED25519, raw=raw)


@dataclass(frozen=True, repr=False)
class PrivateKey:
    """A signing key; never printed (repr hides the seed)."""

    alg: str
    seed: bytes
    _secret: bytes = field(init=False, compare=False)
    public_key: PublicKey = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if self.alg != ED25519:
            raise UnsupportedAlgorithm(f"signature algorithm {self.alg!r} is not available")
        if len(self.seed) != 32:
            raise ConsortiumError("an Ed25519 seed is 32 bytes")
        pk, sk = nacl.bindings.crypto_sign_seed_keypair(self.seed)
        object.__setattr__(self, "_secret", sk)
        object.__setattr__(self, "public_key", PublicKey(alg=self.alg, raw=pk))

    def __repr__(self) -> str:
        return f"PrivateKey(alg={self.alg!r}, key_id={self.key_id!r})"

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def sign(self, message: bytes) -> bytes:
        """Detached signature over ``message`` (RFC 8032 Ed25519, deterministic)."""
        return nacl.bindings.crypto_sign(message, self._secret)[:64]

    @classmethod
    def generate(cls, alg: str = ED25519) -> PrivateKey:
        return cls(alg=alg, seed=secrets.token_bytes(32))

    def to_pem(self) -> str:
        """Unencrypted PKCS#8 PEM (RFC 8410); callers store it with mode 0600."""
        key = ed25519.Ed25519PrivateKey.from_private_bytes(self.seed)
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    @classmethod
    def from_pem(cls, pem: str | bytes) -> PrivateKey:
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ConsortiumError(f"not a PEM private key: {exc}") from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise UnsupportedAlgorithm("only Ed25519 private keys are supported")
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls(alg=ED25519, seed=seed)


def verify_raw(alg: str, raw_public: bytes, message: bytes, signature: bytes) -> bool:
    """Verify a detached signature with a raw public key (the hot path of audits)."""
    if alg != ED25519:
        raise UnsupportedAlgorithm(f"signature algorithm {alg!r} is not available")
    if len(signature) != 64:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, raw_public)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True
