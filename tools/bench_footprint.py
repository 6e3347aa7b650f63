"""``scripts/bench-footprint``: what a busy night costs — CPU and memory of 4 nodes, the 3-member etcd and the API
carrying the simulated city (:mod:`tools.simulate`), and the ledger's growth per ticket.

    scripts/bench-footprint                         # the whole city in real time, a measured hour
    scripts/bench-footprint --minutes 10 --speed 2  # shorter: ten minutes of twice the traffic
    scripts/bench-footprint --idle --minutes 10     # the stack with no city: what it costs between nights

It starts the stack (``tools.serve --ordering etcd``: 4 nodes over mutual TLS, etcd ordering, the API under
gunicorn, the notifier, a fake WeChat) in a temporary directory, sets the city up, lets the night run for a
warm-up, then samples every process of the stack each ``--interval`` seconds for ``--minutes``: CPU seconds
(utime + stime from /proc) over the window as a share of the machine's cores, and resident memory (VmRSS),
per process kind.  The product's footprint is nodes + etcd + API + notifier; the launcher, the fake WeChat
and the simulator itself are reported apart.  Ledger growth: bytes of transactions added over the
window, per ticket issued in it (a ticket's transactions: issue, exit, GPS batches, receipt), and the node's
files per ticket on the chain.  Goal (issue 15): under 10 % of 2 cores and under 2 GB in all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tools.proc import Child, tail

PRODUCT = ("node", "etcd", "api", "notifier")
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def kind_of(cmdline: str) -> str | None:
    """Which part of the stack a process is, from its command line (None: not ours)."""
    # the launcher first: its own command line names the others (``--ordering etcd``, ``--simulate``)
    for pattern, kind in ((r"-m tools\.serve\b", "launcher"), (r"-m tools\.simulate\b", "simulator"),
                          (r"consortium_nodes", "node"), (r"^\S*etcd\b", "etcd"), (r"gunicorn", "api"),
                          (r"ticket_api notify", "notifier"), (r"miniprogram_stub wechat", "fake_wechat")):
        if re.search(pattern, cmdline):
            return kind
    return None


def _read(pid: int) -> tuple[str, int, float, int] | None:
    """(cmdline, ppid, cpu seconds, rss bytes) of a live process, None when it is gone."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None
    return cmd, int(stat[1]), (int(stat[11]) + int(stat[12])) / _TICK, rss


