"""``ledger audit``: verify every node's chain, re-execute the rules, compare nodes, keep checkpoints."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ledger.errors import ConsortiumError
from ledger.machines import MachineFactory, machine_factory
from ledger.store.keyfiles import read_consortium
from ledger.verify.audit import audit_nodes


def _machine_factory(name: str) -> MachineFactory | None:
    """The factory of the rules to re-execute the chains with, or None for ``none`` (signatures and links only)."""
    return None if name == "none" else machine_factory(name)


def _node_dbs(desc_path: Path) -> tuple[dict[str, str], str, str]:
    """Node database URLs, genesis path and rules from a local consortium description."""
    try:
        desc = json.loads(desc_path.read_text(encoding="utf-8"))
        dbs = {}
        for n in desc["nodes"]:
            cfg = json.loads(Path(n["config"]).read_text(encoding="utf-8"))
            dbs[n["name"]] = str(cfg["db"])
        return dbs, str(desc["consortium"]), str(desc.get("state_machine", "eticket"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConsortiumError(f"cannot read consortium description {desc_path}: {exc}") from exc


def cmd_audit(a: argparse.Namespace) -> int:
    dbs: dict[str, str] = {}
    genesis = a.consortium
    rules = a.rules
    if a.nodes:
        dbs, desc_genesis, desc_rules = _node_dbs(Path(a.nodes))
        genesis = genesis or desc_genesis
        rules = rules or desc_rules
    for item in a.db or []:
        name, sep, url = item.partition("=")
        if not sep:
            raise ConsortiumError(f"--db takes NAME=URL, got {item!r}")
        dbs[name] = url
    if not dbs:
        raise ConsortiumError("name the nodes: --nodes var/consortium.json or --db NAME=URL")
    if not genesis:
        raise ConsortiumError("--consortium (the trusted genesis file) is required with --db")
    consortium = read_consortium(genesis)
    kept_path = Path(a.checkpoint) if a.checkpoint else None
    kept = kept_path.read_text(encoding="utf-8") if kept_path is not None and kept_path.exists() else None
    report = audit_nodes(dbs, consortium, machine_factory=_machine_factory(rules or "eticket"),
                         kept_checkpoint=kept, workers=a.workers)
    if report["ok"] and kept_path is not None and report["checkpoint"]:
        kept_path.write_text(report["checkpoint"], encoding="utf-8")
        report["checkpoint_saved"] = str(kept_path)
    if a.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        _print_human(report)
    return 0 if report["ok"] else 1


def _print_human(report: dict[str, Any]) -> None:
    print("AUDIT OK" if report["ok"] else "AUDIT FAILED")
    for name, r in report["nodes"].items():
        state = "ok" if r["ok"] else "BAD"
        line = f"  {name}: {state}, {r.get('blocks', '?')} blocks, {r.get('transactions', '?')} transactions"
        fp = r.get("first_problem")
        if fp:
            line += f"; block {fp['height']}" + ("" if fp.get("position") is None else f" tx {fp['position']}")
            line += f": {fp['message']}"
            who = fp.get("signer")
            if who:
                line += f" (signed by {who.get('member') or who.get('device')}, key {who['key_id']})"
        d = r.get("differs_from")
        if d:
            line += (f"; its log departs from {d['node']}'s at index {d['index']} (block {d['height']} "
                     f"tx {d['position']})")
        if r.get("checkpoint") and not r["checkpoint"]["ok"]:
            line += f"; checkpoint: {r['checkpoint']['message']}"
        if r.get("error"):
            line += f"; {r['error']}"
        print(line)
    for d in report["disagreements"]:
        print(f"  nodes {', '.join(d['nodes'])} differ from the majority at block {d['height']}")
    print(f"next: {report['advice']}", file=sys.stdout)


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="audit every node's chain (exit 0 only when all verify and agree)")
    p.add_argument("--nodes", help="a local consortium description (var/consortium.json)")
    p.add_argument("--db", action="append", metavar="NAME=URL", help="a node's database (repeat)")
    p.add_argument("--consortium", help="the trusted consortium (genesis) file")
    p.add_argument("--rules", choices=["eticket", "null", "none"], help="rules to re-execute (default: eticket)")
    p.add_argument("--checkpoint", help="file with the checkpoint kept from the last audit; updated when ok")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit)
