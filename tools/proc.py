"""The one process helper every tool and test uses: free ports, waiting for HTTP, children started and
stopped by pid, always reaped, and named with their last log lines when they die.

- :func:`free_port` — a loopback TCP port nothing listens on right now.
- :func:`listen_socket` — a port held from the moment it is chosen: a listening socket a child serves on
  (``pass_fds``; gunicorn ``--bind fd://N``), so no other process can take it before the child starts.
- :class:`Child` — a child process in its own session with its output in a log file; ``stop()`` sends
  SIGTERM to its whole process group, waits, then SIGKILL, and always reaps it (no ``ResourceWarning``).
- :func:`wait_http` — poll a URL until it answers below 500, failing fast (with the child's last log
  lines) when the child dies first.
- :func:`spawn_detached` — a daemon that outlives us (``scripts/consortium up`` returns while its nodes
  run): started through a launcher that exits at once, so we hold no handle to reap and it is nobody's
  zombie; it is known by its pid only.
- :func:`alive`, :func:`stop_process` (what happened), :func:`stop_pid` (gone or not) — the same for a
  process known only by its pid (a pid file, a consortium description), reaping it when it is our child.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

#: Children started through :class:`Child` and not yet reaped, by pid (reaped at exit whatever happens).
_LIVE: dict[int, Child] = {}


class ChildDied(RuntimeError):
    """A child process exited while we waited for it; the message names it and holds its last log lines."""


#: The lowest port our servers take: ports from here up to the kernel's ephemeral range are never handed out
#: as the source port of an outgoing connection, so a port we picked cannot be taken by one meanwhile (the
#: kernel's ``bind(0)`` picks from the ephemeral range, where any busy client can grab it first).
SERVICE_PORT_LOW = 20000


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(host: str, port: int) -> socket.socket | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
    except OSError:
        s.close()
        return None
    return s


def port_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port`` now (a bind succeeds; SO_REUSEADDR, as servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports on ``host`` that nothing listens on right now, below the kernel's
    ephemeral range (see :data:`SERVICE_PORT_LOW`); all held open while picking, so none repeats."""
    rng = random.SystemRandom()
    high = _ephemeral_low()
    held: list[socket.socket] = []
    try:
        for _ in range(50 * count):
            if len(held) == count:
                break
            s = _bindable(host, rng.randrange(SERVICE_PORT_LOW, high)) if high > SERVICE_PORT_LOW + count else None
            if s is not None:
                held.append(s)
        while len(held) < count:  # a crowded range: let the kernel choose
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            held.append(s)
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for s in held:
            s.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (see :func:`free_ports`)."""
    return free_ports(1, host)[0]


def listen_socket(host: str = "127.0.0.1", port: int = 0, backlog: int = 128) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port, see :func:`free_port`) that a child inherits
    (``Child(pass_fds=[s.fileno()])``) and serves on: the port is ours from the moment it is chosen, where a
    port merely found free may be taken by another process before the child binds it.  :class:`OSError`
    (``EADDRINUSE``) when ``port`` is taken."""
    for _ in range(20 if port == 0 else 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port or free_port(host)))
        except OSError:
            s.close()
            if port:
                raise
            continue  # taken since it was found free: choose again
        s.listen(backlog)
        s.set_inheritable(True)
        return s
    raise OSError(f"no free port on {host}")


def tail(path: Path | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Child:
    """A child process in a session of its own, its stdout and stderr appended to ``log`` (or, without one,
    inherited from us; ``quiet`` discards them).  ``own_log`` names a log file the child writes itself
    (gunicorn's ``--error-logfile``): its last lines are what :meth:`died` shows."""

    def __init__(self, name: str, argv: Sequence[str], *, log: Path | None = None, quiet: bool = False,
                 own_log: Path | None = None, cwd: str | Path | None = None,
                 env: Mapping[str, str] | None = None, pass_fds: Sequence[int] = ()) -> None:
        self.name = name
        self.log = own_log or log
        out: Any = open(log, "ab") if log is not None else (subprocess.DEVNULL if quiet else None)  # noqa: SIM115
        try:
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                list(argv), cwd=cwd, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, pass_fds=tuple(pass_fds),
            )
        finally:
            if log is not None:
                out.close()
        _LIVE[self.proc.pid] = self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def died(self) -> ChildDied:
        """The error that says this child exited, with its status and last log lines."""
        code = self.proc.poll()
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with status {code}"
        last = tail(self.log)
        return ChildDied(f"{self.name} {how}" + (f"; last lines of {self.log}:\n{last}" if last else ""))

    def stop(self, timeout: float = 15.0, *, kill: bool = False) -> int | None:
        """SIGTERM (or SIGKILL) to the child's process group, wait up to ``timeout``, SIGKILL, reap."""
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        else:  # the leader is gone; its group may not be
            _signal_group(self.proc.pid, signal.SIGKILL)
        _LIVE.pop(self.proc.pid, None)
        return self.proc.returncode


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