def stack_processes(root_pid: int, var: Path) -> dict[int, tuple[str, float, int]]:
    """Every process of the stack: the launcher's descendants and whatever names its data directory
    (the nodes and etcd run detached), as ``{pid: (kind, cpu seconds, rss)}``."""
    procs: dict[int, tuple[str, int, float, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _read(int(entry.name))
            if info is not None:
                procs[int(entry.name)] = info
    ours = {pid for pid, (cmd, *_rest) in procs.items() if str(var) in cmd} | {root_pid}
    grew = True
    while grew:
        new = {pid for pid, (_c, ppid, *_r) in procs.items() if ppid in ours and pid not in ours}
        ours |= new
        grew = bool(new)
    out = {}
    for pid in ours:
        if pid in procs:
            cmd, _ppid, cpu, rss = procs[pid]
            kind = kind_of(cmd)
            if kind is not None:
                out[pid] = (kind, cpu, rss)
    return out


def _commands(procs: dict[int, tuple[str, float, int]]) -> dict[str, list[str]]:
    """A short command line of each process, by kind (what was counted as what)."""
    out: dict[str, list[str]] = defaultdict(list)
    for pid, (kind, _c, _r) in sorted(procs.items()):
        info = _read(pid)
        if info is not None:
            out[kind].append(info[0][:90])
    return dict(out)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _tickets(summary_log: Path) -> int | None:
    m = re.findall(r'"tickets_issued": (\d+)', summary_log.read_text(encoding="utf-8") if summary_log.exists() else "")
    return int(m[-1]) if m else None


def measure(args: argparse.Namespace) -> dict[str, Any]:
    var = Path(tempfile.mkdtemp(prefix="bench-footprint-"))
    sim = (f"--fraction {args.fraction} --speed {args.speed} --hours 24 "
           f"--duration {args.warmup + args.minutes * 60 + 30} --summary {var / 'sim-summary.json'}")
    city = [] if args.idle else ["--simulate", "--simulate-args", sim]
    if args.batch_wait_ms is not None:
        city += ["--batch-wait-ms", str(args.batch_wait_ms)]
    stack = Child("the stack", [sys.executable, "-m", "tools.serve", "--var", str(var), "--port", "0",
                                "--wechat-port", "0", "--ordering", "etcd", *city], log=var / "serve.out")
    try:
        deadline = time.monotonic() + 180
        while not (var / "serve.ready").exists():
            if not stack.running() or time.monotonic() > deadline:
                raise SystemExit("bench-footprint: the stack did not start:\n" + tail(var / "serve.out", 30))
            time.sleep(1)
        print(f"[footprint] stack up in {var}; the city is being set up", file=sys.stderr, flush=True)
        while not args.idle and "ready in" not in (var / "simulate.log").read_text(encoding="utf-8",
                                                                                   errors="replace"):
            if not stack.running():
                raise SystemExit("bench-footprint: the stack stopped:\n" + tail(var / "serve.out", 30))
            time.sleep(2)
        what = "the stack idles" if args.idle else "the night runs"
        print(f"[footprint] {what}; warm-up {args.warmup:.0f} s, then {args.minutes:g} min measured",
              file=sys.stderr, flush=True)
        time.sleep(args.warmup)
        node_dir = var / "nodes"
        first = stack_processes(stack.pid, var)
        t0 = time.monotonic()
        tickets0, body0, blocks0, txs0 = _chain_counts(var)
        rss: dict[str, list[int]] = defaultdict(list)
        end = t0 + args.minutes * 60
        last = first
        while time.monotonic() < end and stack.running():
            time.sleep(args.interval)
            last = stack_processes(stack.pid, var)
            per_kind: dict[str, int] = defaultdict(int)
            for kind, _cpu, r in last.values():
                per_kind[kind] += r
            for kind, r in per_kind.items():
                rss[kind].append(r)
            rss["product"].append(sum(per_kind[k] for k in PRODUCT))
        window = time.monotonic() - t0
        tickets_all, body1, blocks1, txs1 = _chain_counts(var)
        tickets, body, blocks, txs = tickets_all - tickets0, body1 - body0, blocks1 - blocks0, txs1 - txs0
        files = _dir_bytes(node_dir) / 4
        commands = {kind: cmd for kind, cmd in _commands(last).items()}
    finally:
        stack.stop(90)
    cores = os.cpu_count() or 1
    cpu: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for pid, (kind, c1, _r) in last.items():
        c0 = first.get(pid, (kind, 0.0, 0))[1]
        cpu[kind] += c1 - c0
        counts[kind] += 1
    product_cpu = sum(cpu[k] for k in PRODUCT)
    return {
        "machine": {"cores": cores, "python": platform.python_version(), "load_avg_end": os.getloadavg()},
        "command": " ".join(["scripts/bench-footprint", *sys.argv[1:]]),
        "city": None if args.idle else {"fraction": args.fraction, "speed": args.speed},
        "batch_wait_ms": args.batch_wait_ms,
        "window_s": round(window, 1),
        "tickets_in_window": tickets,
        "cpu_share_of_machine_pct": {k: round(100 * v / window / cores, 2) for k, v in sorted(cpu.items())},
        "product_cpu_pct_of_2_cores": round(100 * product_cpu / window / 2, 2),
        "rss_max_mb": {k: round(max(v) / 2**20, 1) for k, v in sorted(rss.items()) if v},
        "processes": dict(sorted(counts.items())),
        "blocks_in_window": blocks,
        "txs_per_block": round(txs / blocks, 2) if blocks else None,
        "blocks_per_ticket": round(blocks / tickets, 2) if tickets else None,
        "ledger_tx_bytes_per_ticket": round(body / tickets) if tickets else None,
        "ledger_file_bytes_per_node": round(files),
        "ledger_file_bytes_per_ticket": round(files / tickets_all) if tickets_all else None,
        "tickets_on_chain": tickets_all,
        "commands": commands,
        "goal": {"cpu_pct_of_2_cores": 10, "rss_total_mb": 2048},
    }


def _chain_counts(var: Path) -> tuple[int, int, int, int]:
    """(valid tickets, bytes of transaction bodies, blocks, transactions) one node's database holds now
    (read-only)."""
    import sqlite3

    for db in sorted((var / "nodes").glob("*/ledger.db")):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
                tickets = conn.execute("select count(*) from ledger_transactions "
                                       "where type = 'ticket.issue' and code = 'valid'").fetchone()[0]
                body, txs = conn.execute("select coalesce(sum(length(body)), 0), count(*) "
                                         "from ledger_transactions").fetchone()
                blocks = conn.execute("select count(*) from ledger_blocks").fetchone()[0]
                return int(tickets), int(body), int(blocks), int(txs)
        except sqlite3.Error:
            continue
    return 0, 0, 0, 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench-footprint", description=__doc__.splitlines()[0])
    p.add_argument("--fraction", type=float, default=1.0, help="size of the city (default 1: the real one)")
    p.add_argument("--speed", type=float, default=1.0, help="time-lapse of the night (default 1: real time)")
    p.add_argument("--minutes", type=float, default=60.0, help="measured window (default 60)")
    p.add_argument("--warmup", type=float, default=120.0, help="seconds of night before measuring (default 120)")
    p.add_argument("--interval", type=float, default=5.0, help="sampling interval in seconds (default 5)")
    p.add_argument("--batch-wait-ms", type=int, default=None,
                   help="the nodes' batch_max_wait_ms (default: the served stack's, tools.serve --batch-wait-ms)")
    p.add_argument("--idle", action="store_true",
                   help="no city: the stack alone, as between nights (the consortium's clock still ticks)")
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)
    result = measure(args)
    text = json.dumps(result, ensure_ascii=False, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
