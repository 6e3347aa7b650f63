"""The membership history a provenance export carries (docs/PROVENANCE.md "Membership changes").

A record submitted under a key a governance vote put in force after the genesis (a key rotated, a member added)
verifies offline only with the votes that put it in force.  :func:`governance_changes` replays the chain's
``governance.*`` transactions over the genesis exactly as the nodes did (:class:`~ledger.core.governance_state.
Governance`) and returns, for each change applied up to a checkpoint's log size, the proposal and the approving
votes counted for it (their signed bodies with inclusion proofs under that checkpoint) and ``in_force_from``, the
log index of the first transaction of the block the change is in force for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ledger.core import checkpoint as cp
from ledger.core import membership_line
from ledger.core.consortium import Consortium, Member
from ledger.core.encoding import b64, unb64
from ledger.core.governance import PROPOSE, VOTE
from ledger.core.governance_state import APPLIED, Governance
from ledger.core.governed import VALID
from ledger.core.transaction import TX_CONTEXT, Transaction, split_leaf
from ledger.core.tree import MerkleLog, hash_leaf, verify_inclusion_hash
from ledger.errors import GovernanceError, LedgerError
from ledger.store import schema
from ledger.store.ledger_store import LedgerStore

Row = tuple[int, int, str, bytes, Transaction]  # seq, height, code, body, transaction


def _rows(store: LedgerStore) -> list[Row]:
    t = schema.transactions
    with store.engine.connect() as conn:
        found = conn.execute(sa.select(t.c.seq, t.c.height, t.c.code, t.c.body)
                             .where(t.c.type.in_((PROPOSE, VOTE))).order_by(t.c.seq)).all()
    out: list[Row] = []
    for seq, height, code, body in found:
        try:
            out.append((int(seq), int(height), str(code), bytes(body), Transaction.decode(bytes(body))))
        except LedgerError:
            continue  # verification reports an undecodable row
    return out


def tx_entry(log: MerkleLog, seq: int, height: int, code: str, body: bytes, tx: Transaction,
             size: int) -> dict[str, Any]:
    """One transaction as an export lists it: readable fields, signed body, inclusion proof at ``size``."""
    return {"tx_id": tx.tx_id, "index": seq, "height": height, "code": code, "type": tx.type,
            "timestamp": tx.timestamp, "actor": tx.actor, "payload": dict(tx.payload), "body": b64(body),
            "proof": {"leaf": log.leaf(seq).hex(), "index": seq,
                      "hashes": [h.hex() for h in log.inclusion(seq, size)]}}


def governance_changes(store: LedgerStore, genesis: Consortium, size: int) -> list[dict[str, Any]]:
    """Every change governance applied in blocks whose log ends at or before ``size``, oldest first:
    ``{"proposal_id", "action", "in_force_from", "records": [the proposal, the approving votes counted]}``."""
    rows = _rows(store)
    if not rows:
        return []
    by_height: dict[int, list[Row]] = {}
    for row in rows:
        by_height.setdefault(row[1], []).append(row)
    state = Governance(genesis)
    counted: dict[str, list[Row]] = {}
    out: list[dict[str, Any]] = []
    height, head, log = min(by_height), store.height, store.log()
    while height <= head and (height <= max(by_height) or state.pending):
        for row in by_height.get(height, []):
            _seq, _h, code, _body, tx = row
            if code != VALID:
                continue
            try:
                signer = state.consortium.member(tx.submitter)
                state = state.step(tx.type, tx.payload, signer, height)
            except LedgerError:
                continue
            if tx.type == PROPOSE or tx.payload.get("approve") is True:
                counted.setdefault(str(tx.payload.get("proposal_id")), []).append(row)
        state, decided = state.boundary(height)
        applied = [d for d in decided if d.outcome == APPLIED]
        if applied:
            header = store.header(height)
            if header is None or header.log_size > size:
                break
            for d in applied:
                out.append({"proposal_id": d.proposal_id, "action": d.action, "in_force_from": header.log_size,
                            "records": [tx_entry(log, *r, size=size) for r in counted[d.proposal_id]]})
        height += 1
    return out


#: ``[(first log index, version, membership)]``, the genesis ``(0, 0, genesis)`` first
Eras = list[membership_line.Era]


def in_force(eras: Eras, index: int) -> Consortium:
    """The membership in force for the transaction at log position ``index``."""
    return [c for start, _version, c in eras if start <= index][-1]


def membership_problems(c: cp.Checkpoint, eras: Eras, objects_height: int | None = None) -> list[str]:
    """The replayed membership history against the checkpoint's co-signed membership line
    (:mod:`ledger.core.membership_line`; none for a checkpoint without the line): the version (the number of
    changes applied) and the digest of every era, each from its log index."""
    found = membership_line.parse_line(c.extensions)
    if found is None:
        return []
    height, version, digest = found
    if objects_height is not None and height != objects_height:
        return [f"membership: the checkpoint's membership line is for block {height}, its object map for block "
                f"{objects_height}"]
    mine = eras[-1][1]
    if mine != version:
        return [f"membership: the export's governance changes make membership version {mine}, the checkpoint's "
                f"co-signed membership is version {version} (a membership change removed or added?)"]
    if membership_line.history_digest(eras) != digest:
        return ["membership: the membership history the export's governance changes give is not the checkpoint's "
                "co-signed one (a change removed, reordered or altered, or a wrong in_force_from?)"]
    return []


def _checked(r: Mapping[str, Any], where: str, size: int, root: bytes, members: Consortium
             ) -> tuple[list[str], Transaction | None, Member | None]:
    """One exported governance transaction: its problems, the transaction, its signer in ``members``."""
    body = unb64(str(r["body"]), what="body")
    parts, tx = split_leaf(body), Transaction.decode(body)
    problems = []
    if tx.tx_id != r["tx_id"]:
        problems.append(f"{where}: tx id does not match its content")
    if any(r.get(k) != v for k, v in (("type", tx.type), ("timestamp", tx.timestamp), ("actor", tx.actor),
                                      ("payload", dict(tx.payload)))):
        problems.append(f"{where}: a field differs from the signed body")
    leaf = hash_leaf(body)
    if not verify_inclusion_hash(leaf, int(r["index"]), size, [bytes.fromhex(h) for h in r["proof"]["hashes"]],
                                 root):
        problems.append(f"{where}: inclusion proof does not lead to the checkpoint root")
    try:
        member = members.member(parts.submitter)
    except LedgerError:
        return [*problems, f"{where}: signer {parts.submitter} is not a member key in force"], tx, None
    if not member.public_key.verify(TX_CONTEXT + parts.content, parts.signature):
        return [*problems, f"{where}: transaction signature does not verify"], tx, None
    return problems, tx, member


def replay_changes(genesis: Consortium, changes: Sequence[Mapping[str, Any]], size: int, root: bytes
                   ) -> tuple[Eras, list[str]]:
    """The membership eras ``[(first log index, membership)]`` an export's changes give, replayed with the core's
    own rules (:class:`Governance`, each change's block ending at its ``in_force_from``), and the problems."""
    groups: dict[int, list[Mapping[str, Any]]] = {}
    for ch in changes:
        groups.setdefault(int(ch["in_force_from"]), []).append(ch)
    eras: Eras = [(0, 0, genesis)]
    state, problems = Governance(genesis), []
    pending = sorted((r for ch in changes for r in ch.get("records") or []), key=lambda r: int(r["index"]))
    for block, start in enumerate(sorted(groups)):
        if start > size:
            problems.append(f"governance: a change in force after the checkpoint's log ({start} > {size})")
            break
        while pending and int(pending[0]["index"]) < start:  # the transactions before this block boundary
            r = pending.pop(0)
            where = f"governance ({r.get('payload', {}).get('proposal_id')!s})"
            found, tx, signer = _checked(r, where, size, root, state.consortium)
            problems.extend(found)
            if tx is None or signer is None or found:
                continue
            try:
                state = state.step(tx.type, tx.payload, signer, block)
            except GovernanceError as exc:
                problems.append(f"{where}: {exc.message}")
        state, decided = state.boundary(block)
        applied = {d.proposal_id for d in decided if d.outcome == APPLIED}
        problems.extend(f"governance ({ch['proposal_id']}): not applied by the replay (a vote removed?)"
                        for ch in groups[start] if ch["proposal_id"] not in applied)
        if applied:
            eras.append((start, state.version, state.consortium))
    if pending:
        problems.append("governance: a transaction after its change's block boundary")
    return eras, problems
