"""The ``ledger`` command: make consortia, inspect, prove and verify a node's chain."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ledger.core import checkpoint as cp
from ledger.core.consortium import Consortium, department_members
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.core.validity import Validity
from ledger.errors import ConsortiumError, LedgerError
from ledger.store.demo_chain import DEMO_START, build_chain
from ledger.store.founding import KEY_DAYS, found_consortium
from ledger.store.keyfiles import read_consortium, read_private_key
from ledger.store.ledger_store import LedgerStore
from ledger.verify.chain import verify_chain

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _out(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def _count(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high`` (argparse's one-line error otherwise)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, not {n}")
        return n
    return parse


def _load_keys(keys_dir: Path, consortium: Consortium) -> dict[str, PrivateKey]:
    keys = {}
    for m in consortium.members:
        p = keys_dir / f"{m.name}.pem"
        if p.exists():
            k = read_private_key(p)
            if k.key_id != m.key_id:
                raise ConsortiumError(f"{p} does not hold the key of member {m.name}")
            keys[m.name] = k
    return keys


def cmd_consortium_new(a: argparse.Namespace) -> int:
    d = Path(a.dir)
    if (d / "consortium.json").exists() and not a.force:
        raise ConsortiumError(f"{d / 'consortium.json'} exists (use --force to replace it)")
    if a.force:
        for m in department_members(a.nodes):  # a new key is never written over an old one: move them away
            for old in (d / "keys" / f"{m.name}.pem", d / "cards" / f"{m.name}.json"):
                if old.exists():
                    old.replace(old.with_name(old.name + ".old"))
    # Each member makes its own key and card, the genesis is assembled and every member signs it.
    # The keys are valid from the demo chain's first block (``ledger demo``) or an hour ago, whichever is earlier.
    now = dt.datetime.now(CHINA_TZ)
    start = min(now - dt.timedelta(hours=1), DEMO_START).replace(microsecond=0)
    validity = Validity(not_before=start.isoformat(),
                        not_after=(now + dt.timedelta(days=KEY_DAYS)).replace(microsecond=0).isoformat())
    specs = department_members(a.nodes)
    consortium = found_consortium(d, specs, name=a.name, now=now, validity={m.name: validity for m in specs})
    print(f"wrote {d / 'consortium.json'} ({len(consortium.members)} members, quorum "
          f"{consortium.quorum} of {len(consortium.nodes)} nodes, signed by every member), keys in "
          f"{d / 'keys'} and member cards in {d / 'cards'}")
    return EXIT_OK


def cmd_demo(a: argparse.Namespace) -> int:
    consortium = read_consortium(a.consortium)
    keys = _load_keys(Path(a.keys), consortium)
    missing = [n for n in (*(m.name for m in consortium.nodes), "gateway") if n not in keys]
    if missing:
        raise ConsortiumError(f"no key file for {', '.join(missing)} in {a.keys} (a demo chain is signed by "
                              "every node and the gateway)")
    store = LedgerStore.open(a.db, consortium=consortium)
    start = store.tx_count()
    build_chain(consortium, keys, blocks=a.blocks, txs_per_block=a.txs, store=store, start=start)
    head = store.head()
    assert head is not None
    print(f"appended {a.blocks} blocks; height {head.height}, {store.tx_count()} transactions, "
          f"head {head.hash}")
    return EXIT_OK


def cmd_verify(a: argparse.Namespace) -> int:
    consortium = read_consortium(a.consortium) if a.consortium else None
    t0 = time.perf_counter()
    report = verify_chain(a.db, consortium, workers=a.workers)
    dt = time.perf_counter() - t0
    if a.json:
        _out({**report.to_dict(), "seconds": round(dt, 3)})
    elif report.ok:
        print(f"OK: {report.blocks} blocks, {report.transactions} transactions verified in {dt:.2f} s; "
              f"head {report.head}, log root {report.log_root}")
    else:
        first = report.first
        assert first is not None
        where = f"block {first.height}"
        if first.position is not None:
            where += f", transaction {first.position}" + ("" if first.tx_id is None else f" ({first.tx_id})")
        print(f"FAILED at {where}: {first.kind}: {first.message}")
        for p in report.problems[1:10]:
            print(f"  also: block {p.height}: {p.kind}: {p.message}")
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_show(a: argparse.Namespace) -> int:
    store = LedgerStore.open(a.db, create=False)
    if a.height is None:
        head = store.head()
        _out({"height": store.height, "head": None if head is None else head.hash,
              "transactions": store.tx_count(),
              "log_root": store.log().root().hex()})
    else:
        block = store.block(a.height)
        if block is None:
            raise LedgerError(f"no block at height {a.height}", reason="not_found")
        _out(block.to_dict())
    return EXIT_OK


def cmd_prove(a: argparse.Namespace) -> int:
    store = LedgerStore.open(a.db, create=False)
    stored = store.get_tx(a.tx)
    if stored is None:
        raise LedgerError(f"no transaction {a.tx}", reason="not_found")
    log = store.log()
    size = a.size or log.size
    _out({"tx_id": stored.tx_id, "index": stored.seq, "tree_size": size,
          "root": log.root(size).hex(), "leaf_hash": log.leaf(stored.seq).hex(),
          "proof": [h.hex() for h in log.inclusion(stored.seq, size)]})
    return EXIT_OK


def cmd_checkpoint(a: argparse.Namespace) -> int:
    consortium = read_consortium(a.consortium)
    keys = _load_keys(Path(a.keys), consortium)
    store = LedgerStore.open(a.db, consortium=consortium)
    log = store.log()
    signers = [(m.name, keys[m.name]) for m in consortium.nodes if m.name in keys]
    note = cp.sign(cp.Checkpoint(consortium.origin, log.size, log.root()), signers)
    store.add_checkpoint(log.size, log.root().hex(), note)
    sys.stdout.write(note)
    return EXIT_OK


def cmd_consistency(a: argparse.Namespace) -> int:
    consortium = read_consortium(a.consortium)
    store = LedgerStore.open(a.db, create=False)
    old_note = Path(a.old).read_text(encoding="utf-8")
    verifiers = {m.name: m.public_key for m in consortium.nodes}
    old, _ = cp.verify(old_note, verifiers, quorum=consortium.quorum, origin=consortium.origin)
    from ledger.core.tree import verify_consistency_hashes

    log = store.log()
    proof = log.consistency(old.size, log.size) if old.size <= log.size else []
    ok = old.size <= log.size and verify_consistency_hashes(old.size, log.size, old.root, log.root(), proof)
    _out({"ok": ok, "old_size": old.size, "new_size": log.size, "new_root": log.root().hex(),
          "proof": [h.hex() for h in proof]})
    if not ok:
        print(f"FAILED: the log of size {log.size} does not extend the checkpoint of size {old.size}",
              file=sys.stderr)
    return EXIT_OK if ok else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ledger", description="Muck-ticket ledger tools (电子渣票账本工具)")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("consortium", help="consortium (genesis) files")
    csub = c.add_subparsers(dest="action", required=True)
    n = csub.add_parser("new", help="demo: every member makes its key and card, all sign the genesis")
    n.add_argument("--dir", required=True)
    n.add_argument("--nodes", type=int, default=4)
    n.add_argument("--name", default="cq-muck")
    n.add_argument("--force", action="store_true")
    n.set_defaults(func=cmd_consortium_new)

    d = sub.add_parser("demo", help="append demo blocks signed by every node key")
    d.add_argument("--db", required=True)
    d.add_argument("--consortium", required=True)
    d.add_argument("--keys", required=True)
    d.add_argument("--blocks", type=_count(1, 100_000), default=10, help="blocks to append (1-100000)")
    d.add_argument("--txs", type=_count(1, 10_000), default=100, help="transactions per block (1-10000)")
    d.set_defaults(func=cmd_demo)

    v = sub.add_parser("verify", help="verify a chain end to end (exit 0 only if all holds)")
    v.add_argument("--db", required=True, help="database URL or SQLite file")
    v.add_argument("--consortium", help="trusted consortium file (default: the one stored)")
    v.add_argument("--workers", type=_count(1, 256), default=None, help="processes (default: all cores)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_verify)

    s = sub.add_parser("show", help="print the head or one block")
    s.add_argument("--db", required=True)
    s.add_argument("--height", type=int)
    s.set_defaults(func=cmd_show)

    pr = sub.add_parser("prove", help="RFC 9162 inclusion proof of a transaction")
    pr.add_argument("--db", required=True)
    pr.add_argument("--tx", required=True)
    pr.add_argument("--size", type=int)
    pr.set_defaults(func=cmd_prove)

    ck = sub.add_parser("checkpoint", help="sign a C2SP checkpoint of the log with the node keys")
    ck.add_argument("--db", required=True)
    ck.add_argument("--consortium", required=True)
    ck.add_argument("--keys", required=True)
    ck.set_defaults(func=cmd_checkpoint)

    cs = sub.add_parser("consistency", help="prove the log grew from a kept checkpoint")
    cs.add_argument("--db", required=True)
    cs.add_argument("--consortium", required=True)
    cs.add_argument("--old", required=True, help="file with the checkpoint note kept earlier")
    cs.set_defaults(func=cmd_consistency)
    _add_extra_commands(sub)
    return p


def _add_extra_commands(sub: Any) -> None:
    """The commands of the e-ticket layer: audit (every node) and report."""
    from ledger.cli import actor_keys, audit, genesis, governance, report, tls

    genesis.register(sub)
    governance.register(sub)
    audit.register(sub)
    report.register(sub)
    tls.register(sub)
    actor_keys.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return int(a.func(a))
    except LedgerError as exc:
        print(f"ledger: error: {exc.message} [{exc.reason}]", file=sys.stderr)
        return exc.exit_code if exc.exit_code != EXIT_OK else EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"ledger: error: {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # one line for people; MUCK_DEBUG=1 shows the traceback
        import os

        if os.environ.get("MUCK_DEBUG"):
            raise
        print(f"ledger: internal error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
