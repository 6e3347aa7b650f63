"""Audit several nodes' chains: verify each end to end, re-execute the rules, compare them, check checkpoints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from . import checkpoint as cp
from .consortium import Consortium
from .errors import LedgerError
from .replay import replay
from .statemachine import StateMachine
from .store import LedgerStore
from .tree import verify_consistency_hashes
from .verify import verify_chain

MachineFactory = Callable[[Consortium], StateMachine]


def check_kept_checkpoint(store: LedgerStore, consortium: Consortium, note: str) -> dict[str, Any]:
    """Prove with an RFC 9162 consistency proof that this node's log (rebuilt from the stored
    transaction bodies) extends a checkpoint the regulator kept from an earlier audit."""
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


def _newest_checkpoint(store: LedgerStore, consortium: Consortium) -> tuple[int, str] | None:
    verifiers = {m.name: m.public_key for m in consortium.nodes}
    for size, _root, note in reversed(store.checkpoints()):
        try:
            cp.verify(note, verifiers, quorum=consortium.quorum, origin=consortium.origin)
            return size, note
        except LedgerError:
            continue
    return None


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
    tx ids, log heads), re-execution of the business rules from genesis
    (``machine_factory``), and consistency with the regulator's kept
    checkpoint.  Across nodes: the first height where a node's header differs
    from the majority's.  Returns also the newest checkpoint co-signed by a
    quorum that every healthy node's log contains, for the regulator to keep.
    """
    nodes: dict[str, dict[str, Any]] = {}
    headers: dict[str, list[str]] = {}
    newest: list[tuple[int, str]] = []
    for name, url in dbs.items():
        entry: dict[str, Any] = {"ok": True}
        nodes[name] = entry
        try:
            report = verify_chain(url, consortium, workers=workers)
        except LedgerError as exc:
            entry.update(ok=False, error=exc.message)
            headers[name] = []
            continue
        entry.update(blocks=report.blocks, transactions=report.transactions, head=report.head,
                     verified=report.ok, first_problem=None if report.first is None else report.first.to_dict())
        entry["ok"] = report.ok
        store = LedgerStore.open(url, create=False)
        try:
            headers[name] = [h.hash for h in store.headers()]
            if machine_factory is not None:
                problem = replay(store, consortium, machine_factory(consortium)) if report.ok else None
                entry["reexecuted"] = report.ok and problem is None
                if problem is not None:
                    entry["ok"] = False
                    entry["first_problem"] = {"kind": "reexecution", "height": problem.height,
                                              "position": problem.position, "tx_id": problem.tx_id,
                                              "message": problem.message}
            if kept_checkpoint is not None:
                kept = check_kept_checkpoint(store, consortium, kept_checkpoint)
                entry["checkpoint"] = kept
                entry["ok"] = entry["ok"] and kept["ok"]
            found = _newest_checkpoint(store, consortium)
            if found is not None and entry["ok"]:
                newest.append(found)
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
    checkpoint = max(newest)[1] if newest else None
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
