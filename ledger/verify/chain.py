"""Full-chain verification on all cores: header links, Merkle roots, certificates, signatures, tx ids."""

from __future__ import annotations

import binascii
import bisect
import hashlib
import json
import multiprocessing as mp
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic.util.exc import CommandError

from ledger.core import checkpoint as cp
from ledger.core.block import BlockHeader, HeaderSignature, flags_digest, node_signature_verifies
from ledger.core.consortium import Consortium, Member
from ledger.core.crypto import ED25519, verify_raw
from ledger.core.membership import MembershipHistory
from ledger.core.transaction import TX_CONTEXT, parse_time, split_leaf
from ledger.core.tree import CompactRange, hash_leaf, root_from_hashes
from ledger.errors import LedgerError, StoreError
from ledger.store import schema
from ledger.store.governance_log import checkpoint_members, store_history
from ledger.store.ledger_store import SIGNATURE_CODES, LedgerStore
from ledger.store.schema import make_engine
from ledger.verify.report import HEADER_KINDS, Problem, Report, rank

# -- worker side -------------------------------------------------------------

_W: dict[str, Any] = {}


def _init_worker(url: str, consortium_doc: Mapping[str, Any], eras: list[dict[str, Any]] | None = None) -> None:
    _W["engine"] = make_engine(url)
    consortium = Consortium.from_dict(consortium_doc)
    _W["consortium"] = consortium
    _W["keys"] = {m.key_id: m for m in consortium.members}
    history = MembershipHistory.from_docs(consortium, eras or [])
    _W["history"] = history
    _W["era_keys"] = {e.since: {m.key_id: m for m in e.consortium.members} for e in history.eras}


def _members_at(height: int) -> tuple[Consortium, dict[str, Member]]:
    """The membership in force for block ``height`` (governance changes it by vote) and its keys."""
    history: MembershipHistory | None = _W.get("history")
    if history is None:
        return _W["consortium"], _W["keys"]
    era = history.era_at(height)
    return era.consortium, _W["era_keys"][era.since]


@dataclass(frozen=True)
class _Chunk:
    headers: tuple[BlockHeader, ...]
    first_seq: int
    last_seq: int


def _check_certificate(
    h: BlockHeader, stored: list[Any], consortium: Consortium, members: Mapping[str, Member]
) -> list[Problem]:
    """Every stored node signature must verify over the recomputed header, and a quorum must."""
    height = h.height
    problems: list[Problem] = []
    msg = h.signing_message
    hh = h.hash
    at = parse_time(h.timestamp)
    signers: list[str] = []
    bad: list[str] = []
    for key_id, header_hash, alg, value in stored:
        member = members.get(key_id)
        ok = header_hash == hh and node_signature_verifies(member, HeaderSignature(key_id, alg, bytes(value)), msg,
                                                             at)
        if not ok:
            bad.append(key_id if member is None else f"{member.name} ({key_id})")
        elif member is not None and member.name not in signers:
            signers.append(member.name)
    if len(signers) < consortium.quorum:
        problems.append(Problem(
            "certificate", height, f"block {height}: {len(signers)} of {len(stored)} stored node signatures "
            f"verify over its header ({', '.join(signers) or 'none'}); {consortium.quorum} are needed"))
    else:
        problems.extend(
            Problem("certificate", height, f"block {height}: stored signature by {who} does not verify "
                    "over its header")
            for who in bad
        )
    return problems


