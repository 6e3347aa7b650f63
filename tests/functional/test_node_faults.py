"""Faults show and heal, on real node processes: a node stops on SIGTERM, ``stop`` says what happened, two
processes never share one ledger database, a taken port fails at once, and storage faults show in /status."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tools.local_consortium import LocalConsortium
from tools.proc import alive, spawn_detached, stop_pid

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    lc = LocalConsortium(root=tmp_path_factory.mktemp("faults"))
    lc.up(nodes=4, ordering="solo", state_machine="null", base_port=0)
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
    assert requests.get(_node(local, "chengguan")["url"] + "/status", timeout=5).json()["ready"]


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
    before = requests.get(n["url"] + "/status", timeout=5).json()
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "consortium_nodes", "run", "--config", n["config"]], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 20
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "held by another live process" in lines[0] and f"pid {n['pid']}" in lines[0]
    assert "[database_held]" in lines[0]
    after = requests.get(n["url"] + "/status", timeout=5).json()
    assert after["ready"] and after["height"] >= before["height"]
    assert json.loads((Path(n["data_dir"]) / "ledger.db.lock").read_text().strip()) == n["pid"]
