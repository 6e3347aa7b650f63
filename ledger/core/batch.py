"""Signed batches: what a proposing node signs over an ordered batch, and the one check every node runs (no I/O).

The order (solo leader or etcd) is untrusted input: whoever can reach it could write a batch.  A batch
therefore carries the signature of the node member that proposed it, over its sequence number, its
proposer, its timestamp and a digest of its transactions; every node checks it when it builds the block
from the batch (:func:`check_batch`) and builds the same empty block from a batch that fails.

The sequence number is signed in both orderings: with etcd the proposer compare-and-sets ``head == n``
and so signs ``n + 1``; with solo the proposer names the number it expects (the leader appends it only
if it is the next one, else answers the real head and the proposer signs again).  A batch copied to
another position of the order does not verify there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.core.block import HeaderSignature
from ledger.core.consortium import Consortium, Member
from ledger.core.crypto import SHA256, PrivateKey, digest
from ledger.core.encoding import canonical, unb64
from ledger.errors import BadSignature, EncodingError, Forbidden

#: Prefix of every batch signature (domain separation from transactions and headers).
BATCH_CONTEXT = b"muck-ledger/batch/v1\n"


class UnsignedBatch(BadSignature):
    """An ordered batch without a proposer's signature."""

    reason = "unsigned_batch"


@dataclass(frozen=True)
class BatchSignature(HeaderSignature):
    """The proposing node's signature over a batch: its key id, algorithm id and value (the same shape as a
    node's signature over a header)."""

    @classmethod
    def read(cls, d: Any) -> BatchSignature | None:
        """The signature in a batch's ``signature`` field as every node reads it: None when there is
        none; fields of the wrong type or an undecodable value read as empty (the check then fails)."""
        if d is None:
            return None
        if not isinstance(d, Mapping):
            return cls("", "", b"")
        key_id, alg, value = d.get("key_id"), d.get("alg"), d.get("value")
        try:
            raw = unb64(value) if isinstance(value, str) else b""
        except EncodingError:
            raw = b""
        return cls(key_id if isinstance(key_id, str) else "", alg if isinstance(alg, str) else "", raw)


def txs_digest(txs: Sequence[bytes], alg: str = SHA256) -> str:
    """Hex digest of the batch's transactions: each as an 8-byte big-endian length and its bytes."""
    parts: list[bytes] = []
    for t in txs:
        parts.append(len(t).to_bytes(8, "big"))
        parts.append(t)
    return digest(b"".join(parts), alg).hex()


def batch_signing_message(*, seq: int, proposer: str, timestamp: str, txs_hex: str, digest_alg: str = SHA256) -> bytes:
    """What the proposer signs: the context and the RFC 8785 form of the batch's content."""
    return BATCH_CONTEXT + canonical({
        "seq": seq, "proposer": proposer, "timestamp": timestamp, "txs": {"alg": digest_alg, "digest": txs_hex},
    })


def sign_batch(
    key: PrivateKey, *, seq: int, proposer: str, timestamp: str, txs: Sequence[bytes], digest_alg: str = SHA256
) -> BatchSignature:
    """The signature of ``key`` over batch ``seq``."""
    return batch_signer(key, proposer=proposer, timestamp=timestamp, txs=txs, digest_alg=digest_alg)(seq)


def batch_signer(
    key: PrivateKey, *, proposer: str, timestamp: str, txs: Sequence[bytes], digest_alg: str = SHA256
) -> Callable[[int], BatchSignature]:
    """Sign one batch for whichever sequence number it gets (the transactions are digested once)."""
    txs_hex = txs_digest(txs, digest_alg)

    def sign(seq: int) -> BatchSignature:
        msg = batch_signing_message(seq=seq, proposer=proposer, timestamp=timestamp, txs_hex=txs_hex,
                                    digest_alg=digest_alg)
        return BatchSignature(key_id=key.key_id, alg=key.alg, value=key.sign(msg))

    return sign


def check_batch(
    consortium: Consortium, *, seq: int, proposer: str, timestamp: str, txs: Sequence[bytes],
    signature: BatchSignature | None,
) -> Member:
    """The node member that signed batch ``seq`` at this position of the order, or a typed error:
    :class:`UnsignedBatch` (``unsigned_batch``), ``UnknownSigner`` (a key the consortium does not
    hold), :class:`Forbidden` (a member that is not a node, or a proposer name not the signer's),
    :class:`BadSignature` (wrong algorithm, or it does not verify over this content and number)."""
    if signature is None:
        raise UnsignedBatch(f"batch {seq} from {proposer[:64]!r} is not signed")
    member = consortium.member(signature.key_id)
    if "node" not in member.roles:
        raise Forbidden(f"batch {seq} is signed by member {member.name}, which is not a node")
    if member.name != proposer:
        raise Forbidden(f"batch {seq} names proposer {proposer[:64]!r} but is signed by {member.name}")
    if signature.alg != member.public_key.alg:
        raise BadSignature(f"batch {seq} is signed with {signature.alg!r}, {member.name}'s key is "
                           f"{member.public_key.alg!r}")
    msg = batch_signing_message(seq=seq, proposer=proposer, timestamp=timestamp,
                                txs_hex=txs_digest(txs, consortium.digest_alg), digest_alg=consortium.digest_alg)
    if not member.public_key.verify(msg, signature.value):
        raise BadSignature(f"batch {seq}'s signature by {member.name} does not verify over its content and number")
    return member


__all__ = [
    "BATCH_CONTEXT", "BatchSignature", "UnsignedBatch", "batch_signer", "batch_signing_message", "check_batch",
    "sign_batch", "txs_digest",
]
