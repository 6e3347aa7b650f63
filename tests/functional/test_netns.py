"""The consortium on separate hosts (Linux network namespaces): the namespace builder, and four nodes with
three etcd members surviving partitions of a node host and of the etcd leader's host under load."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from consortium_nodes.audit import audit_consortium
from tools.local_consortium import desc_session
from tools.netns import Network, available, leftovers
from tools.netns_consortium import API_HOST, NetnsConsortium

pytestmark = [pytest.mark.netns, pytest.mark.slow,
              pytest.mark.skipif(available() is not None, reason=str(available()))]

ROOT = Path(__file__).resolve().parents[2]


def _http_from(net: Network, host: str, url: str, timeout: float = 3.0) -> int | None:
    """The HTTP status of ``GET url`` asked from inside ``host`` (None: no answer)."""
    code = (f"import urllib.request,sys\ntry:\n print(urllib.request.urlopen({url!r}, timeout={timeout}).status)\n"
            "except Exception:\n print('none')")
    out = net.run(host, [sys.executable, "-c", code], timeout=timeout + 10).stdout.strip()
    return int(out) if out.isdigit() else None


def test_hosts_reach_each_other_until_partitioned_and_again_once_healed(tmp_path):
    """Two hosts on the bridge reach each other's servers; a partitioned host is reached by nobody (and
    still reaches itself), a healed one again; destroying the network leaves no namespace, veth or bridge
    behind, and two networks built at once get distinct names."""
    with Network(["a", "b"]) as net, Network(["a"]) as other:
        assert net.run_id != other.run_id and net.hosts["a"].ns != other.hosts["a"].ns
        b = net.hosts["b"].ip
        net.spawn("b", [sys.executable, "-m", "http.server", "8000", "--bind", b], log=tmp_path / "b.log")
        deadline = time.monotonic() + 20
        while _http_from(net, "a", f"http://{b}:8000/") != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _http_from(net, "a", f"http://{b}:8000/") == 200
        net.partition("b")
        assert _http_from(net, "a", f"http://{b}:8000/", timeout=1.5) is None
        assert _http_from(net, "b", f"http://{b}:8000/") == 200
        net.heal("b")
        deadline = time.monotonic() + 20
        while _http_from(net, "a", f"http://{b}:8000/") != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _http_from(net, "a", f"http://{b}:8000/") == 200
        run_ids = (net.run_id, other.run_id)
    assert [leftovers(r) for r in run_ids] == [[], []]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    nc = NetnsConsortium(root=tmp_path_factory.mktemp("netns"))
    nc.up(state_machine="null")
    yield nc
    run_id = nc.describe()["netns"]["run_id"]
    nc.down()
    assert leftovers(run_id) == []


def _status_in(nc: NetnsConsortium, name: str) -> dict | None:
    """A node's ``/status`` asked on its own host (it answers there while partitioned)."""
    assert nc.net is not None
    n = next(n for n in nc.describe()["nodes"] if n["name"] == name)
    code = (f"import json,sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom tools.local_consortium import desc_session\n"
            f"http = desc_session(json.load(open({str(nc.desc_path)!r})))\n"
            f"try:\n print(http.get({n['url'] + '/status'!r}, timeout=5).text)\nexcept Exception:\n print('null')")
    return json.loads(nc.net.run(n["host"], [sys.executable, "-c", code], timeout=20).stdout.strip() or "null")


def _statuses(nc: NetnsConsortium) -> dict[str, dict]:
    out = {}
    for n in nc.describe()["nodes"]:
        try:
            out[n["name"]] = desc_session(nc.describe()).get(n["url"] + "/status", timeout=5).json()
        except requests.RequestException:
            out[n["name"]] = {}
    return out


