"""Provenance exports: every record of one ticket/permit/truck/project/violation with RFC 9162 proofs to a
co-signed checkpoint, and (format v2) the proof that the export holds *every* record, in chain order.

docs/PROVENANCE.md specifies the format and the checks; ``scripts/verify-export`` re-implements them with
nothing but Python and ``cryptography``.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from ledger.core import checkpoint as cp
from ledger.core.consortium import Consortium
from ledger.core.encoding import b64, parse, unb64
from ledger.core.transaction import TX_CONTEXT, split_leaf
from ledger.core.tree import hash_leaf, verify_inclusion_hash
from ledger.errors import CheckpointError, EncodingError, LedgerError, ProofError
from ledger.eticket import heads
from ledger.store.governance_log import member_names, store_history
from ledger.store.ledger_store import LedgerStore
from ledger.verify.provenance_governance import governance_changes, in_force, membership_problems, replay_changes

FORMAT_V1 = "muck-ledger-provenance/v1"
FORMAT = "muck-ledger-provenance/v2"


def objects_line(c: cp.Checkpoint) -> tuple[int, int, bytes] | None:
    """``(height, size, root)`` of the checkpoint's object-map line (:data:`ledger.eticket.heads.EXTENSION`)."""
    for line in c.extensions:
        words = line.split(" ")
        if words[0] == heads.EXTENSION:
            if len(words) != 4 or not words[1].isdigit() or not words[2].isdigit():
                raise CheckpointError("malformed object-map line in the checkpoint")
            root = unb64(words[3], what="object-map root")
            if len(root) != 32:
                raise CheckpointError("the object-map root must be 32 bytes")
            return int(words[1]), int(words[2]), root
    return None


def note_objects_height(note: str) -> int:
    """The block height of the object map a co-signed checkpoint note commits to."""
    found = objects_line(cp.Checkpoint.parse_body(cp.split_note(note)[0]))
    if found is None:
        raise ProofError("the checkpoint commits to no object map")
    return found[0]


