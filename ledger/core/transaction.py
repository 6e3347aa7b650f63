"""Signed transaction envelopes: {type, payload, submitter, actor, nonce, timestamp, signature}."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ledger.core.consortium import Consortium, Member
from ledger.core.crypto import ED25519, PrivateKey
from ledger.core.encoding import b64, canonical, parse, parse_fast, unb64
from ledger.errors import BadSignature, EncodingError, MalformedTransaction, OversizePayload

#: Prefix of every signed transaction message (domain separation from headers).
TX_CONTEXT = b"muck-ledger/tx/v1\n"

_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){0,3}$")
_NONCE_RE = re.compile(r"^[0-9a-f]{16,64}$")
_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
_FIELDS = frozenset({"type", "payload", "submitter", "actor", "nonce", "timestamp", "signature"})
_SIG_MARK = b',"signature":{"alg":"'


def parse_time(text: str, *, what: str = "timestamp") -> datetime:
    """Parse an ISO 8601 time that must carry an offset (e.g. +08:00)."""
    if not isinstance(text, str) or not _TS_RE.fullmatch(text):
        raise MalformedTransaction(f"{what} must be ISO 8601 with an offset, e.g. 2026-11-23T22:15:00+08:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise MalformedTransaction(f"{what} is not a valid time: {exc}") from exc


def _signature_bytes(sig: Signature) -> bytes:
    """Canonical bytes of ``{"alg", "value"}``: two string members, so the standard library's sorted
    compact output is RFC 8785 as it is (``canonical`` would walk the value first to make sure)."""
    try:
        return json.dumps(
            {"alg": sig.alg, "value": b64(sig.value)}, ensure_ascii=False, sort_keys=True, separators=(",", ":")
        ).encode("utf-8")
    except (TypeError, ValueError):  # not a string alg (or a lone surrogate): the general path decides
        return canonical(sig.to_dict())


@dataclass(frozen=True)
class Signature:
    """A detached signature with the algorithm that made it."""

    alg: str
    value: bytes

    def to_dict(self) -> dict[str, str]:
        return {"alg": self.alg, "value": b64(self.value)}


@dataclass(frozen=True)
class Transaction:
    """One signed ledger transaction; ``tx_id`` is SHA-256 of the signed content."""

    type: str
    payload: Mapping[str, Any]
    submitter: str
    actor: str
    nonce: str
    timestamp: str
    signature: Signature

    # -- derived ----------------------------------------------------------
    def content(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "payload": self.payload,
            "submitter": self.submitter,
            "actor": self.actor,
            "nonce": self.nonce,
            "timestamp": self.timestamp,
        }

    @property
    def signed_content(self) -> bytes:
        """Canonical bytes of everything but the signature."""
        cached = self.__dict__.get("_content_bytes")
        if cached is None:
            cached = canonical(self.content())
            object.__setattr__(self, "_content_bytes", cached)
        return cached

    @property
    def tx_id(self) -> str:
        cached: str | None = self.__dict__.get("_tx_id")
        if cached is None:
            cached = hashlib.sha256(self.signed_content).hexdigest()
            object.__setattr__(self, "_tx_id", cached)
        return cached

    def to_dict(self) -> dict[str, Any]:
        d = self.content()
        d["signature"] = self.signature.to_dict()
        return d

    def encode(self) -> bytes:
        """Canonical bytes of the whole envelope: the Merkle leaf data of this transaction.

        In RFC 8785 order the ``signature`` member falls between ``payload`` and
        ``submitter``, so it is spliced into the canonical content instead of
        canonicalising everything again (the inverse of :func:`split_leaf`).
        """
        cached = self.__dict__.get("_encoded")
        if cached is None:
            content = self.signed_content
            cut = content.rfind(b',"submitter":"')
            if cut < 0:  # pragma: no cover - content always has a submitter
                cached = canonical(self.to_dict())
            else:
                cached = content[:cut] + b',"signature":' + _signature_bytes(self.signature) + content[cut:]
            object.__setattr__(self, "_encoded", cached)
        return cached

    def _payload_size(self) -> int:
        """Length of the canonical payload, cut from the canonical content instead of encoding it again.

        In RFC 8785 order the content is ``{"actor":…,"nonce":…,"payload":…,"submitter":"…",…}``: the
        first ``,"payload":`` cannot be inside the two strings before it (their quotes are escaped), and
        after the payload only strings follow, so the last ``,"submitter":"`` ends it.  Canonical JSON
        nests canonically, so the cut is exactly ``canonical(payload)``.
        """
        content = self.signed_content
        start = content.find(b',"payload":')
        end = content.rfind(b',"submitter":"')
        if 0 <= start < end:
            return end - start - len(b',"payload":')
        return len(canonical(self.payload))  # pragma: no cover - content always has both members

    @property
    def time(self) -> datetime:
        return parse_time(self.timestamp)

    # -- construction -----------------------------------------------------
    @classmethod
    def create(
        cls,
        *,
        key: PrivateKey,
        type: str,
        payload: Mapping[str, Any],
        actor: str,
        timestamp: str,
        nonce: str | None = None,
    ) -> Transaction:
        """Build and sign a transaction with ``key`` (its key id becomes the submitter)."""
        unsigned = cls(
            type=type,
            payload=dict(payload),
            submitter=key.key_id,
            actor=actor,
            nonce=nonce if nonce is not None else secrets.token_hex(16),
            timestamp=timestamp,
            signature=Signature(alg=key.alg, value=b""),
        )
        unsigned.check_shape()
        sig = key.sign(TX_CONTEXT + unsigned.signed_content)
        signed = replace(unsigned, signature=Signature(alg=key.alg, value=sig))
        object.__setattr__(signed, "_content_bytes", unsigned.signed_content)
        return signed

    @classmethod
    def from_dict(cls, d: Any) -> Transaction:
        """Parse the wire form strictly; anything off raises :class:`MalformedTransaction`."""
        if not isinstance(d, Mapping):
            raise MalformedTransaction("a transaction must be a JSON object")
        missing = _FIELDS - d.keys()
        extra = d.keys() - _FIELDS
        if missing:
            raise MalformedTransaction(f"transaction lacks {sorted(missing)}")
        if extra:
            raise MalformedTransaction(f"transaction has unknown fields {sorted(extra)}")
        sig = d["signature"]
        if not isinstance(sig, Mapping) or set(sig.keys()) != {"alg", "value"}:
            raise MalformedTransaction("signature must be {alg, value}")
        try:
            sig_value = unb64(sig["value"], what="signature value")
        except EncodingError as exc:
            raise MalformedTransaction(str(exc)) from exc
        tx = cls(
            type=d["type"],
            payload=d["payload"],
            submitter=d["submitter"],
            actor=d["actor"],
            nonce=d["nonce"],
            timestamp=d["timestamp"],
            signature=Signature(alg=sig["alg"], value=sig_value),
        )
        tx.check_shape()
        return tx

    @classmethod
    def decode(cls, data: bytes) -> Transaction:
        """Parse the canonical leaf bytes of a transaction.

        The bytes must be exactly the canonical encoding of the envelope they parse to.  That
        comparison also refuses duplicate object members (the parsed value would re-encode
        shorter), so the parse itself needs no per-object duplicate hook (``parse_fast``).
        """
        try:
            tx = cls.from_dict(parse_fast(data))
        except EncodingError as exc:
            raise MalformedTransaction(str(exc)) from exc
        if tx.encode() != bytes(data):
            raise MalformedTransaction("transaction bytes are not canonical")
        return tx

    # -- validation -------------------------------------------------------
    def check_shape(self) -> None:
        """Field types and formats (no keys needed)."""
        if not isinstance(self.type, str) or not _TYPE_RE.fullmatch(self.type):
            raise MalformedTransaction("type must look like 'ticket.issue' (lower-case ASCII)")
        if not isinstance(self.payload, Mapping):
            raise MalformedTransaction("payload must be a JSON object")
        if not isinstance(self.submitter, str) or not re.fullmatch(r"[0-9a-f]{16}", self.submitter):
            raise MalformedTransaction("submitter must be a 16-hex-digit key id")
        if not isinstance(self.actor, str) or not 0 < len(self.actor) <= 128:
            raise MalformedTransaction("actor must be a string of 1 to 128 characters")
        if not isinstance(self.nonce, str) or not _NONCE_RE.fullmatch(self.nonce):
            raise MalformedTransaction("nonce must be 16 to 64 lower-case hex digits")
        if not isinstance(self.signature.alg, str):
            raise MalformedTransaction("signature alg must be a string")
        parse_time(self.timestamp)
        try:
            self.signed_content  # noqa: B018 - proves the content is canonically encodable
        except EncodingError as exc:
            raise MalformedTransaction(f"payload cannot be encoded: {exc}") from exc
        object.__setattr__(self, "_shape_ok", True)

    def check(self, consortium: Consortium) -> Member:
        """Admission checks: size, signer membership and role, signature.

        Raises :class:`OversizePayload`, :class:`UnknownSigner`, :class:`Forbidden`
        or :class:`BadSignature`; returns the signing member.
        """
        if not self.__dict__.get("_shape_ok"):  # from_dict, decode and create have checked it already
            self.check_shape()
        size = self._payload_size()
        if size > consortium.max_payload_bytes:
            raise OversizePayload(
                f"payload is {size} bytes; the consortium allows {consortium.max_payload_bytes}"
            )
        member = consortium.authorize(self.submitter, self.type)
        if self.signature.alg != member.public_key.alg:
            raise BadSignature(f"signature algorithm {self.signature.alg} does not match the key")
        member.public_key.require(
            TX_CONTEXT + self.signed_content, self.signature.value, what=f"signature of tx {self.tx_id}"
        )
        return member


@dataclass(frozen=True)
class LeafParts:
    """What bulk verification needs from a stored transaction, without re-canonicalising."""

    content: bytes
    submitter: str
    alg: str
    signature: bytes


def split_leaf(body: bytes) -> LeafParts:
    """Cut the signed content out of canonical envelope bytes.

    In RFC 8785 form the top-level ``"signature"`` member is the last one whose
    value is an object (``submitter``, ``timestamp`` and ``type`` that follow it
    are strings), so removing it yields exactly the canonical content: no second
    canonicalisation is needed, which keeps audits bound by signature checks.
    """
    start = body.rfind(_SIG_MARK)
    end = body.find(b"}", start + 1) if start >= 0 else -1
    if start < 0 or end < 0:
        raise MalformedTransaction("stored transaction has no signature member")
    try:
        sig_obj = parse(body[start + len(b',"signature":') : end + 1])
        whole = parse(body)
    except EncodingError as exc:
        raise MalformedTransaction(f"stored transaction is not valid JSON: {exc}") from exc
    content = body[:start] + body[end + 1 :]
    if not isinstance(sig_obj, dict) or not isinstance(whole, dict):
        raise MalformedTransaction("stored transaction is not an object")
    try:
        return LeafParts(
            content=content,
            submitter=str(whole["submitter"]),
            alg=str(sig_obj["alg"]),
            signature=unb64(str(sig_obj["value"]), what="signature"),
        )
    except (KeyError, EncodingError) as exc:
        raise MalformedTransaction(f"stored transaction is incomplete: {exc}") from exc


__all__ = ["ED25519", "TX_CONTEXT", "LeafParts", "Signature", "Transaction", "parse_time", "split_leaf"]