def _verify_chunk(chunk: _Chunk) -> tuple[list[bytes], list[Problem], int]:
    """Check the blocks of one chunk; return their leaf hashes (per block), problems, tx count."""
    engine: sa.Engine = _W["engine"]
    lo, hi = chunk.headers[0].height, chunk.headers[-1].height
    tx = schema.transactions
    sg = schema.signatures
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(tx.c.seq, tx.c.tx_id, tx.c.height, tx.c.position, tx.c.code, tx.c.leaf_hash, tx.c.body,
                      tx.c.type)
            .where(sa.or_(tx.c.height.between(lo, hi), tx.c.seq.between(chunk.first_seq, chunk.last_seq)))
            .order_by(tx.c.seq)
        ).all()
        sig_rows = conn.execute(
            sa.select(sg.c.height, sg.c.key_id, sg.c.header_hash, sg.c.alg, sg.c.value)
            .where(sg.c.height.between(lo, hi))
            .order_by(sg.c.height, sg.c.key_id)
        ).all()
    sigs: dict[int, list[Any]] = {}
    for s in sig_rows:
        sigs.setdefault(s[0], []).append(s[1:])
    by_block: dict[int, list[Any]] = {}
    for r in rows:
        by_block.setdefault(r[2], []).append(r)
    problems: list[Problem] = []
    leaves_out: list[bytes] = []
    count = 0
    sha256 = hashlib.sha256
    for h in chunk.headers:
        height = h.height
        consortium, members = _members_at(height)
        problems.extend(_check_certificate(h, sigs.get(height, []), consortium, members))
        block_rows = by_block.get(height, [])
        at = parse_time(h.timestamp)
        start = h.log_size - h.tx_count
        hashes: list[bytes] = []
        codes: list[str] = []
        expected_pos = 0
        misplaced = 0
        for seq, tx_id, _height, position, code, stored_leaf, raw_body, stored_type in block_rows:
            count += 1
            if position != expected_pos or seq != start + expected_pos:
                if position > expected_pos and seq == start + position:
                    # Rows are missing before this one.
                    problems.append(Problem(
                        "missing_tx", height, f"block {height}: transaction at position {expected_pos} "
                        f"(log index {start + expected_pos}) is missing", position=expected_pos))
                    expected_pos = position
                else:
                    if not misplaced:
                        problems.append(Problem(
                            "order", height, f"block {height}: transaction at log index {seq} is out of "
                            f"place (stored position {position}; expected position {expected_pos} at log "
                            f"index {start + expected_pos})", position=expected_pos, tx_id=tx_id))
                    misplaced += 1
            where_pos = expected_pos
            expected_pos += 1
            body = bytes(raw_body)
            leaf = hash_leaf(body)
            hashes.append(leaf)
            codes.append(code)
            parts = _fast_split(body)
            if parts is None:
                try:
                    lp = split_leaf(body)
                except LedgerError as exc:
                    problems.append(Problem("malformed", height, str(exc), position=where_pos, tx_id=tx_id))
                    continue
                parts = (lp.content, lp.submitter, lp.alg, lp.signature)
            content, submitter, alg, signature = parts
            if sha256(content).hexdigest() != tx_id:
                problems.append(Problem("tx_id", height, f"stored tx id {tx_id[:16]}… is not the hash of "
                                        "the transaction's signed content", position=where_pos, tx_id=tx_id))
            member = members.get(submitter)
            good = (
                member is not None
                and alg == member.public_key.alg
                and verify_raw(alg, member.public_key.raw, TX_CONTEXT + content, signature)
            )
            if not good and code not in SIGNATURE_CODES:
                why = "unknown signer" if member is None else "signature does not verify"
                problems.append(Problem("signature", height, f"transaction {tx_id[:16]}…: {why}",
                                        position=where_pos, tx_id=tx_id))
            elif good and code in SIGNATURE_CODES:
                problems.append(Problem("validation_code", height, f"transaction marked {code} has a "
                                        "valid signature", position=where_pos, tx_id=tx_id))
            elif good and code == "valid" and member is not None and member.key_refusal(at) is not None:
                problems.append(Problem("validation_code", height, f"transaction {tx_id[:16]}… is marked valid "
                                        f"but its key was outside its validity at the block's time "
                                        f"({member.key_refusal(at)})", position=where_pos, tx_id=tx_id))
            if bytes(stored_leaf) != leaf:
                problems.append(Problem("leaf_hash", height, f"transaction {tx_id[:16]}…: stored leaf hash "
                                        "is not the hash of its body", position=where_pos, tx_id=tx_id))
            tx_type = _tx_type(body)
            if tx_type is not None and tx_type != stored_type:
                problems.append(Problem("type", height, f"transaction {tx_id[:16]}…: stored type column "
                                        f"{stored_type!r} is not the transaction's type {tx_type!r}",
                                        position=where_pos, tx_id=tx_id))
        if expected_pos < h.tx_count and len(block_rows) < h.tx_count:
            problems.append(Problem(
                "missing_tx", height, f"block {height}: transaction at position {expected_pos} "
                f"(log index {start + expected_pos}) is missing", position=expected_pos))
        if len(block_rows) != h.tx_count:
            problems.append(Problem("tx_count", height, f"block {height} lists {h.tx_count} transactions; "
                                    f"the database holds {len(block_rows)}"))
        if root_from_hashes(hashes).hex() != h.tx_root:
            problems.append(Problem("tx_root", height, f"block {height}: Merkle root of its transactions "
                                    "does not match the header"))
        if flags_digest(codes) != h.flags_digest:
            problems.append(Problem("flags", height, f"block {height}: validation codes do not match the "
                                    "header's flags digest"))
        leaves_out.append(b"".join(hashes))
    return leaves_out, problems, count


