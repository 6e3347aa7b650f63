"""Helpers for tests against a real local etcd cluster: the skip marker and a cluster that never leaks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tools.etcd_cluster import ETCD_BINARY, EtcdCluster

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Apply to every etcd test: the ``etcd`` marker, skipped only when Debian's etcd-server is absent.
requires_etcd = [
    pytest.mark.etcd,
    pytest.mark.skipif(not Path(ETCD_BINARY).exists(), reason=f"{ETCD_BINARY} is not installed"),
]


@contextmanager
def running_cluster(base: Path, *, members: int = 3) -> Iterator[EtcdCluster]:
    """Start a cluster under ``base``; stop it (and delete its data) on exit, even after a failure."""
    cluster = EtcdCluster.start(data_dir=base, members=members)
    try:
        yield cluster
    finally:
        cluster.destroy()


def ensure_all_running(cluster: EtcdCluster) -> None:
    """Restart members a previous test left killed, so each test starts with a whole cluster."""
    for name in cluster.names:
        if cluster.pid(name) is None:
            cluster.restart(name)
    cluster.wait_healthy()


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start ``python -c code args…`` in the repo's venv interpreter with the repo importable."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(REPO_ROOT),
    )