def _wait(pred, timeout: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def _final(nc: NetnsConsortium) -> dict[str, int]:
    return {k: s.get("final_height", -2) for k, s in _statuses(nc).items()}


def _isolated(nc: NetnsConsortium, name: str, within: float = 60.0) -> None:
    """While ``name``'s host is partitioned: it finalises nothing (after a moment for what was already on its
    way), while the other nodes finalise more (waited for up to ``within`` seconds: a loaded machine is slow,
    the assertion is that the majority goes on, not how fast)."""
    others = [k for k in _final(nc) if k != name]
    time.sleep(2.0)
    before = _status_in(nc, name)
    majority_before = _final(nc)
    majority_after = _wait(lambda: (lambda f: f if any(f[k] > majority_before[k] for k in others) else None)(
        _final(nc)), within)
    time.sleep(1.0)
    after = _status_in(nc, name)
    assert before is not None and after is not None
    assert after["final_height"] == before["final_height"], (before, after)
    assert majority_after, (majority_before, _final(nc))


def _rtt(nc: NetnsConsortium) -> float:
    """The median time of five ``GET /status`` of the first node asked from the API host (one TLS session)."""
    assert nc.net is not None
    url = nc.describe()["nodes"][0]["url"] + "/status"
    code = (f"import json,statistics,sys,time\nsys.path.insert(0, {str(ROOT)!r})\n"
            "from tools.local_consortium import desc_session\n"
            f"http = desc_session(json.load(open({str(nc.desc_path)!r})))\nhttp.get({url!r}, timeout=10)\nts=[]\n"
            f"for _ in range(5):\n t=time.monotonic()\n http.get({url!r}, timeout=10)\n ts.append(time.monotonic()-t)\n"
            "print(statistics.median(ts))")
    return float(nc.net.run(API_HOST, [sys.executable, "-c", code], timeout=60).stdout.strip())


def test_partitions_under_load_lose_and_duplicate_nothing(hosts):
    """Under load from the API host: a partitioned node host, then the etcd leader's host, finalise nothing
    while cut off and the other three nodes go on; latency (50 ± 20 ms) and 1 % loss are added on every host
    (``tc netem``, or the hosts' relays where the kernel has no netem) and show in request times;
    once healed, every accepted transaction is final exactly once on every node, the partitioned nodes
    caught up, the heads agree and the audit passes."""
    nc = hosts
    assert nc.net is not None
    out = nc.root / "load.jsonl"
    load = subprocess.Popen(nc.net.hosts[API_HOST].argv(
        [sys.executable, "-m", "tools.netns_consortium", "load", "--desc", str(nc.desc_path), "--out", str(out),
         "--seconds", "240", "--first", "500000", "--stop-file", str(nc.root / "load.stop")]), cwd=ROOT)
    try:
        assert _wait(lambda: out.exists() and out.stat().st_size > 0, 30)
        by_host = {n["host"]: n["name"] for n in nc.describe()["nodes"]}
        etcd_leader = nc.etcd_leader_host()
        plain = next(h for h in ("h4", "h3", "h2") if h != etcd_leader)
        nc.net.partition(plain)
        _isolated(nc, by_host[plain])
        nc.net.heal(plain)
        nc.net.partition(etcd_leader)
        _isolated(nc, by_host[etcd_leader])
        nc.net.heal(etcd_leader)
        plain_rtt = _rtt(nc)
        for h in nc.net.hosts:
            nc.impair(h, delay_ms=50, jitter_ms=20, loss_pct=1.0)
        slow_rtt = _rtt(nc)
        assert slow_rtt > plain_rtt + 0.04, (plain_rtt, slow_rtt)  # the latency is there
        time.sleep(6)
        for h in nc.net.hosts:
            nc.heal(h)
        (nc.root / "load.stop").touch()  # the load ends after its current request
        assert load.wait(timeout=120) == 0
    finally:
        if load.poll() is None:
            load.kill()
        for h in nc.net.hosts:
            nc.heal(h)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    attempted = [i for r in rows for i in r["attempted"]]
    accepted = {i for r in rows for i in r["accepted"]}
    assert len(set(attempted)) == len(attempted) and len(accepted) > 100

    def settled() -> dict[str, dict] | None:
        sts = _statuses(nc)
        ok = all(s.get("pool") == 0 and s.get("final_height") == s.get("height") for s in sts.values())
        return sts if ok and len({s.get("head") for s in sts.values()}) == 1 else None

    sts = _wait(settled, 90)
    assert sts, _statuses(nc)
    counts = {s["transactions"] for s in sts.values()}
    assert len(counts) == 1
    def final_on(n: dict) -> tuple[int, bool]:
        final, accepted_final = 0, True
        for i in range(0, len(attempted), 5000):
            r = desc_session(nc.describe()).post(n["url"] + "/v1/transactions/status",
                                                 json={"tx_ids": attempted[i : i + 5000]}, timeout=30)
            assert r.status_code == 200
            statuses = r.json()["statuses"]
            accepted_final &= all(statuses[t] == "final" for t in accepted if t in statuses)
            final += sum(1 for v in statuses.values() if v == "final")
        return final, accepted_final

    for n in nc.describe()["nodes"]:
        # every transaction on the chain is one attempted, and each only once (the newest block's
        # certificate may reach a node a moment after its height: asked again until then)
        got = _wait(lambda n=n: (lambda f: f if f == (sts[n["name"]]["transactions"], True) else None)(final_on(n)),
                    60)
        assert got, (n["name"], final_on(n), sts[n["name"]]["transactions"])
    assert accepted <= set(attempted)
    report = audit_consortium(nc.desc_path)
    assert report["ok"], report


def test_consortium_up_netns_and_down_clean_up_the_hosts(tmp_path):
    """``scripts/consortium up --netns`` leaves four ready nodes on separate hosts after it returns (the
    namespaces outlive the command); ``down --purge`` stops them and deletes the namespaces and the bridge."""
    cli = [sys.executable, "-m", "tools.consortium"]
    done = subprocess.run([*cli, "up", "--netns", "--dir", str(tmp_path / "c"), "--state-machine", "null"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    desc_path = tmp_path / "c" / "consortium.json"
    run_id = json.loads(desc_path.read_text())["netns"]["run_id"] if desc_path.exists() else None
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert run_id and leftovers(run_id)
        for n in json.loads(desc_path.read_text())["nodes"]:
            assert desc_session(json.loads(desc_path.read_text())).get(n["url"] + "/status",
                                                                       timeout=5).json()["ready"]
    finally:
        down = subprocess.run([*cli, "down", "--dir", str(tmp_path / "c"), "--purge"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert run_id and leftovers(run_id) == []