_FAST_SIG = b',"signature":{"alg":"ed25519","value":"'
_FAST_SUBMITTER = b',"submitter":"'


def _fast_split(body: bytes) -> tuple[bytes, str, str, bytes] | None:
    """:func:`split_leaf` for the common shape (Ed25519, canonical), without parsing JSON.

    Returns None when the body does not have exactly that shape; the caller then
    falls back to :func:`split_leaf`.  Whatever this accepts, the bytes are also
    bound by the block's tx_root, which is checked separately.
    """
    start = body.rfind(_FAST_SIG)
    if start < 0:
        return None
    v0 = start + len(_FAST_SIG)
    end = v0 + 88  # base64 of 64 bytes
    if body[end : end + 2] != b'"}' or body[end + 2 : end + 2 + len(_FAST_SUBMITTER)] != _FAST_SUBMITTER:
        return None
    s0 = end + 2 + len(_FAST_SUBMITTER)
    if body[s0 + 16 : s0 + 17] != b'"':
        return None
    try:
        signature = binascii.a2b_base64(body[v0:end], strict_mode=True)
        submitter = body[s0 : s0 + 16].decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return body[:start] + body[end + 2 :], submitter, ED25519, signature


_FAST_TYPE = b',"type":"'


def _tx_type(body: bytes) -> str | None:
    """The ``type`` of a stored transaction body (its last member in RFC 8785 order), or None when the body
    is not a JSON object with a string type (the body checks report that)."""
    start = body.rfind(_FAST_TYPE)
    if start > 0 and body.endswith(b'"}'):
        raw = body[start + len(_FAST_TYPE) : -2]
        if b'"' not in raw and b"\\" not in raw:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    value = doc.get("type") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


# -- main side ---------------------------------------------------------------

def _chunks(headers: list[BlockHeader], target_txs: int) -> Iterator[_Chunk]:
    cur: list[BlockHeader] = []
    n = 0
    for h in headers:
        cur.append(h)
        n += h.tx_count
        if n >= target_txs:
            yield _chunk(cur)
            cur, n = [], 0
    if cur:
        yield _chunk(cur)


def _chunk(hs: list[BlockHeader]) -> _Chunk:
    first = hs[0].log_size - hs[0].tx_count
    return _Chunk(headers=tuple(hs), first_seq=first, last_seq=max(first, hs[-1].log_size - 1))


