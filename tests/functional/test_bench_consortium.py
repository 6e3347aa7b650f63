"""Smoke test of ``scripts/bench-consortium``: the benchmark runs end to end with tiny parameters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import _pg_available
from tools.netns import available as netns_available
from tools.netns import leftovers

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(not _pg_available(), reason="PostgreSQL is not answering on 127.0.0.1:5432"),
]


def test_bench_consortium_runs_tls_plain_and_central_postgres(tmp_path: Path) -> None:
    """One tiny run (solo ordering, 40 tx/s for 1 s) measures the 4 nodes with mutual TLS, with plain HTTP and the
    central PostgreSQL chain: every accepted transaction final on each, the nodes' heads agree, the PostgreSQL
    chain recomputes, both ratios are reported and the run's schema is dropped afterwards."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench_consortium", "--ordering", "solo", "--rates", "40", "--seconds", "1",
         "--no-raw", "--pg-workers", "1", "--json", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    res = json.loads(out.read_text(encoding="utf-8"))
    runs = {r["system"]: r for r in res["runs"]}
    assert set(runs) == {"solo-tls", "solo-plain", "central-pg"}
    for r in runs.values():
        assert r["submitted"] == 40 and r["accepted"] == 40 and r["lost"] == 0 and r["errors"] == 0
        assert r["finalised_per_s"] > 0
    assert res["checks"]["solo-tls"]["nodes_agree"] and res["checks"]["solo-plain"]["nodes_agree"]
    chain = res["checks"]["central-pg"]["chain"]
    assert chain["ok"] and chain["rows"] >= 40
    per_rate = res["ratios"]["per_rate"][0]
    assert per_rate["tls_over_plain"]["finalised_per_s"] > 0
    assert per_rate["ours_over_central_finalised"] > 0
    import psycopg

    from tools.bench_consortium import PG_DSN

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        left = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (res["central_pg"]["schema"],))
        assert left.fetchone() is None


@pytest.mark.netns
@pytest.mark.skipif(netns_available() is not None, reason=str(netns_available()))
def test_bench_consortium_runs_across_netns_hosts_with_latency(tmp_path: Path) -> None:
    """``--systems tls,netns``: the same load on the loopback consortium and on 4 nodes and etcd on separate
    network-namespace hosts with 10 ms added one way; every accepted transaction is final on both, heads agree,
    the netns run's latency shows the added delay, its ratio to the loopback run is reported, and no namespace
    is left behind."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench_consortium", "--systems", "tls,netns", "--rates", "40", "--seconds", "1",
         "--no-raw", "--json", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    res = json.loads(out.read_text(encoding="utf-8"))
    runs = {r["system"]: r for r in res["runs"]}
    assert set(runs) == {"etcd-tls", "netns-10ms-tls"} and res["netns_latency_ms"] == 10
    for r in runs.values():
        assert r["submitted"] == 40 and r["accepted"] == 40 and r["lost"] == 0 and r["errors"] == 0
    assert res["checks"]["netns-10ms-tls"]["nodes_agree"] and res["checks"]["etcd-tls"]["nodes_agree"]
    assert res["checks"]["netns-10ms-tls"]["status_round_trip_ms_min"] >= 10  # the hosts' links are delayed
    assert res["ratios"]["netns"]["per_rate"][0]["netns_over_loopback"]["finalised_per_s"] > 0
    assert leftovers(res["checks"]["netns-10ms-tls"]["netns_run_id"]) == []
