"""Benchmark a local 4-node consortium: finalised tx/s and due-to-final latency at steady load, with mutual TLS
and with plain HTTP, against one central PostgreSQL hash chain (:mod:`tools.pg_chain`), all in one run.

Every system is up at once and the offered rates are interleaved (rate 1: TLS, plain, PostgreSQL; rate 2: …),
so outside load drifting during the run weighs on all of them alike; the ratios of one run are what count.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nacl.bindings
import psycopg

from ledger.core.consortium import new_consortium
from ledger.store.keyfiles import write_consortium, write_keys
from tools import pg_chain
from tools.load import run_load
from tools.local_consortium import LocalConsortium, default_parameters
from tools.proc import Child, listen_socket, wait_http

PG_DSN = os.environ.get("BENCH_PG_DSN", "host=127.0.0.1 port=5432 dbname=test user=postgres")


def _raw_verify(n: int) -> float:
    pk, sk = nacl.bindings.crypto_sign_keypair()
    msg = b"x" * 400
    sm = nacl.bindings.crypto_sign(msg, sk)
    t0 = time.perf_counter()
    for _ in range(n):
        nacl.bindings.crypto_sign_open(sm, pk)
    return n / (time.perf_counter() - t0)


def raw_rate(seconds_per_core: float = 1.0) -> dict[str, float]:
    """Raw libsodium Ed25519 verifications per second, one core and all cores, measured now."""
    one = _raw_verify(int(20000 * seconds_per_core))
    cores = os.cpu_count() or 1
    with mp.get_context("fork").Pool(cores) as pool:
        t0 = time.perf_counter()
        pool.map(_raw_verify, [int(one * seconds_per_core)] * cores)
        dt = time.perf_counter() - t0
    return {"one_core": round(one), "all_cores": round(one * cores * seconds_per_core / dt)}


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (from /proc; 0 for a process gone)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _desc_pids(desc: dict[str, Any]) -> dict[str, list[int]]:
    """The process ids of a consortium description's nodes and etcd members."""
    return {"nodes": [int(n["pid"]) for n in desc["nodes"] if n.get("pid")],
            "etcd": [int(p) for p in (desc.get("etcd") or {}).get("pids", {}).values() if p]}


