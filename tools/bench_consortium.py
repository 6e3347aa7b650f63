"""Benchmark a local 4-node consortium: finalised tx/s and submit-to-final latency at steady load."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import nacl.bindings

from tools.load import run_load
from tools.local_consortium import LocalConsortium


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


def bench(*, ordering: str, rates: list[float], seconds: float, state_machine: str, batch: int,
          batch_wait_ms: int | None = None) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"bench-{ordering}-"))
    lc = LocalConsortium(root=root)
    out: dict[str, Any] = {"ordering": ordering, "nodes": 4, "state_machine": state_machine, "runs": []}
    try:
        lc.up(nodes=4, ordering=ordering, state_machine=state_machine, base_port=0, batch_wait_ms=batch_wait_ms)
        run_load(lc.desc_path, seconds=2, rate=100, batch=batch)  # warm up
        desc = lc.describe()
        node_pids = [int(n["pid"]) for n in desc["nodes"] if n.get("pid")]
        etcd_pids = [int(p) for p in (desc.get("etcd") or {}).get("pids", {}).values() if p]
        for rate in rates:
            load_before = os.getloadavg()[0]
            cpu0 = (_cpu_seconds(node_pids), _cpu_seconds(etcd_pids), time.process_time())
            t0 = time.monotonic()
            r = run_load(lc.desc_path, seconds=seconds, rate=rate, batch=batch, sample_every=20)
            total = time.monotonic() - t0
            cpu = (_cpu_seconds(node_pids) - cpu0[0], _cpu_seconds(etcd_pids) - cpu0[1],
                   time.process_time() - cpu0[2])
            final = r["accepted"] - r["lost"]
            r.pop("accepted_ids", None)
            r.pop("tx_ids_sample", None)
            r["finalised_per_s"] = round(final / max(total, 1e-9), 1)
            # CPU of the whole system per finalised transaction: 4 nodes, etcd members, this load client.
            r["cpu_s"] = {"nodes": round(cpu[0], 2), "etcd": round(cpu[1], 2), "client": round(cpu[2], 2)}
            r["cpu_ms_per_final_tx"] = round(1000 * sum(cpu) / max(final, 1), 3)
            r["load_average_1m"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
            out["runs"].append(r)
            print(json.dumps({"ordering": ordering, **r}, ensure_ascii=False), flush=True)
        heads = {s.get("head") for s in lc.status()}
        out["nodes_agree"] = len(heads) == 1
    finally:
        lc.down(purge=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(prog="scripts/bench-consortium")
    p.add_argument("--ordering", choices=["solo", "etcd", "both"], default="both")
    p.add_argument("--rates", default="250,500,1000", help="offered tx/s, comma separated")
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--batch", type=int, default=100, help="transactions per client request")
    p.add_argument("--state-machine", choices=["eticket", "null"], default="eticket")
    p.add_argument("--batch-wait-ms", type=int, default=None,
                   help="the nodes' batch_max_wait_ms (default: the node default)")
    a = p.parse_args()
    raw = raw_rate()
    print(json.dumps({"raw_ed25519_verify_per_s": raw}), flush=True)
    results = {"machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
               "raw_ed25519_verify_per_s": raw, "benchmarks": []}
    for ordering in (["solo", "etcd"] if a.ordering == "both" else [a.ordering]):
        results["benchmarks"].append(bench(ordering=ordering, rates=[float(x) for x in a.rates.split(",")],
                                           seconds=a.seconds, state_machine=a.state_machine, batch=a.batch,
                                           batch_wait_ms=a.batch_wait_ms))
    end = raw_rate()  # again after the runs: outside load may have changed meanwhile
    print(json.dumps({"raw_ed25519_verify_per_s_after": end}), flush=True)
    results["raw_ed25519_verify_per_s_after"] = end
    for b in results["benchmarks"]:
        for r in b["runs"]:
            # Each finalised tx is verified once by each of the 4 nodes (the receiving node at admission;
            # its block builder reuses that check instead of verifying the same signature again).
            r["verifications_per_s"] = round(r["finalised_per_s"] * 4)
            r["share_of_raw_all_cores"] = round(r["verifications_per_s"] / raw["all_cores"], 3)
    print(json.dumps(results, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