def build_export(
    *,
    store: LedgerStore,
    consortium: Consortium,
    subject: Mapping[str, str],
    tx_ids: Sequence[str],
    checkpoint_note: str,
    object_proof: Mapping[str, Any] | None = None,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Every record of ``tx_ids`` with its inclusion proof in the checkpoint's tree.

    ``names`` maps every key id the chain had in force to its member (a node passes its governed history's;
    without it the store's governance transactions are read).

    With ``object_proof`` (the state machine's :meth:`~ledger.eticket.heads.ObjectHeads.proof_at` at the
    height the checkpoint's object-map line names) the export is format v2 and carries it as ``object``.
    The export carries the genesis document (public keys) for convenience; a
    verifier on another machine should pin the consortium file it trusts.
    """
    body, _ = cp.split_note(checkpoint_note)
    c = cp.Checkpoint.parse_body(body)
    log = store.log()
    if c.size > log.size or log.root(c.size) != c.root:
        raise ProofError("the checkpoint does not match this node's log")
    if names is None:  # keys a vote put in force are named too
        names = member_names(store_history(store, consortium))
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
            **signers(stored.tx.submitter, stored.tx.actor, stored.tx.payload, consortium, names),
            "body": b64(stored.body),
            "proof": {"leaf": log.leaf(stored.seq).hex(), "index": stored.seq,
                      "hashes": [h.hex() for h in log.inclusion(stored.seq, c.size)]},
        })
    records.sort(key=lambda r: r["index"] if isinstance(r["index"], int) else 0)
    out: dict[str, Any] = {
        "format": FORMAT if object_proof is not None else FORMAT_V1,
        "subject": dict(subject),
        "origin": consortium.origin,
        "consortium": consortium.to_dict(),
        "checkpoint": checkpoint_note,
        "records": records,
    }
    changes = governance_changes(store, consortium, c.size)
    if changes:  # keys a vote put in force verify offline with the votes (docs/PROVENANCE.md)
        out["governance"] = changes
    if object_proof is not None:
        out["object"] = {k: object_proof[k] for k in ("name", "height", "count", "head", "index", "size", "hashes")}
    return out


def signers(submitter: str, actor: str, payload: Mapping[str, Any], consortium: Consortium,
            names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Who signed a record (docs/PROVENANCE.md "Signers"): ``signer`` is who did the act — for an act
    signed by its actor (``act_sig``, :mod:`ledger.eticket.acts`) that actor's key, ``{"key_id", "member"}``
    for a department's approver or enforcement officer, ``{"key_id", "operator"}`` for the governance centre's
    operator (the centre's key, the pseudonymous operator who acted) or ``{"key_id", "device"}`` for a device, with
    ``relayed_by`` the member that submitted it; otherwise the submitting member ``{"key_id", "member"}`` itself.
    ``names`` (key id → member) also names keys governance put in force after the genesis."""
    name = names.get(submitter) if names is not None else None
    member = {"key_id": submitter, "member": name if name is not None else consortium.member(submitter).name}
    act = payload.get("act_sig")
    if not isinstance(act, Mapping) or not isinstance(act.get("key_id"), str):
        return {"signer": member}
    kind, _, rest = actor.partition(":")
    owner = ({"member": rest.split(":")[0]} if kind in ("approver", "enforcement")
             else {"operator": actor} if kind == "operator" else {"device": actor})
    return {"signer": {"key_id": act["key_id"], **owner}, "relayed_by": member}


def completeness_problems(export: Mapping[str, Any], c: cp.Checkpoint) -> list[str]:
    """The v2 checks (docs/PROVENANCE.md "Completeness"): the object's co-signed ``(count, head)`` and the
    records' chain; one distinct line for a removed, added, duplicated or reordered record."""
    found = objects_line(c)
    obj = export.get("object")
    if found is None or not isinstance(obj, Mapping):
        return ["completeness: the export has no object proof under a checkpoint object map"]
    height, size, root = found
    subject = export.get("subject") or {}
    name = f"{subject.get('kind')}:{subject.get('id')}"
    records = list(export.get("records") or [])
    try:
        count, head = int(obj["count"]), bytes.fromhex(str(obj["head"]))
        if obj["name"] != name or int(obj["height"]) != height:
            return [f"completeness: the object proof is for {obj['name']} at {obj['height']}, not {name} at {height}"]
        leaf = hash_leaf(heads.leaf_data(name, count, head))
        hashes = [bytes.fromhex(h) for h in obj["hashes"]]
        if int(obj["size"]) != size or not verify_inclusion_hash(leaf, int(obj["index"]), size, hashes, root):
            return ["completeness: the object's head is not in the co-signed object map"]
        ids = [str(r["tx_id"]) for r in records]
        indexes = [int(r["index"]) for r in records]
        codes = [str(r.get("code")) for r in records]
        chained = heads.chain_head(name, ids)
    except (KeyError, TypeError, ValueError) as exc:
        return [f"completeness: malformed object proof or record: {exc!r}"]
    if len(set(ids)) != len(ids):
        return ["completeness: a record appears twice (duplicated)"]
    if any(b <= a for a, b in itertools.pairwise(indexes)):
        return ["completeness: records are not in chain order (reordered)"]
    if any(code != "valid" for code in codes):
        return ["completeness: a record is not a valid transaction (added)"]
    if len(ids) < count:
        return [f"completeness: {count - len(ids)} of the object's {count} records are missing (removed)"]
    if len(ids) > count:
        return [f"completeness: {len(ids) - count} records beyond the object's {count} (added)"]
    if chained != head:
        return ["completeness: the records do not chain to the object's co-signed head (replaced)"]
    return []


def verify_export(export: Mapping[str, Any], *, consortium: Consortium | None = None) -> list[str]:
    """Check an export completely; returns the problems found (empty when it verifies).

    Replays the export's membership changes from the trusted genesis (:func:`replay_changes`), checks the
    checkpoint's co-signatures (a quorum of the nodes in force at it), and for each record (its submitter a
    member key in force at its index): body ↔ readable fields, tx id,
    the submitter's signature, the leaf hash and the inclusion proof; for format v2 also that the records
    are every record of the object in chain order (:func:`completeness_problems`).
    """
    problems: list[str] = []
    try:
        trusted = consortium or Consortium.from_dict(export["consortium"])
        if consortium is not None and Consortium.from_dict(export["consortium"]).genesis_hash != trusted.genesis_hash:
            problems.append("the export's consortium is not the trusted one")
        note = cp.Checkpoint.parse_body(cp.split_note(str(export["checkpoint"]))[0])
        eras, found = replay_changes(trusted, export.get("governance") or [], note.size, note.root)
        problems.extend(found)
        signing = in_force(eras, note.size - 1)  # the checkpoint: the nodes in force for the block it ends at
        verifiers = {m.name: m.public_key for m in signing.nodes}
        c, _signers = cp.verify(str(export["checkpoint"]), verifiers, quorum=signing.quorum, origin=trusted.origin)
    except (LedgerError, KeyError, TypeError, ValueError) as exc:
        return [*problems, f"checkpoint: {exc}"]
    if export.get("format") not in (FORMAT, FORMAT_V1):
        return [f"format: not {FORMAT}"]
    try:
        objects = objects_line(c)
        problems.extend(membership_problems(c, eras, None if objects is None else objects[0]))
    except LedgerError as exc:
        problems.append(f"membership: {exc.message}")
    if export.get("format") == FORMAT:
        problems.extend(completeness_problems(export, c))
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
            members = in_force(eras, int(r["index"]))
            member = members.member(parts.submitter)
            if not member.public_key.verify(TX_CONTEXT + parts.content, parts.signature):
                problems.append(f"{where}: signature does not verify")
            named = signers(parts.submitter, str(doc.get("actor")), doc.get("payload") or {}, members)
            if any(k in r and r[k] != v for k, v in named.items()):
                problems.append(f"{where}: signer differs from the signed body")
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