def verify_chain(
    url: str,
    consortium: Consortium | None = None,
    *,
    workers: int | None = None,
    chunk_txs: int = 4000,
    stop_after: int = 20,
) -> Report:
    """Verify the chain stored at ``url`` end to end.

    Checks every header link from the genesis hash, every block's certificate
    (more than two thirds of the node members), every transaction's id,
    signature and position, every block's RFC 9162 tx root and flags digest,
    and the running log head (size and root) in every header.  Work is spread
    over ``workers`` processes (all cores by default).  ``consortium`` should
    be the auditor's trusted copy; without it the database's own is used.
    """
    try:
        store = LedgerStore.open(url, create=False)
    except CommandError as exc:  # alembic: the schema version row names no revision this software knows
        raise StoreError(f"cannot open ledger database {url}: its schema version row was changed ({exc})") from exc
    report = Report()
    try:
        with store.engine.connect() as conn:
            meta = {str(k): str(v) for k, v in conn.execute(sa.select(schema.meta.c.key, schema.meta.c.value))}
        stored_genesis, genesis_problems = _stored_genesis(meta.get("genesis"))
        trusted = consortium or stored_genesis
        if trusted is None:
            report.problems.append(genesis_problems[0] if "genesis" in meta
                                   else Problem("genesis", 0, "no consortium file given and none stored"))
            return report
        report.problems.extend(genesis_problems)
        if stored_genesis is not None and stored_genesis.genesis_hash != trusted.genesis_hash:
            report.problems.append(
                Problem("genesis", 0, "the database's genesis document differs from the trusted one")
            )
        recorded = meta.get("genesis_hash")
        if recorded != trusted.genesis_hash:
            report.problems.append(Problem(
                "genesis", 0, "the database's recorded genesis hash "
                f"({'none' if recorded is None else recorded[:16] + '…'}) is not the trusted genesis "
                f"{trusted.genesis_hash[:16]}…"))
        headers = list(store.headers())
        head_height = headers[-1].height if headers else -1
        head_size = headers[-1].log_size if headers else 0
        tx, sg, bl, cpt = schema.transactions, schema.signatures, schema.blocks, schema.checkpoints
        with store.engine.connect() as conn:
            stored_hashes = {int(k): str(v) for k, v in conn.execute(sa.select(bl.c.height, bl.c.hash))}
            # Rows that belong to no stored block (e.g. the last block row was deleted).  One statement each,
            # so a block a running node appends meanwhile (block, transactions and signatures in one database
            # transaction) is either wholly seen or not at all: never reported as rows without a block.
            extra = conn.execute(
                sa.select(sa.func.count())
                .select_from(tx)
                .where(sa.or_(
                    sa.and_(tx.c.height > head_height, ~sa.exists().where(bl.c.height == tx.c.height)),
                    sa.and_(tx.c.height <= head_height, tx.c.seq >= head_size),
                ))
            ).scalar_one()
            stray, stray_at = conn.execute(
                sa.select(sa.func.count(), sa.func.min(sg.c.height))
                .where(~sa.exists().where(bl.c.height == sg.c.height))
            ).one()
            stored_checkpoints = [(int(r[0]), str(r[1]), str(r[2])) for r in conn.execute(
                sa.select(cpt.c.size, cpt.c.root, cpt.c.note).order_by(cpt.c.size))]
            # Read after them: a running node stores a checkpoint only after its block, so this covers it.
            size_now = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(bl.c.log_size), 0))).scalar_one())
        if extra:
            report.problems.append(Problem(
                "extra_tx", head_height + 1, f"the database holds {extra} transaction rows after the head "
                f"block {head_height} (block {head_height + 1} is missing?)"))
        if stray:
            report.problems.append(Problem(
                "extra_signature", int(stray_at), f"the database holds {stray} node signatures for blocks it "
                f"does not have (the first for block {stray_at})"))
        history = store_history(store, trusted)  # the membership by height: governance votes change it
        eras = history.to_docs()
        report.problems.extend(_check_stored_checkpoints(stored_checkpoints, headers, history, size_now))
    finally:
        store.close()
    report.blocks = len(headers)
    # Links, heights and the tx count per block are checked here, cheaply and in order.
    prev: BlockHeader | None = None
    for h in headers:
        want_h = 0 if prev is None else prev.height + 1
        want_prev = trusted.genesis_hash if prev is None else prev.hash
        if h.height != want_h:
            report.problems.append(Problem("missing_block", want_h, f"block {want_h} is missing "
                                           f"(next stored block is {h.height})"))
            break
        if h.previous_hash != want_prev:
            report.problems.append(Problem("link", h.height, f"block {h.height} does not link to block "
                                           f"{h.height - 1}: previous hash {h.previous_hash[:16]}… ≠ "
                                           f"{want_prev[:16]}…"))
        if prev is not None and parse_time(h.timestamp) < parse_time(prev.timestamp):
            # Nodes never build such a block (block time is monotonic): a node's store was written around it.
            report.problems.append(Problem("block_time", h.height, f"block {h.height} is timed {h.timestamp}, "
                                           f"before block {prev.height} ({prev.timestamp})"))
        prev = h
    workers = workers or os.cpu_count() or 1
    # fork is cheapest, but forking a multi-threaded process (a gunicorn gthread worker serving the audit
    # API) can copy a lock some other thread holds and hang the child: use a fork server there.
    ctx = mp.get_context("fork" if threading.active_count() == 1 else "forkserver")
    rng = CompactRange()
    chunks = list(_chunks(headers, chunk_txs))
    with ctx.Pool(workers, initializer=_init_worker, initargs=(url, trusted.to_dict(), eras)) as pool:
        for chunk, (leaves, problems, count) in zip(chunks, pool.imap(_verify_chunk, chunks), strict=True):
            report.transactions += count
            report.problems.extend(problems)
            for h, joined in zip(chunk.headers, leaves, strict=True):
                for i in range(0, len(joined), 32):
                    rng.append(joined[i : i + 32])
                if rng.size != h.log_size or rng.root().hex() != h.log_root:
                    report.problems.append(Problem("log", h.height, f"block {h.height}: log head "
                                                   f"(size {h.log_size}) does not match the transactions "
                                                   "before it"))
            if len(report.problems) >= stop_after:
                pool.terminate()
                break
    # The stored hash column (which SQL users of the database look blocks up by) must be the header's hash.
    # A header whose fields were changed already fails its certificate; this catches the column alone.
    changed = {p.height for p in report.problems if p.kind in HEADER_KINDS}
    for h in headers:
        stored = stored_hashes.get(h.height)
        if stored is not None and stored != h.hash and h.height not in changed:
            report.problems.append(Problem("header_hash", h.height, f"block {h.height}: stored hash column "
                                           f"{stored[:16]}… is not the hash of its header {h.hash[:16]}…"))
    report.head = headers[-1].hash if headers else None
    report.log_root = rng.root().hex()
    report.problems.sort(key=rank)
    return report


