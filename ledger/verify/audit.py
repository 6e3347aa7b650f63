"""Audit several nodes' chains: verify each end to end, replay it through the rules, compare them, check checkpoints."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ledger.core import checkpoint as cp
from ledger.core.block import Block, BlockHeader
from ledger.core.builder import StateMachine, rebuild
from ledger.core.consortium import Consortium
from ledger.core.governed import Governed
from ledger.core.tree import CompactRange, hash_leaf, verify_consistency_hashes
from ledger.errors import LedgerError
from ledger.machines import MachineFactory
from ledger.store import schema
from ledger.store.governance_log import checkpoint_members, store_history
from ledger.store.ledger_store import LedgerStore
from ledger.verify.chain import verify_chain
from ledger.verify.provenance import signers


def check_kept_checkpoint(store: LedgerStore, consortium: Consortium, note: str) -> dict[str, Any]:
    """Prove with an RFC 9162 consistency proof that this node's log (rebuilt from the stored
    transaction bodies) extends a checkpoint the regulator kept from an earlier audit (co-signed by the nodes
    in force at the block it covers)."""
    consortium = checkpoint_members(store_history(store, consortium), [h.log_size for h in store.headers()], note)
    c, signers = cp.verify(note, {m.name: m.public_key for m in consortium.nodes}, quorum=consortium.quorum,
                           origin=consortium.origin)
    log = store.log_from_bodies()
    if c.size > log.size:
        return {"ok": False, "old_size": c.size, "size": log.size,
                "message": f"log has {log.size} entries, fewer than the kept checkpoint's {c.size}: "
                           "history was truncated after it"}
    proof = log.consistency(c.size, log.size)
    ok = verify_consistency_hashes(c.size, log.size, c.root, log.root(), proof)
    return {"ok": ok, "old_size": c.size, "size": log.size, "old_root": c.root.hex(), "root": log.root().hex(),
            "proof": [h.hex() for h in proof], "witnesses": signers,
            "message": "log extends the kept checkpoint" if ok else
            "log does NOT extend the kept checkpoint: history was rewritten after it"}


def _leaves(url: str) -> Generator[tuple[bytes, int, int, str], None, None]:
    """(leaf hash of the stored body, height, position, tx id) of every stored transaction, in log order."""
    store = LedgerStore.open(url, create=False)
    try:
        tx = schema.transactions
        with store.engine.connect() as conn:
            rows = conn.execution_options(yield_per=10000).execute(
                sa.select(tx.c.body, tx.c.height, tx.c.position, tx.c.tx_id).order_by(tx.c.seq))
            for body, height, position, tx_id in rows:
                yield hash_leaf(bytes(body)), int(height), int(position), str(tx_id)
    finally:
        store.close()


def first_difference(url: str, reference_url: str) -> dict[str, Any] | None:
    """Where one node's transaction log first departs from a reference node's, over the entries both hold:
    the log index, and the block, position and tx id the reference holds there (what the other node
    dropped, changed or moved).  None when one log is a prefix of the other."""
    mine, theirs = _leaves(url), _leaves(reference_url)
    try:
        for index, (a, b) in enumerate(zip(mine, theirs, strict=False)):
            if a[0] != b[0]:
                return {"index": index, "height": b[1], "position": b[2], "tx_id": b[3]}
        return None
    finally:
        mine.close()
        theirs.close()


def _newest_checkpoint(store: LedgerStore, genesis: Consortium) -> tuple[int, str] | None:
    history = store_history(store, genesis)
    sizes = [h.log_size for h in store.headers()]
    for size, _root, note in reversed(store.checkpoints()):
        consortium = checkpoint_members(history, sizes, note)
        try:
            cp.verify(note, {m.name: m.public_key for m in consortium.nodes}, quorum=consortium.quorum,
                      origin=consortium.origin)
            return size, note
        except LedgerError:
            continue
    return None


def _name_signer(problem: dict[str, Any] | None, store: LedgerStore, consortium: Consortium) -> None:
    """Add to a finding about one transaction who signed it (``signer``, and ``relayed_by`` for an act its
    actor signed: docs/PROVENANCE.md "Signers"), when the node still holds a readable copy of it."""
    if not problem or not problem.get("tx_id"):
        return
    try:
        stored = store.get_tx(str(problem["tx_id"]))
        if stored is not None:
            problem.update(signers(stored.tx.submitter, stored.tx.actor, stored.tx.payload, consortium))
    except LedgerError:
        return  # a damaged record: the finding says so already


def audit_nodes(
    dbs: Mapping[str, str],
    consortium: Consortium,
    *,
    machine_factory: MachineFactory | None = None,
    kept_checkpoint: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Audit every node's database and say the truth in ``ok``.

    Per node: full verification (links, Merkle roots, certificates, signatures,
    tx ids, the stored columns, stored checkpoints, genesis), re-execution of the
    business rules from genesis (``machine_factory``), and consistency with the
    regulator's kept checkpoint.  Across nodes: the first height where a node's
    header differs from the majority's, and for each bad node where its
    transaction log departs from a healthy node's (``differs_from``), which
    also pins a node that rewrote its history consistently.  Returns also the
    newest checkpoint co-signed by a quorum that a healthy node stored, for the
    regulator to keep.
    """
    nodes: dict[str, dict[str, Any]] = {}
    headers: dict[str, list[str]] = {}
    log_sizes: dict[str, list[int]] = {}
    newest: dict[str, tuple[int, str]] = {}
    for name, url in dbs.items():
        entry: dict[str, Any] = {"ok": True}
        nodes[name] = entry
        headers[name] = []
        log_sizes[name] = []
        try:
            report = verify_chain(url, consortium, workers=workers)
        except LedgerError as exc:
            entry.update(ok=False, error=exc.message)
            continue
        entry.update(blocks=report.blocks, transactions=report.transactions, head=report.head,
                     verified=report.ok, first_problem=None if report.first is None else report.first.to_dict())
        entry["ok"] = report.ok
        store = LedgerStore.open(url, create=False)
        try:
            for header in store.headers():
                headers[name].append(header.hash)
                log_sizes[name].append(header.log_size)
            # Re-execute a chain that verifies; and one whose only fault is stored validation codes that do not
            # match its flags digests, where re-execution names the transaction the digest cannot.
            codes_only = not report.ok and all(p.kind == "flags" for p in report.problems)
            if machine_factory is not None and (report.ok or codes_only):
                problem = replay(store, consortium, machine_factory(consortium))
                first = entry["first_problem"]
                if report.ok:
                    entry["reexecuted"] = problem is None
                    if problem is not None:
                        entry["ok"] = False
                        entry["first_problem"] = {"kind": "reexecution", "height": problem.height,
                                                  "position": problem.position, "tx_id": problem.tx_id,
                                                  "message": problem.message}
                elif problem is not None and problem.position is not None and problem.height == first["height"]:
                    first.update(position=problem.position, tx_id=problem.tx_id,
                                 message=f"{first['message']}; re-execution: {problem.message}")
            if kept_checkpoint is not None:
                kept = check_kept_checkpoint(store, consortium, kept_checkpoint)
                entry["checkpoint"] = kept
                entry["ok"] = entry["ok"] and kept["ok"]
            found = _newest_checkpoint(store, consortium)
            if found is not None:
                newest[name] = found
            _name_signer(entry.get("first_problem"), store, consortium)
        finally:
            store.close()
    disagreements: list[dict[str, Any]] = []
    top = max((len(v) for v in headers.values()), default=0)
    for h in range(top):
        present = {n: hs[h] for n, hs in headers.items() if len(hs) > h}
        if len(present) < 2:
            break
        majority, votes = Counter(present.values()).most_common(1)[0]
        odd = sorted(n for n, x in present.items() if x != majority)
        if odd:
            disagreements.append({"height": h, "majority": majority, "votes": votes, "nodes": odd})
            break
    bad = sorted({n for n, r in nodes.items() if not r["ok"]} | {n for d in disagreements for n in d["nodes"]})
    healthy = [n for n in dbs if n not in bad]
    _locate(nodes, dbs, bad, healthy, disagreements, log_sizes)
    kept_by_healthy = [newest[n] for n in healthy if n in newest]
    checkpoint = max(kept_by_healthy)[1] if kept_by_healthy else None
    if bad:
        first = next((nodes[n].get("first_problem") for n in bad if nodes[n].get("first_problem")), None)
        where = "" if not first else f" (first problem at block {first['height']}: {first['message']})"
        advice = (f"isolate {', '.join(bad)}{where}: stop it, keep its database as evidence, rebuild it from "
                  f"healthy members ({', '.join(healthy) or 'none'}) by restarting it with an empty database "
                  "(it catches up and re-executes certified blocks), and find out who changed it")
    else:
        advice = "all nodes verify, re-execute and agree; keep the returned checkpoint for the next audit"
    return {"ok": not bad and bool(dbs), "bad_nodes": bad, "nodes": nodes, "disagreements": disagreements,
            "checkpoint": checkpoint, "advice": advice}


