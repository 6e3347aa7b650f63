"""``python -m tools.etcd_cluster up|down|status``: a local etcd cluster from the shell (see
:mod:`tools.etcd_cluster`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from tools.etcd_cluster import EtcdCluster, EtcdClusterError


def main(argv: Sequence[str] | None = None) -> int:
    """Shell entry point: ``up --dir D --members N`` starts a cluster and writes ``D/cluster.json``;
    ``down --dir D`` kills it by pid; ``status --dir D`` prints the description and the leader."""
    parser = argparse.ArgumentParser(prog="python -m tools.etcd_cluster")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser(
        "up", help="start a cluster (or restart the dead members of DIR's), write DIR/cluster.json, exit"
    )
    up.add_argument("--dir", required=True)
    up.add_argument("--members", type=int, default=3, choices=(1, 3, 5))
    down = sub.add_parser("down", help="stop the cluster described in DIR/cluster.json")
    down.add_argument("--dir", required=True)
    down.add_argument("--purge", action="store_true", help="also delete DIR")
    st = sub.add_parser("status", help="print DIR/cluster.json with live pids and the leader")
    st.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "up":
            cluster = EtcdCluster.ensure(data_dir=args.dir, members=args.members)
            print(json.dumps(cluster.describe(), indent=2))
        elif args.cmd == "down":
            EtcdCluster.stop_dir(args.dir, purge=args.purge)
        else:
            cluster = EtcdCluster.attach(data_dir=args.dir)
            desc = cluster.describe()
            try:
                desc["leader"] = cluster.leader(timeout=2)
            except EtcdClusterError:
                desc["leader"] = None
            print(json.dumps(desc, indent=2))
    except EtcdClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