#: The launcher of a detached child: start it in a session of its own, print its pid, exit.
_LAUNCHER = """
import json, subprocess, sys
argv, log, cwd, env = json.loads(sys.stdin.read())
out = open(log, "ab") if log else subprocess.DEVNULL
p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                     start_new_session=True)
print(p.pid, flush=True)
"""


def spawn_detached(argv: Sequence[str], *, log: Path | None = None, cwd: str | Path | None = None,
                   env: Mapping[str, str] | None = None) -> int:
    """Start ``argv`` as a daemon in a session of its own (output appended to ``log``) and return its pid.

    It outlives this process; stop it with :func:`stop_pid`."""
    spec = json.dumps([list(argv), str(log) if log else None, str(cwd) if cwd else None,
                       dict(env) if env is not None else dict(os.environ)])
    # the spec (its environment too) goes through stdin, never on a command line that ``ps`` shows
    done = subprocess.run([sys.executable, "-c", _LAUNCHER], input=spec, capture_output=True, text=True, timeout=30)
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        raise ChildDied(f"could not start {argv[0]}: {done.stderr.strip()[-500:]}")
    return int(done.stdout.strip())


def wait_http(url: str, child: Child | None = None, *, timeout: float = 30.0, interval: float = 0.1) -> None:
    """Poll ``url`` until it answers with a status below 500; :class:`ChildDied` if ``child`` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if child is not None and not child.running():
            raise child.died()
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            last = tail(child.log) if child is not None else ""
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s" + (f"; last log lines:\n{last}"
                                                                                if last else ""))
        time.sleep(interval)


def alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    if not pid:
        return False
    child = _LIVE.get(pid)
    if child is not None:
        return child.running()
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


#: What :func:`stop_process` did: the process was not running, exited on SIGTERM, was killed (SIGKILL, at
#: once with ``kill`` or after the timeout), or is still alive after all that.
NOT_RUNNING, STOPPED, KILLED, STILL_ALIVE = "not running", "stopped cleanly", "killed", "still alive"


def stop_process(pid: int | None, *, timeout: float = 15.0, kill: bool = False) -> str:
    """Stop process ``pid``: SIGTERM (SIGKILL with ``kill``), SIGKILL after ``timeout``; reaped when it is our
    child.  Returns :data:`NOT_RUNNING`, :data:`STOPPED`, :data:`KILLED` or :data:`STILL_ALIVE`."""
    if not pid:
        return NOT_RUNNING
    child = _LIVE.get(pid)
    if child is not None:
        if not child.running():
            child.stop(timeout)
            return NOT_RUNNING
        code = child.stop(timeout, kill=kill)
        return KILLED if kill or code == -signal.SIGKILL else STOPPED
    if not alive(pid):
        _reap(pid)
        return NOT_RUNNING
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    if _wait_gone(pid, timeout if not kill else 10):
        return KILLED if kill else STOPPED
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return KILLED if _wait_gone(pid, 10) else STILL_ALIVE


def stop_pid(pid: int | None, *, timeout: float = 15.0, kill: bool = False) -> bool:
    """Stop process ``pid`` (SIGTERM then SIGKILL after ``timeout``); True once it is gone (and reaped)."""
    return stop_process(pid, timeout=timeout, kill=kill) != STILL_ALIVE


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


@atexit.register
def _stop_all() -> None:
    """Whatever happened, no child of ours outlives us or is left unreaped."""
    for child in list(_LIVE.values()):
        with contextlib.suppress(Exception):
            child.stop(5)