def _locate(nodes: dict[str, dict[str, Any]], dbs: Mapping[str, str], bad: list[str], healthy: list[str],
            disagreements: list[dict[str, Any]], log_sizes: Mapping[str, list[int]]) -> None:
    """Pin every bad node to a block even when its own database is self-consistent.

    ``differs_from``: where its transaction log departs from a healthy node's (one whose log extends the
    kept checkpoint, when there is one).  A node whose only fault is the kept checkpoint (a consistent
    rewrite of history) or its disagreement with the majority gets a ``first_problem`` there.
    """
    preferred = [n for n in healthy if nodes[n].get("checkpoint", {}).get("ok", True)]
    candidates = preferred or healthy
    reference = candidates[0] if candidates else None
    for name in bad:
        entry = nodes[name]
        if "error" in entry:
            continue
        entry["ok"] = False
        diff = first_difference(dbs[name], dbs[reference]) if reference is not None else None
        if diff is not None:
            entry["differs_from"] = {"node": reference, **diff}
        if entry.get("first_problem") is not None:
            continue
        kept = entry.get("checkpoint")
        odd = next((d for d in disagreements if name in d["nodes"]), None)
        if diff is not None:
            height, position, tx_id = diff["height"], diff["position"], diff["tx_id"]
            where = (f"its log departs from {reference}'s at log index {diff['index']} (block {height}, "
                     f"transaction {position})")
        elif odd is not None:
            height, position, tx_id = odd["height"], None, None
            where = f"its block {height} differs from the one {odd['votes']} nodes hold"
        elif kept is not None:
            # The audit can only bound it: the block where this log reaches the kept checkpoint's size.
            sizes = log_sizes[name]
            i = bisect.bisect_left(sizes, int(kept["old_size"]))
            height, position, tx_id = i, None, None
            if i >= len(sizes):
                where = f"its chain ends before block {height}: it was cut after the kept checkpoint"
            else:
                where = (f"{'no healthy node to compare with: ' if reference is None else ''}the change is at or "
                         f"before block {height}")
        else:
            continue
        if kept is not None and not kept["ok"]:
            entry["first_problem"] = {"kind": "checkpoint", "height": height, "position": position,
                                      "tx_id": tx_id, "message": f"{kept['message']}; {where}"}
        else:
            entry["first_problem"] = {"kind": "diverged", "height": height, "position": position,
                                      "tx_id": tx_id, "message": f"verifies on its own, but {where}"}


