"""Block headers, blocks with per-transaction validation codes, and co-signature certificates."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.core.consortium import Consortium, Member
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import b64, canonical, unb64
from ledger.core.transaction import Transaction, parse_time
from ledger.core.tree import CompactRange, hash_leaf, root_from_hashes
from ledger.errors import EncodingError, InvalidBlock, LedgerError, WrongPreviousHash

#: Prefix of every header signature (domain separation from transactions).
HEADER_CONTEXT = b"muck-ledger/header/v1\n"
VALID = "valid"
HEADER_VERSION = 1


def flags_digest(codes: Sequence[str]) -> str:
    """SHA-256 of the canonical JSON list of validation codes, hex."""
    return hashlib.sha256(canonical(list(codes))).hexdigest()


@dataclass(frozen=True)
class BlockHeader:
    """What the nodes sign.  ``log_size``/``log_root`` are the RFC 9162 tree head of
    every transaction up to and including this block, so each certificate is also
    a co-signed tree head."""

    height: int
    previous_hash: str
    tx_root: str
    flags_digest: str
    tx_count: int
    log_size: int
    log_root: str
    timestamp: str
    proposer: str
    version: int = HEADER_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "height": self.height,
            "previous_hash": self.previous_hash,
            "tx_root": self.tx_root,
            "flags_digest": self.flags_digest,
            "tx_count": self.tx_count,
            "log_size": self.log_size,
            "log_root": self.log_root,
            "timestamp": self.timestamp,
            "proposer": self.proposer,
        }

    def encode(self) -> bytes:
        return canonical(self.to_dict())

    @property
    def hash(self) -> str:
        """Hex SHA-256 of the canonical header."""
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hashlib.sha256(self.encode()).hexdigest()
            object.__setattr__(self, "_hash", cached)
        return cached

    @property
    def signing_message(self) -> bytes:
        return header_signing_message(self.hash)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BlockHeader:
        try:
            h = cls(
                height=int(d["height"]),
                previous_hash=str(d["previous_hash"]),
                tx_root=str(d["tx_root"]),
                flags_digest=str(d["flags_digest"]),
                tx_count=int(d["tx_count"]),
                log_size=int(d["log_size"]),
                log_root=str(d["log_root"]),
                timestamp=str(d["timestamp"]),
                proposer=str(d["proposer"]),
                version=int(d.get("version", HEADER_VERSION)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidBlock(f"malformed block header: {exc!r}") from exc
        parse_time(h.timestamp, what="block timestamp")
        return h


@dataclass(frozen=True)
class HeaderSignature:
    """One node's signature over a header hash."""

    key_id: str
    alg: str
    value: bytes

    def to_dict(self) -> dict[str, str]:
        return {"key_id": self.key_id, "alg": self.alg, "value": b64(self.value)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HeaderSignature:
        try:
            return cls(key_id=str(d["key_id"]), alg=str(d["alg"]), value=unb64(str(d["value"])))
        except (KeyError, EncodingError) as exc:
            raise InvalidBlock(f"malformed header signature: {exc!r}") from exc


def sign_header(header: BlockHeader, key: PrivateKey) -> HeaderSignature:
    return HeaderSignature(key_id=key.key_id, alg=key.alg, value=key.sign(header.signing_message))


def header_signing_message(header_hash: str) -> bytes:
    """What a node signs for the header whose hex SHA-256 is ``header_hash`` (``ValueError`` if not hex)."""
    return HEADER_CONTEXT + bytes.fromhex(header_hash)


def node_signature_verifies(member: Member | None, sig: HeaderSignature, message: bytes,
                            at: datetime | None = None) -> bool:
    """The one check of a header signature: ``member`` has role ``node``, ``sig`` is in its key's
    algorithm and verifies with that key over ``message`` (a header's signing message), and — given the
    block's time ``at`` — the key had not expired then (a co-signature under an expired key does not
    count)."""
    return (
        member is not None
        and "node" in member.roles
        and sig.alg == member.public_key.alg
        and (at is None or not member.expired_at(at))
        and member.public_key.verify(message, sig.value)
    )


def node_signer(sig: HeaderSignature, message: bytes, consortium: Consortium,
                at: datetime | None = None) -> Member | None:
    """The node member whose signature ``sig`` over ``message`` is (:func:`node_signature_verifies`), else None."""
    try:
        member = consortium.member(sig.key_id)
    except LedgerError:
        return None
    return member if node_signature_verifies(member, sig, message, at) else None


def certificate_signers(
    header: BlockHeader, signatures: Iterable[HeaderSignature], consortium: Consortium
) -> list[str]:
    """Names of the node members whose signature over this header verifies."""
    signers: list[str] = []
    msg = header.signing_message
    at = parse_time(header.timestamp)
    for sig in signatures:
        member = node_signer(sig, msg, consortium, at)
        if member is not None and member.name not in signers:
            signers.append(member.name)
    return signers


def is_final(header: BlockHeader, signatures: Iterable[HeaderSignature], consortium: Consortium) -> bool:
    """True when more than two thirds of the nodes signed this exact header."""
    return len(certificate_signers(header, signatures, consortium)) >= consortium.quorum


@dataclass(frozen=True)
class Block:
    """A header, its transactions with their validation codes, and the signatures so far."""

    header: BlockHeader
    transactions: tuple[Transaction, ...]
    codes: tuple[str, ...]
    signatures: tuple[HeaderSignature, ...] = field(default=())

    @property
    def height(self) -> int:
        return self.header.height

    def leaves(self) -> list[bytes]:
        return [tx.encode() for tx in self.transactions]

    def with_signatures(self, sigs: Iterable[HeaderSignature]) -> Block:
        merged = {s.key_id: s for s in self.signatures}
        for s in sigs:
            merged.setdefault(s.key_id, s)
        return Block(self.header, self.transactions, self.codes, tuple(merged.values()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "header": self.header.to_dict(),
            "hash": self.header.hash,
            "transactions": [
                {"tx_id": tx.tx_id, "code": code, "tx": tx.to_dict()}
                for tx, code in zip(self.transactions, self.codes, strict=True)
            ],
            "signatures": [s.to_dict() for s in self.signatures],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Block:
        try:
            header = BlockHeader.from_dict(d["header"])
            txs = tuple(Transaction.from_dict(t["tx"]) for t in d["transactions"])
            codes = tuple(str(t["code"]) for t in d["transactions"])
            sigs = tuple(HeaderSignature.from_dict(s) for s in d.get("signatures", []))
        except (KeyError, TypeError) as exc:
            raise InvalidBlock(f"malformed block: {exc!r}") from exc
        return cls(header, txs, codes, sigs)


def make_header(
    *,
    previous: BlockHeader | None,
    genesis_hash: str,
    transactions: Sequence[Transaction],
    codes: Sequence[str],
    log: CompactRange,
    timestamp: str,
    proposer: str,
    leaf_hashes: Sequence[bytes] | None = None,
) -> tuple[BlockHeader, CompactRange]:
    """Build the next header deterministically; returns it and the log after it.

    ``log`` is the compact range of every earlier transaction; it is not changed.
    ``leaf_hashes`` may give the RFC 9162 leaf hashes of ``transactions`` when the caller has
    them already (one per transaction, in order); otherwise they are computed here.
    """
    if len(codes) != len(transactions):
        raise InvalidBlock("one validation code per transaction is required")
    if leaf_hashes is not None and len(leaf_hashes) != len(transactions):
        raise InvalidBlock("one leaf hash per transaction is required")
    hashes = list(leaf_hashes) if leaf_hashes is not None else [hash_leaf(tx.encode()) for tx in transactions]
    after = log.copy()
    after.extend(hashes)
    header = BlockHeader(
        height=0 if previous is None else previous.height + 1,
        previous_hash=genesis_hash if previous is None else previous.hash,
        tx_root=root_from_hashes(hashes).hex(),
        flags_digest=flags_digest(codes),
        tx_count=len(transactions),
        log_size=after.size,
        log_root=after.root().hex(),
        timestamp=timestamp,
        proposer=proposer,
    )
    return header, after


def check_link(header: BlockHeader, previous: BlockHeader | None, genesis_hash: str) -> None:
    """Height, previous hash and time order against the block before (or genesis)."""
    want_height = 0 if previous is None else previous.height + 1
    want_prev = genesis_hash if previous is None else previous.hash
    if header.height != want_height:
        raise WrongPreviousHash(f"block height {header.height} does not follow {want_height - 1}")
    if header.previous_hash != want_prev:
        raise WrongPreviousHash(
            f"block {header.height} links to {header.previous_hash[:16]}…, the head is {want_prev[:16]}…"
        )
    if previous is not None and parse_time(header.timestamp) < parse_time(previous.timestamp):
        raise InvalidBlock(f"block {header.height} is timed before block {previous.height}")
