"""Faults show and heal, on real node processes: a node stops on SIGTERM, ``stop`` says what happened, two
processes never share one ledger database, a taken port fails at once, and storage faults show in /status."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from consortium_nodes.errors import NodeError
from tests.functional.tls_fixtures import HTTP, NODE_MEMBER
from tools.local_consortium import LocalConsortium
from tools.proc import alive, spawn_detached, stop_pid

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    lc = LocalConsortium(root=tmp_path_factory.mktemp("faults"))
    lc.up(nodes=4, ordering="solo", state_machine="null", base_port=0)
    lc.mount(HTTP, NODE_MEMBER)
    yield lc
    lc.down()


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.consortium", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def _node(lc: LocalConsortium, name: str) -> dict:
    return next(n for n in lc.describe()["nodes"] if n["name"] == name)


def test_sigterm_stops_a_node_within_seconds_and_stop_says_so(local):
    """``stop NAME`` on a serving node (the solo orderer, with its peers' keep-alive connections and long
    polls open) ends the process on SIGTERM within 10 s, prints "stopped cleanly" and exits 0; a second
    ``stop`` says the node was not running (exit 0); ``start`` brings it back ready."""
    pid = _node(local, "chengguan")["pid"]
    assert alive(pid)
    t0 = time.monotonic()
    done = _cli("stop", "--dir", str(local.root), "chengguan")
    took = time.monotonic() - t0
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stopped cleanly" in done.stdout
    assert took < 10, f"stop took {took:.1f} s"
    assert not alive(pid)
    log = (Path(_node(local, "chengguan")["data_dir"]) / "node.log").read_text(encoding="utf-8")
    assert "node chengguan stopped" in log
    again = _cli("stop", "--dir", str(local.root), "chengguan")
    assert again.returncode == 0 and "was not running" in again.stdout
    local.start("chengguan")
    assert HTTP.get(_node(local, "chengguan")["url"] + "/status", timeout=5).json()["ready"]


def test_stop_reports_a_process_it_had_to_kill_with_a_non_zero_exit(local, tmp_path):
    """A process that ignores SIGTERM is killed after ``--timeout`` and ``stop`` says so with exit 1 (it does
    not pretend the node stopped cleanly); the node's own process is left as it was."""
    code = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('up', flush=True)\ntime.sleep(120)")
    stubborn = spawn_detached([sys.executable, "-c", code], log=tmp_path / "stubborn.log")
    deadline = time.monotonic() + 10
    while "up" not in (tmp_path / "stubborn.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    desc = local.describe()
    real = _node(local, "shengtai")["pid"]
    for n in desc["nodes"]:
        if n["name"] == "shengtai":
            n["pid"] = stubborn
    local._write(desc)
    try:
        done = _cli("stop", "--dir", str(local.root), "shengtai", "--timeout", "1")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "killed with SIGKILL after 1 s" in done.stdout
        assert not alive(stubborn)
    finally:
        stop_pid(stubborn, timeout=1)
        desc = local.describe()
        for n in desc["nodes"]:
            if n["name"] == "shengtai":
                n["pid"] = real
        local._write(desc)
    assert alive(real)


def test_a_second_node_on_a_held_database_is_refused(local):
    """Starting a node on a database a live node holds fails at once with exit 2 and one line naming the
    holder's pid; the running node goes on serving and its chain is untouched."""
    n = _node(local, "zhujian")
    before = HTTP.get(n["url"] + "/status", timeout=5).json()
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "consortium_nodes", "run", "--config", n["config"]], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 20
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "held by another live process" in lines[0] and f"pid {n['pid']}" in lines[0]
    assert "[database_held]" in lines[0]
    after = HTTP.get(n["url"] + "/status", timeout=5).json()
    assert after["ready"] and after["height"] >= before["height"]
    assert json.loads((Path(n["data_dir"]) / "ledger.db.lock").read_text().strip()) == n["pid"]


@pytest.fixture
def listening():
    """A socket listening on a free loopback port (another program's server), closed afterwards."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield int(s.getsockname()[1])
    s.close()


def test_status_names_the_consortium_by_its_genesis_hash(local):
    """Every node's /status carries the genesis hash of its consortium, which launchers compare."""
    genesis = local.consortium().genesis_hash
    for n in local.describe()["nodes"]:
        assert HTTP.get(n["url"] + "/status", timeout=5).json()["genesis"] == genesis


