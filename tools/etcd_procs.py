"""The etcd member processes :mod:`tools.etcd_cluster` starts: their handles, the pid checks that guard against
pid reuse, and stopping or reaping one by pid (members another process started, or strays)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1

#: Popen handles of every member this process started (see ``EtcdCluster._spawn``).
HANDLES: list[subprocess.Popen[bytes]] = []


def die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGKILL it when the parent thread dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def pid_is_our_etcd(pid: int, data_dir: str) -> bool:
    """True if ``pid`` is an etcd process running on ``data_dir`` (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].endswith(b"etcd") and data_dir.encode() in cmdline


def reap(pid: int, timeout: float = 5.0) -> None:
    """If ``pid`` is a member this process started, collect its exit status (no zombie, and no
    "subprocess is still running" ResourceWarning from its Popen handle later)."""
    for proc in HANDLES:
        if proc.pid == pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
            return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_strays(base_dir: Path, timeout: float = 5.0) -> None:
    """Stop every etcd process this process started on a data dir under ``base_dir`` that still runs,
    whatever the description says (e.g. a member restarted through another ``EtcdCluster`` object)."""
    prefix = str(base_dir.resolve())
    for proc in list(HANDLES):
        if proc.poll() is not None:
            continue
        args = proc.args if isinstance(proc.args, list | tuple) else [proc.args]
        if not any(str(a).startswith(prefix) for a in args):
            continue
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def wait_pid_gone(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` (not our child) has exited; True if it is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):  # exited; its parent (maybe a non-reaping PID 1) has not reaped it
            return True
        time.sleep(0.02)
    return False
