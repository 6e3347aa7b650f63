"""Provenance exports: records of one ticket/permit/truck/project with RFC 9162 proofs to a co-signed checkpoint."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from ledger.core import checkpoint as cp
from ledger.core.consortium import Consortium
from ledger.core.encoding import b64, parse, unb64
from ledger.core.transaction import TX_CONTEXT, split_leaf
from ledger.core.tree import hash_leaf, verify_inclusion_hash
from ledger.errors import EncodingError, LedgerError, ProofError
from ledger.store.ledger_store import LedgerStore

FORMAT = "muck-ledger-provenance/v1"


def build_export(
    *,
    store: LedgerStore,
    consortium: Consortium,
    subject: Mapping[str, str],
    tx_ids: Sequence[str],
    checkpoint_note: str,
) -> dict[str, Any]:
    """Every record of ``tx_ids`` with its inclusion proof in the checkpoint's tree.

    The export carries the genesis document (public keys) for convenience; a
    verifier on another machine should pin the consortium file it trusts.
    """
    body, _ = cp.split_note(checkpoint_note)
    c = cp.Checkpoint.parse_body(body)
    log = store.log()
    if c.size > log.size or log.root(c.size) != c.root:
        raise ProofError("the checkpoint does not match this node's log")
    records = []
    for tx_id in tx_ids:
        stored = store.get_tx(tx_id)
        if stored is None:
            raise ProofError(f"no transaction {tx_id} on this node")
        if stored.seq >= c.size:
            continue  # newer than the checkpoint: proven by the next one
        records.append({
            "tx_id": stored.tx_id,
            "index": stored.seq,
            "height": stored.height,
            "code": stored.code,
            "type": stored.tx.type,
            "timestamp": stored.tx.timestamp,
            "actor": stored.tx.actor,
            "payload": dict(stored.tx.payload),
            "body": b64(stored.body),
            "proof": {"leaf": log.leaf(stored.seq).hex(), "index": stored.seq,
                      "hashes": [h.hex() for h in log.inclusion(stored.seq, c.size)]},
        })
    records.sort(key=lambda r: r["index"] if isinstance(r["index"], int) else 0)
    return {
        "format": FORMAT,
        "subject": dict(subject),
        "origin": consortium.origin,
        "consortium": consortium.to_dict(),
        "checkpoint": checkpoint_note,
        "records": records,
    }


def verify_export(export: Mapping[str, Any], *, consortium: Consortium | None = None) -> list[str]:
    """Check an export completely; returns the problems found (empty when it verifies).

    Checks the checkpoint's co-signatures (a quorum of the nodes of the
    trusted consortium), and for each record: body ↔ readable fields, tx id,
    the submitter's signature, the leaf hash and the inclusion proof.
    """
    problems: list[str] = []
    try:
        trusted = consortium or Consortium.from_dict(export["consortium"])
        if consortium is not None and Consortium.from_dict(export["consortium"]).genesis_hash != trusted.genesis_hash:
            problems.append("the export's consortium is not the trusted one")
        verifiers = {m.name: m.public_key for m in trusted.nodes}
        c, _signers = cp.verify(str(export["checkpoint"]), verifiers, quorum=trusted.quorum, origin=trusted.origin)
    except (LedgerError, KeyError, TypeError) as exc:
        return [f"checkpoint: {exc}"]
    for i, r in enumerate(export.get("records", [])):
        where = f"record {i} ({str(r.get('tx_id', '?'))[:16]}…)"
        try:
            body = unb64(str(r["body"]), what="body")
            parts = split_leaf(body)
            doc = parse(body)
            if hashlib.sha256(parts.content).hexdigest() != r["tx_id"]:
                problems.append(f"{where}: tx id does not match its content")
            for k in ("type", "timestamp", "actor", "payload"):
                if doc.get(k) != r.get(k):
                    problems.append(f"{where}: field {k} differs from the signed body")
            member = trusted.member(parts.submitter)
            if not member.public_key.verify(TX_CONTEXT + parts.content, parts.signature):
                problems.append(f"{where}: signature does not verify")
            leaf = hash_leaf(body)
            proof = r["proof"]
            if bytes.fromhex(proof["leaf"]) != leaf or int(proof["index"]) != int(r["index"]):
                problems.append(f"{where}: proof is for another leaf")
            hashes = [bytes.fromhex(h) for h in proof["hashes"]]
            if not verify_inclusion_hash(leaf, int(r["index"]), c.size, hashes, c.root):
                problems.append(f"{where}: inclusion proof does not lead to the checkpoint root")
        except (LedgerError, EncodingError, KeyError, TypeError, ValueError) as exc:
            problems.append(f"{where}: {exc}")
    return problems