def test_a_taken_node_port_fails_up_at_once_naming_the_port(tmp_path, listening):
    """``scripts/consortium up --base-port P`` with P taken by another process exits 2 within seconds with one
    line naming port P, and starts no node."""
    t0 = time.monotonic()
    done = _cli("up", "--dir", str(tmp_path), "--base-port", str(listening), "--state-machine", "null")
    try:
        assert time.monotonic() - t0 < 20
        assert done.returncode == 2, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and f"port {listening}" in lines[0] and "already in use" in lines[0], done.stderr
        assert not (tmp_path / "consortium.json").exists()  # nothing started, nothing to stop
        assert not list(tmp_path.glob("nodes/*/node.log"))
    finally:
        _cli("down", "--dir", str(tmp_path), "--purge")


def test_a_node_whose_port_is_taken_exits_at_once_naming_the_port(tmp_path, listening):
    """``python -m consortium_nodes run`` on a taken port exits 2 at once with one line naming the port
    (it binds before any thread starts) and releases its database for the next start."""
    lc = LocalConsortium(root=tmp_path)
    desc = lc._create(nodes=4, ordering="solo", state_machine="null", base_port=0)
    cfg_path = Path(desc["nodes"][0]["config"])
    cfg = json.loads(cfg_path.read_text())
    cfg["port"] = listening
    cfg_path.write_text(json.dumps(cfg))
    done = subprocess.run([sys.executable, "-m", "consortium_nodes", "run", "--config", str(cfg_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{listening}" in lines[0] and "[port_in_use]" in lines[0], done.stderr


def test_readiness_refuses_another_consortiums_node_on_our_port(local, tmp_path):
    """When the node answering on one of our ports is of another consortium (its /status names another
    genesis hash), ``wait_ready`` fails at once saying so, instead of reporting our consortium ready."""
    ours = LocalConsortium(root=tmp_path)
    desc = ours._create(nodes=4, ordering="solo", state_machine="null", base_port=0)
    desc["nodes"][0]["url"] = _node(local, "chengguan")["url"]  # the other consortium's node on "our" port
    ours._write(desc)
    t0 = time.monotonic()
    with pytest.raises(NodeError, match="another consortium"):
        ours.wait_ready(["chengguan"], timeout=30)
    assert time.monotonic() - t0 < 10


def test_serve_with_its_api_port_taken_fails_at_once_naming_it(tmp_path, listening):
    """``python -m tools.serve --port P`` with P taken exits 2 within seconds, naming port P, before it
    starts any node (no consortium is created)."""
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "tools.serve", "--var", str(tmp_path / "var"), "--port",
                           str(listening)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 20
    assert done.returncode == 2
    assert f"port {listening} already in use" in done.stderr
    assert not (tmp_path / "var" / "consortium.json").exists()


def _status(lc: LocalConsortium, name: str) -> dict:
    return dict(HTTP.get(_node(lc, name)["url"] + "/status", timeout=5).json())


def _until(pred, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


_APPS: dict[str, tuple] = {}


def _chain_status(lc: LocalConsortium) -> dict:
    """``GET /api/v1/chain/status`` of the API (the app in-process, its ledger adapter over this consortium's
    running nodes), as an operator."""
    if str(lc.root) not in _APPS:
        from ticket_api.app import create_app
        from ticket_api.testing import app_config

        app = create_app(app_config(f"sqlite:///{lc.root / 'api.db'}", SERVICES="ticket_api.adapter:make_services",
                                    LEDGER_LOCAL=str(lc.desc_path)))
        token = app.extensions["ticket_api"].tokens.issue(role="operator", tenant="city", subject="ops-1").token
        _APPS[str(lc.root)] = (app.test_client(), {"Authorization": f"Bearer {token}", "Accept-Language": "en"})
    client, headers = _APPS[str(lc.root)]
    resp = client.get("/api/v1/chain/status", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return dict(resp.json)


def _submit(lc: LocalConsortium, name: str, nonce: int) -> requests.Response:
    from ledger.store.keyfiles import read_private_key
    from ledger.testing import make_tx

    tx = make_tx(read_private_key(lc.describe()["gateway_key"]), nonce)
    return HTTP.post(_node(lc, name)["url"] + "/v1/transactions", json=tx.to_dict(), params={"wait": 10},
                         timeout=30)


def test_a_read_only_database_shows_a_fault_and_heals_when_writable_again(local):
    """A node whose WAL (and database) became read-only says so within seconds: ``fault`` names the read-only
    file, ``ready`` is false, it refuses submissions (503 not_ready), and the API's chain status does not say
    the nodes agree but names the node's fault; once the files are writable again the fault clears, the node
    is ready and a transaction submitted to it becomes final."""
    n = _node(local, "jiaotong")
    db = Path(n["data_dir"]) / "ledger.db"
    files = [p for p in (db, db.with_name("ledger.db-wal")) if p.exists()]
    try:
        for p in files:
            p.chmod(0o400)
        st = _until(lambda: (s := _status(local, "jiaotong"))["fault"] and s)
        assert st and "read-only" in st["fault"] and st["ready"] is False, st
        r = _submit(local, "jiaotong", 9001)
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready", r.text
        chain = _chain_status(local)
        assert chain["agree"] is False and "jiaotong" in chain["not_ready"]
        assert "read-only" in chain["faults"]["jiaotong"]
    finally:
        for p in files:
            p.chmod(0o600)
    st = _until(lambda: (s := _status(local, "jiaotong"))["ready"] and s)
    assert st and st["fault"] is None, st
    r = _submit(local, "jiaotong", 9002)
    assert r.status_code == 200 and r.json()["status"] == "final", r.text
    assert _until(lambda: _chain_status(local)["agree"]), _chain_status(local)


def test_a_deleted_database_shows_a_fault_until_the_node_is_restarted(local):
    """A node whose database files were deleted under it reports ``fault`` (the file was deleted) and
    ``ready: false`` within seconds, instead of serving the vanished file as if nothing happened, and the API's
    chain status names it; the fault stays (this process cannot heal it), and a restart starts the node on a
    new database that catches up with the others."""
    n = _node(local, "shengtai")
    db = Path(n["data_dir"]) / "ledger.db"
    for p in (db, db.with_name("ledger.db-wal"), db.with_name("ledger.db-shm")):
        p.unlink(missing_ok=True)
    st = _until(lambda: (s := _status(local, "shengtai"))["fault"] and s)
    assert st and "deleted" in st["fault"] and st["ready"] is False, st
    chain = _chain_status(local)
    assert chain["agree"] is False and "deleted" in chain["faults"]["shengtai"] and "shengtai" in chain["not_ready"]
    time.sleep(2)
    assert _status(local, "shengtai")["fault"] == st["fault"]  # no healing by itself
    assert local.stop("shengtai") == "stopped cleanly"
    local.start("shengtai")
    height = _status(local, "chengguan")["height"]
    st = _until(lambda: (s := _status(local, "shengtai"))["ready"] and s["height"] >= height and s)
    assert st and st["fault"] is None, _status(local, "shengtai")
    assert _until(lambda: _chain_status(local)["agree"]), _chain_status(local)


def test_serve_with_a_node_port_taken_fails_at_once_naming_it(tmp_path, listening):
    """``python -m tools.serve --node-base-port P`` with P taken exits non-zero within seconds, naming port P,
    and never reports ready (no ``serve.ready``) nor leaves a process behind."""
    var = tmp_path / "var"
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "tools.serve", "--var", str(var), "--port", "0",
                           "--node-base-port", str(listening)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert time.monotonic() - t0 < 30
    assert done.returncode != 0
    assert f"port {listening}" in done.stderr and "already in use" in done.stderr, done.stderr
    assert not (var / "serve.ready").exists()
    left = subprocess.run(["pgrep", "-f", str(var)], capture_output=True, text=True).stdout.split()
    assert not left, left


def test_sigterm_answers_the_requests_waiting_for_finality_and_stops_at_once(local):
    """Requests waiting (``?wait=30``) for a finality that cannot come (two of four nodes down, no quorum) are
    answered 202 (pending, ask again) as soon as their node gets SIGTERM, and the node is gone within 8 s,
    not after the waits or a server timeout."""
    import threading

    local.stop("jiaotong")
    local.stop("shengtai")
    answers: list[int] = []
    try:
        def wait_one(i: int) -> None:
            try:
                answers.append(_submit_wait(local, "zhujian", 9100 + i, 30).status_code)
            except requests.RequestException:
                answers.append(-1)

        threads = [threading.Thread(target=wait_one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        pid = _node(local, "zhujian")["pid"]
        t0 = time.monotonic()
        assert local.stop("zhujian") == "stopped cleanly"
        assert time.monotonic() - t0 < 8 and not alive(pid)
        for t in threads:
            t.join(10)
        assert answers == [202] * 4, answers
    finally:
        for name in ("jiaotong", "shengtai", "zhujian"):
            local.start(name)


def _submit_wait(lc: LocalConsortium, name: str, nonce: int, wait: int) -> requests.Response:
    from ledger.store.keyfiles import read_private_key
    from ledger.testing import make_tx

    tx = make_tx(read_private_key(lc.describe()["gateway_key"]), nonce)
    return HTTP.post(_node(lc, name)["url"] + "/v1/transactions", json=tx.to_dict(), params={"wait": wait},
                         timeout=wait + 10)