class Consortium:
    """4 nodes (mutual TLS or plain HTTP) and, with etcd ordering, their 3-member etcd cluster."""

    def __init__(self, *, ordering: str, tls: bool, state_machine: str, batch_wait_ms: int | None) -> None:
        self.name = f"{ordering}-{'tls' if tls else 'plain'}"
        self.kind = "consortium"
        self.lc = LocalConsortium(root=Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-")))
        self.lc.up(nodes=4, ordering=ordering, state_machine=state_machine, base_port=0,
                   batch_wait_ms=batch_wait_ms, tls=tls)
        self.desc_path = self.lc.desc_path

    def pids(self) -> dict[str, list[int]]:
        return _desc_pids(self.lc.describe())

    def check(self) -> dict[str, Any]:
        heads = {s.get("head") for s in self.lc.status()}
        return {"nodes_agree": len(heads) == 1}

    def close(self) -> None:
        self.lc.down(purge=True)


class CentralPostgres:
    """The central alternative: gunicorn + Flask (:mod:`tools.pg_chain`) in front of one PostgreSQL chain table
    in a schema made for this run and dropped after it."""

    def __init__(self, *, state_machine: str, workers: int, threads: int, dsn: str = PG_DSN) -> None:
        self.name, self.kind, self.dsn = "central-pg", "central", dsn
        self.schema = f"bench_{uuid.uuid4().hex[:12]}"
        self.root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        consortium, keys = new_consortium(nodes=4, parameters=default_parameters(), name="cq-muck")
        write_keys(keys, self.root / "keys")
        write_consortium(consortium, self.root / "consortium.json")
        pg_chain.create_chain(dsn, self.schema)
        sock = listen_socket()  # held until gunicorn holds it
        port = sock.getsockname()[1]
        env = {**os.environ, "PG_CHAIN_DSN": dsn, "PG_CHAIN_SCHEMA": self.schema,
               "PG_CHAIN_CONSORTIUM": str(self.root / "consortium.json"), "PG_CHAIN_STATE_MACHINE": state_machine}
        self.child = Child("the central PostgreSQL chain (gunicorn)", [
            str(Path(sys.executable).parent / "gunicorn"), "--workers", str(workers), "--threads", str(threads),
            "--worker-class", "gthread", "--bind", f"fd://{sock.fileno()}", "--timeout", "60",
            "--error-logfile", str(self.root / "gunicorn.log"), "tools.pg_chain:create_app()"],
            own_log=self.root / "gunicorn.log", env=env, cwd=str(Path(__file__).resolve().parents[1]),
            pass_fds=[sock.fileno()])
        sock.close()
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/status", self.child, timeout=60)
        self.desc_path = self.root / "consortium.json.desc"
        self.desc_path.write_text(json.dumps({
            "gateway_key": str(self.root / "keys" / "gateway.pem"), "state_machine": state_machine,
            "tls_dir": None, "nodes": [{"name": "central", "url": url}]}), encoding="utf-8")

    def pids(self) -> dict[str, list[int]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            backends = [int(r[0]) for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (f"bench-{self.schema}",))]
        return {"app": [self.child.pid, *_children(self.child.pid)], "postgres": backends}

    def check(self) -> dict[str, Any]:
        return {"chain": pg_chain.check_chain(self.dsn, self.schema)}

    def close(self) -> None:
        try:
            self.child.stop()
        finally:
            pg_chain.drop_chain(self.dsn, self.schema)
            import shutil

            shutil.rmtree(self.root, ignore_errors=True)


class NetnsConsortium:
    """4 nodes with mutual TLS on 4 hosts (network namespaces, :mod:`tools.netns_consortium`), etcd members on
    three of them, every host's outgoing traffic delayed by ``latency_ms`` (``tc netem``, or the hosts' relays
    where the kernel has no netem): one way between two hosts, ``latency_ms``; a round trip, twice that.  The
    load client runs on this machine, one bridge hop from every host (its requests and answers cross one
    delayed link)."""

    def __init__(self, *, state_machine: str, batch_wait_ms: int | None, latency_ms: int) -> None:
        from tools.netns_consortium import NODE_HOSTS
        from tools.netns_consortium import NetnsConsortium as Layout

        self.name, self.kind = f"netns-{latency_ms}ms-tls", "consortium"
        self.layout = Layout(root=Path(tempfile.mkdtemp(prefix="bench-netns-")))
        self.layout.up(state_machine=state_machine, batch_wait_ms=batch_wait_ms, tls=True)
        try:
            for host in NODE_HOSTS:
                self.layout.impair(host, delay_ms=latency_ms, jitter_ms=0, loss_pct=0.0)
        except BaseException:
            self.layout.down(purge=True)
            raise
        self.desc_path = self.layout.desc_path

    def pids(self) -> dict[str, list[int]]:
        return _desc_pids(self.layout.describe())

    def check(self) -> dict[str, Any]:
        from tools.local_consortium import desc_session

        desc = self.layout.describe()
        http = desc_session(desc)
        heads, rtt = set(), []
        for n in desc["nodes"]:
            for _ in range(5):  # the shortest of a few status round trips: the delay the hosts' links add
                t0 = time.perf_counter()
                heads.add(http.get(n["url"] + "/status", timeout=10).json().get("head"))
                rtt.append(time.perf_counter() - t0)
        return {"nodes_agree": len(heads) == 1, "status_round_trip_ms_min": round(1000 * min(rtt), 2),
                "netns_run_id": desc["netns"]["run_id"]}

    def close(self) -> None:
        self.layout.down(purge=True)


System = Consortium | CentralPostgres | NetnsConsortium


def measure(system: System, *, rate: float, seconds: float, batch: int, senders: int) -> dict[str, Any]:
    """One load run against ``system``: the load client's figures, finalised tx/s, CPU per final tx."""
    pids = system.pids()  # asked anew: PostgreSQL backends and gunicorn workers may have come and gone
    load_before = os.getloadavg()[0]
    cpu0 = {k: _cpu_seconds(v) for k, v in pids.items()}
    cpu0_each = {pid: _cpu_seconds([pid]) for k, v in pids.items() if k in ("nodes", "app") for pid in v}
    client0 = time.process_time()
    t0 = time.monotonic()
    r = run_load(system.desc_path, seconds=seconds, rate=rate, batch=batch, sample_every=20, senders=senders)
    total = time.monotonic() - t0
    cpu = {k: round(_cpu_seconds(v) - cpu0[k], 2) for k, v in pids.items()}
    cpu["client"] = round(time.process_time() - client0, 2)
    final = r["accepted"] - r["lost"]
    r.pop("accepted_ids", None)
    r.pop("tx_ids_sample", None)
    r["system"] = system.name
    r["finalised_per_s"] = round(final / max(total, 1e-9), 1)
    r["cpu_s"] = cpu
    r["cpu_ms_per_final_tx"] = round(1000 * sum(cpu.values()) / max(final, 1), 3)
    # the nodes' (or the central app's and PostgreSQL's) share alone, and the busiest server process's: robust
    # to outside load, which slows a run down but adds little CPU time to its processes
    servers = [k for k in cpu if k != "client"]
    r["server_cpu_ms_per_final_tx"] = round(1000 * sum(cpu[k] for k in servers) / max(final, 1), 3)
    per_process = [_cpu_seconds([pid]) - cpu0_each[pid] for pid in cpu0_each]
    r["busiest_process_cpu_ms_per_final_tx"] = round(1000 * max(per_process, default=0.0) / max(final, 1), 3)
    r["load_average_1m"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    return r


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b and a == a and b == b else None  # NaN-safe (no latency samples)


def ratios(runs: list[dict[str, Any]], *, ours: str, plain: str | None, central: str | None,
           label: str = "tls_over_plain") -> dict[str, Any]:
    """Per offered rate: TLS/plain (``label``: ours over the ``plain`` system) for the finalised rate, p50 and
    p99; ours/central for the finalised rate; and the same for each system's best finalised rate of the run."""
    by = {(r["system"], r["offered_rate"]): r for r in runs}
    out: dict[str, Any] = {"per_rate": [], "best": {}}
    best = {s: max((r["finalised_per_s"] for r in runs if r["system"] == s), default=0.0)
            for s in {r["system"] for r in runs}}
    for rate in sorted({r["offered_rate"] for r in runs}):
        o = by.get((ours, rate))
        if o is None:
            continue
        row: dict[str, Any] = {"offered_rate": rate}
        if plain and (p := by.get((plain, rate))):
            row[label] = {k: _ratio(o[k], p[k]) for k in ("finalised_per_s", "latency_p50_s",
                                                                      "latency_p99_s", "cpu_ms_per_final_tx",
                                                                      "server_cpu_ms_per_final_tx")}
        if central and (c := by.get((central, rate))):
            row["ours_over_central_finalised"] = _ratio(o["finalised_per_s"], c["finalised_per_s"])
            if plain and (p := by.get((plain, rate))):
                row["plain_over_central_finalised"] = _ratio(p["finalised_per_s"], c["finalised_per_s"])
        out["per_rate"].append(row)
    out["best"] = {"finalised_per_s": best}
    if plain in best:
        out["best"][label] = _ratio(best[ours], best[plain])
    if central in best:
        out["best"]["ours_over_central"] = _ratio(best[ours], best[central])
    return out


def table(runs: list[dict[str, Any]]) -> str:
    """The runs as a Markdown table (to stderr at the end): rates, latencies and CPU per finalised tx, all of
    it (servers and client), the servers' alone and the busiest server process's."""
    lines = ["| system | offered tx/s | finalised tx/s | p50 s | p99 s | CPU / final tx ms | servers ms | "
             "busiest process ms | load avg |", "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        la = r["load_average_1m"]
        lines.append(f"| {r['system']} | {r['offered_rate']:g} | {r['finalised_per_s']} | {r['latency_p50_s']} | "
                     f"{r['latency_p99_s']} | {r['cpu_ms_per_final_tx']} | {r['server_cpu_ms_per_final_tx']} | "
                     f"{r['busiest_process_cpu_ms_per_final_tx']} | {la['before']} → {la['after']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench-consortium", description=__doc__)
    p.add_argument("--ordering", choices=["solo", "etcd"], default="etcd")
    p.add_argument("--systems", default="tls,plain,pg",
                   help="comma separated, in this order at each rate: tls (4 nodes, mutual TLS), plain (4 nodes, "
                        "plain HTTP), pg (one central PostgreSQL hash chain), netns (4 nodes with mutual TLS and "
                        "etcd on separate network-namespace hosts with --netns-latency-ms; root, etcd ordering); "
                        "default tls,plain,pg")
    p.add_argument("--netns-latency-ms", type=int, default=10,
                   help="netns: delay of every host's outgoing traffic (default 10 ms, one way between hosts)")
    p.add_argument("--rates", default="500,1000,1500,2000", help="offered tx/s, comma separated")
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--batch", type=int, default=100, help="transactions per client request")
    p.add_argument("--senders", type=int, default=4,
                   help="client requests outstanding at once, the same for every system (default 4)")
    p.add_argument("--state-machine", choices=["eticket", "null"], default="eticket")
    p.add_argument("--batch-wait-ms", type=int, default=None,
                   help="the nodes' batch_max_wait_ms (default: the node default)")
    p.add_argument("--pg-workers", type=int, default=os.cpu_count() or 1,
                   help="gunicorn workers in front of PostgreSQL (default: one per core; appends stay serialised)")
    p.add_argument("--pg-threads", type=int, default=8)
    p.add_argument("--no-raw", action="store_true", help="skip the raw Ed25519 measurements (smoke runs)")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    a = p.parse_args(argv)
    wanted = [s.strip() for s in a.systems.split(",") if s.strip()]
    if not wanted or set(wanted) - {"tls", "plain", "pg", "netns"}:
        p.error("--systems takes tls, plain, pg and netns")
    if "netns" in wanted and a.ordering != "etcd":
        p.error("--systems netns runs etcd ordering (its members on three of the hosts): --ordering etcd")
    rates = [float(x) for x in a.rates.split(",")]
    # SIGTERM (``timeout``, a CI's cancel) unwinds like Ctrl-C: the nodes, etcd, gunicorn and the schema go
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    raw = None if a.no_raw else raw_rate()
    results: dict[str, Any] = {
        "machine": {"host": platform.node(), "nproc": os.cpu_count(), "python": platform.python_version(),
                    "load_average_start": [round(x, 2) for x in os.getloadavg()]},
        "ordering": a.ordering, "nodes": 4, "senders": a.senders, "batch": a.batch,
        "state_machine": a.state_machine, "seconds": a.seconds,
        "raw_ed25519_verify_per_s": raw,
        "netns_latency_ms": a.netns_latency_ms if "netns" in wanted else None, "runs": []}
    print(json.dumps({"raw_ed25519_verify_per_s": raw, "machine": results["machine"]}), flush=True)
    systems: list[System] = []
    try:
        for s in wanted:
            if s == "pg":
                systems.append(CentralPostgres(state_machine=a.state_machine, workers=a.pg_workers,
                                               threads=a.pg_threads))
                results["central_pg"] = {"workers": a.pg_workers, "threads": a.pg_threads,
                                         "schema": systems[-1].schema}  # type: ignore[union-attr]
            elif s == "netns":
                systems.append(NetnsConsortium(state_machine=a.state_machine, batch_wait_ms=a.batch_wait_ms,
                                               latency_ms=a.netns_latency_ms))
            else:
                systems.append(Consortium(ordering=a.ordering, tls=s == "tls", state_machine=a.state_machine,
                                          batch_wait_ms=a.batch_wait_ms))
        for system in systems:
            run_load(system.desc_path, seconds=min(2.0, a.seconds), rate=100, batch=a.batch)  # warm up
        for rate in rates:
            for system in systems:
                r = measure(system, rate=rate, seconds=a.seconds, batch=a.batch, senders=a.senders)
                results["runs"].append(r)
                print(json.dumps(r, ensure_ascii=False), flush=True)
        results["checks"] = {system.name: system.check() for system in systems}
    finally:
        for system in systems:
            system.close()
    names = {s: {"pg": "central-pg", "netns": f"netns-{a.netns_latency_ms}ms-tls"}.get(s, f"{a.ordering}-{s}")
             for s in wanted}
    ours = names.get("tls") or names.get("netns") or names.get("plain") or "central-pg"
    results["ratios"] = ratios(results["runs"], ours=ours, plain=names.get("plain") if ours != names.get("plain")
                               else None, central=names.get("pg"))
    if "netns" in names and ours != names["netns"]:  # separate hosts with latency, against ours on loopback
        results["ratios"]["netns"] = ratios(results["runs"], ours=names["netns"], plain=ours,
                                            central=names.get("pg"), label="netns_over_loopback")
    if not a.no_raw:
        results["raw_ed25519_verify_per_s_after"] = raw_rate()  # outside load may have changed meanwhile
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(results, ensure_ascii=False, indent=2)
    print(text)
    print(table(results["runs"]), file=sys.stderr)
    if a.json:
        a.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
