"""``scripts/consortium``: a local consortium on loopback (up, down, stop, start, status), its load generator
(load) and the product's node commands (run, audit), in one command line.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

from consortium_nodes.__main__ import build_parser, run_parsed
from tools.local_consortium import register


def cmd_load(a: argparse.Namespace) -> int:
    from tools.load import run_load

    report = run_load(Path(a.consortium), seconds=a.seconds, rate=a.rate, batch=a.batch, wait_final=not a.no_wait)
    report.pop("accepted_ids", None)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0 if report["lost"] == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(0o077)  # the consortium's files, keys and logs: owner only
    p, sub = build_parser("scripts/consortium")
    ld = sub.add_parser("load", help="submit a steady stream of valid signed transactions")
    ld.add_argument("--consortium", default="var/consortium.json")
    ld.add_argument("--seconds", type=float, default=10)
    ld.add_argument("--rate", type=float, default=200, help="transactions per second offered")
    ld.add_argument("--batch", type=int, default=50, help="transactions per HTTP request")
    ld.add_argument("--no-wait", action="store_true", help="do not wait for finality at the end")
    ld.set_defaults(func=cmd_load)
    register(sub)
    _add_netns(sub)
    return run_parsed(p, argv)


def _add_netns(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``up --netns``: the separate-hosts layout (:mod:`tools.netns_consortium`); ``down`` of such a layout
    also deletes its namespaces and bridge."""
    up, down = sub.choices["up"], sub.choices["down"]
    up.add_argument("--netns", action="store_true",
                    help="run the nodes on separate hosts (Linux network namespaces, root): four node hosts, "
                         "three etcd members on three of them, an API host; etcd ordering")
    plain_up, plain_down = up.get_default("func"), down.get_default("func")

    def cmd_up(a: argparse.Namespace) -> int:
        if not a.netns:
            return int(plain_up(a))
        from tools.netns_consortium import NetnsConsortium

        nc = NetnsConsortium(root=Path(a.dir))
        desc = nc.up(state_machine=a.state_machine, batch_wait_ms=a.batch_wait_ms, tls=not a.no_tls)
        assert nc.net is not None
        nc.net.keep()  # the hosts outlive this command: 'down' deletes them
        print(json.dumps(desc, ensure_ascii=False, indent=2))
        return 0

    def cmd_down(a: argparse.Namespace) -> int:
        desc_path = Path(a.dir) / "consortium.json"
        if desc_path.exists() and "netns" in json.loads(desc_path.read_text(encoding="utf-8")):
            from tools.netns_consortium import NetnsConsortium

            NetnsConsortium(root=Path(a.dir)).down(purge=a.purge)
            return 0
        return int(plain_down(a))

    up.set_defaults(func=cmd_up)
    down.set_defaults(func=cmd_down)


if __name__ == "__main__":
    raise SystemExit(main())