def _stored_genesis(doc: str | None) -> tuple[Consortium | None, list[Problem]]:
    """The genesis document a database holds, and what is wrong with it (missing, malformed)."""
    if doc is None:
        return None, [Problem("genesis", 0, "the database holds no genesis document")]
    try:
        return Consortium.from_dict(json.loads(doc)), []
    except (LedgerError, ValueError, KeyError, TypeError, AttributeError) as exc:
        why = exc.message if isinstance(exc, LedgerError) else f"{exc.__class__.__name__}: {exc}"
        return None, [Problem("genesis", 0, f"the database's genesis document is malformed: {why}")]


def _check_stored_checkpoints(
    rows: list[tuple[int, str, str]], headers: list[BlockHeader], history: MembershipHistory, size_now: int
) -> list[Problem]:
    """Every checkpoint a node stored must be co-signed by a quorum of the trusted nodes, agree with its own
    size and root columns, and be the log head of one of the chain's blocks (nodes checkpoint whole final
    blocks).  Each problem is pinned to the block the checkpoint covers up to.  One past the verified
    headers but within ``size_now`` (the log size when the checkpoints had been read) is for a block a
    running node appended meanwhile: the next audit judges it.  Each is judged under the membership in force
    at the block it covers (:func:`~ledger.store.governance_log.checkpoint_members`)."""
    sizes = [h.log_size for h in headers]
    problems: list[Problem] = []
    for size, root, note in rows:
        signed: cp.Checkpoint | None = None
        trusted = checkpoint_members(history, sizes, note)
        verifiers = {m.name: m.public_key for m in trusted.nodes}
        try:
            signed, _signers = cp.verify(note, verifiers, quorum=trusted.quorum, origin=trusted.origin)
        except LedgerError as exc:
            why = exc.message
        at = signed.size if signed is not None else size
        i = bisect.bisect_left(sizes, at)
        height = headers[i].height if i < len(headers) else (headers[-1].height + 1 if headers else 0)
        what = f"stored checkpoint of size {size}"
        if signed is None:
            problems.append(Problem("stored_checkpoint", height, f"{what}: its note does not verify ({why})"))
        elif signed.size != size or signed.root.hex() != root:
            problems.append(Problem("stored_checkpoint", height, f"{what}: its size and root columns ({size}, "
                                    f"{root[:16]}…) are not its signed note's ({signed.size}, "
                                    f"{signed.root.hex()[:16]}…)"))
        elif i >= len(headers):
            if size > size_now:
                problems.append(Problem("stored_checkpoint", height, f"{what} covers more transactions than "
                                        f"the chain holds ({size_now}): the chain was cut after it"))
        elif headers[i].log_size != size:
            problems.append(Problem("stored_checkpoint", height, f"{what} does not end at a block "
                                    f"(block {height} ends at {headers[i].log_size}); nodes checkpoint whole blocks"))
        elif headers[i].log_root != root:
            problems.append(Problem("stored_checkpoint", height, f"{what} is not the log head of block {height}: "
                                    "the log it was co-signed for is not this chain's"))
    return problems