@dataclass(frozen=True)
class ReplayProblem:
    """The first block whose re-execution differs from what is stored."""

    height: int
    message: str
    position: int | None = None
    tx_id: str | None = None


def replay(
    store: LedgerStore,
    consortium: Consortium,
    machine: StateMachine,
    *,
    on_block: Callable[[Block], None] | None = None,
) -> ReplayProblem | None:
    """Re-run every stored block through ``machine`` from genesis; stop at the first difference.

    A difference means the stored header, transactions or validation codes are
    not what the rules give: the database was changed, or this node diverged.
    """
    if not isinstance(machine, Governed):  # governance transactions change the membership block by block
        machine = Governed(machine, consortium)
    previous: BlockHeader | None = None
    log = CompactRange()
    for h in range(store.height + 1):
        block = store.block(h)
        if block is None:
            return ReplayProblem(h, f"block {h} is missing")
        built = rebuild(block, previous, log, consortium, machine)
        if built.block.transactions != block.transactions:
            return ReplayProblem(h, f"block {h} holds transactions the rules drop (duplicates or undecodable)")
        for i, (mine, stored) in enumerate(zip(built.block.codes, block.codes, strict=True)):
            if mine != stored:
                return ReplayProblem(h, f"block {h}: transaction {i} re-executes to {mine!r}, stored {stored!r}",
                                     position=i, tx_id=block.transactions[i].tx_id)
        if built.block.header != block.header:
            return ReplayProblem(h, f"block {h} does not re-execute to its stored header")
        if on_block is not None:
            on_block(block)
        previous, log = block.header, built.log
    return None
