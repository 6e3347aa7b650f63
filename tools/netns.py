"""Separate hosts on one Linux machine: network namespaces (``ip netns``) joined by veth pairs to one bridge.

Every host is a namespace with one interface ``eth0`` on a private /24; the bridge sits in the root
namespace with the subnet's last address, so the machine itself reaches every host (the tests' status
reads) while :meth:`Network.partition` cuts a host off from all of them by taking its link down, and
:meth:`Network.impair` adds ``tc netem`` delay, jitter and loss on a host's link.  Names carry a run id
(``muck-<id>-<host>``, bridge ``mb<id>``), the subnet is picked among those no route of this machine uses,
so parallel runs never clash; :meth:`Network.destroy` (also at exit, and from ``scripts/consortium down``
through the description file) stops what runs in the namespaces and deletes them and the bridge.

Needs root and iproute2 (``ip``, ``tc``).  Not shipped: a test and demo harness.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.proc import spawn_detached

#: the prefix of every namespace this module makes (``muck-<run id>-<host>``)
PREFIX = "muck-"
_LIVE: weakref.WeakSet[Network] = weakref.WeakSet()


class NetnsError(RuntimeError):
    """A namespace, link or qdisc could not be made or changed (``ip``/``tc`` said why)."""


def available() -> str | None:
    """None when namespaces can be built here (root, ``ip`` and ``tc`` present); else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} (iproute2) is not installed"
    return None


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done


@dataclass(frozen=True)
class Host:
    """One host: its name, namespace, address and the root-side end of its link."""

    name: str
    ns: str
    ip: str
    link: str

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]


def _used_subnets() -> set[str]:
    out = _run(["ip", "-4", "route", "show"], check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line and line[0].isdigit()}


def _pick_subnet() -> str:
    """``10.a.b`` of a /24 no route of this machine uses."""
    used = _used_subnets()
    for _ in range(200):
        prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
        if f"{prefix}.0/24" not in used:
            return prefix
    raise NetnsError("no free 10.x.y.0/24 subnet found")


class Network:
    """Hosts in namespaces on one bridge; a context manager that destroys them on exit."""

    def __init__(self, hosts: Sequence[str], *, run_id: str | None = None) -> None:
        why = available()
        if why is not None:
            raise NetnsError(why)
        self.run_id = run_id or uuid.uuid4().hex[:5]
        self.bridge = f"mb{self.run_id}"
        self.subnet = _pick_subnet()
        self.hosts: dict[str, Host] = {}
        self._pids: list[int] = []
        _LIVE.add(self)
        try:
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            _run(["ip", "addr", "add", f"{self.subnet}.254/24", "dev", self.bridge])
            _run(["ip", "link", "set", self.bridge, "up"])
            for i, name in enumerate(hosts, start=1):
                self._add_host(i, name)
        except BaseException:
            self.destroy()
            raise

    def _add_host(self, i: int, name: str) -> None:
        ns, link, peer, ip = f"{PREFIX}{self.run_id}-{name}", f"mv{self.run_id}{i}", f"mp{self.run_id}{i}", \
            f"{self.subnet}.{i}"
        _run(["ip", "netns", "add", ns])
        self.hosts[name] = host = Host(name=name, ns=ns, ip=ip, link=link)
        _run(["ip", "link", "add", link, "type", "veth", "peer", "name", peer])
        _run(["ip", "link", "set", link, "master", self.bridge])
        _run(["ip", "link", "set", link, "up"])
        _run(["ip", "link", "set", peer, "netns", ns])
        _run(host.argv(["ip", "link", "set", peer, "name", "eth0"]))
        _run(host.argv(["ip", "addr", "add", f"{ip}/24", "dev", "eth0"]))
        _run(host.argv(["ip", "link", "set", "eth0", "up"]))
        _run(host.argv(["ip", "link", "set", "lo", "up"]))

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def describe(self) -> dict[str, Any]:
        """What :func:`destroy_described` needs to clean up from another process (``scripts/consortium down``)."""
        return {"run_id": self.run_id, "bridge": self.bridge, "subnet": self.subnet,
                "hosts": {h.name: {"ns": h.ns, "ip": h.ip, "link": h.link} for h in self.hosts.values()}}

    # -- processes ------------------------------------------------------------
    def spawn(self, host: str, argv: Sequence[str], *, log: Path, env: dict[str, str] | None = None) -> int:
        """Start ``argv`` inside ``host``'s namespace, detached, its output in ``log``; its process id."""
        pid = spawn_detached(self.hosts[host].argv(argv), log=log, env=env)
        self._pids.append(pid)
        return pid

    def run(self, host: str, argv: Sequence[str], *, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``host``'s namespace to its end."""
        return subprocess.run(self.hosts[host].argv(argv), capture_output=True, text=True, timeout=timeout)

    # -- faults ---------------------------------------------------------------
    def partition(self, host: str) -> None:
        """Cut ``host`` off from every other host and from this machine (its link goes down)."""
        _run(["ip", "link", "set", self.hosts[host].link, "down"])

    def netem_available(self) -> bool:
        """Whether this kernel has ``sch_netem`` (some VM kernels are built without it)."""
        host = next(iter(self.hosts.values()))
        done = self.run(host.name, ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"])
        if done.returncode == 0:
            self.run(host.name, ["tc", "qdisc", "del", "dev", "lo", "root"])
        return done.returncode == 0

    def impair(self, host: str, *, delay_ms: int = 50, jitter_ms: int = 20, loss_pct: float = 1.0) -> None:
        """Delay (± jitter) and lose packets leaving ``host`` (``tc netem`` on its eth0); :class:`NetnsError`
        when the kernel has no netem (:meth:`netem_available`)."""
        _run(self.hosts[host].argv(["tc", "qdisc", "replace", "dev", "eth0", "root", "netem", "delay",
                                    f"{delay_ms}ms", f"{jitter_ms}ms", "loss", f"{loss_pct}%"]))

    def heal(self, host: str) -> None:
        """Undo :meth:`partition` and :meth:`impair` on ``host``."""
        _run(["ip", "link", "set", self.hosts[host].link, "up"])
        _run(self.hosts[host].argv(["tc", "qdisc", "del", "dev", "eth0", "root"]), check=False)

    def heal_all(self) -> None:
        for name in self.hosts:
            self.heal(name)

    # -- clean up -------------------------------------------------------------
    def keep(self) -> None:
        """Leave the network up when this process exits (``scripts/consortium up --netns``: ``down`` deletes
        it from the description)."""
        _LIVE.discard(self)

    def destroy(self) -> None:
        """Stop every process in the namespaces (started here), delete the namespaces and the bridge."""
        destroy_described(self.describe(), pids=self._pids)
        self.hosts = {}
        self._pids = []
        _LIVE.discard(self)


def _ns_pids(ns: str) -> list[int]:
    out = _run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def destroy_described(desc: dict[str, Any], *, pids: Sequence[int] = ()) -> None:
    """Clean up a network from its :meth:`Network.describe`: the processes started in its namespaces
    (``pids``, and whatever still runs in them: only this run's processes can be there), then the
    namespaces (their veth ends go with them) and the bridge.  Safe to call twice."""
    namespaces = [h["ns"] for h in desc.get("hosts", {}).values()]
    victims = set(pids)
    for ns in namespaces:
        victims.update(_ns_pids(ns))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while sig == signal.SIGTERM and time.monotonic() < deadline and any(_alive(p) for p in victims):
            time.sleep(0.1)
    for ns in namespaces:
        _run(["ip", "netns", "del", ns], check=False)
    for h in desc.get("hosts", {}).values():
        _run(["ip", "link", "del", h["link"]], check=False)
    if desc.get("bridge"):
        _run(["ip", "link", "del", str(desc["bridge"])], check=False)


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def leftovers(run_id: str) -> list[str]:
    """Namespaces and links of run ``run_id`` that still exist (empty once it is destroyed)."""
    names = [line.split()[0] for line in _run(["ip", "netns", "list"], check=False).stdout.splitlines() if line]
    links = _run(["ip", "-o", "link", "show"], check=False).stdout
    found = [n for n in names if n.startswith(f"{PREFIX}{run_id}-")]
    found += [w.rstrip(":").split("@")[0] for w in links.split() if w.startswith((f"mb{run_id}", f"mv{run_id}"))]
    return found


def write_description(desc: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(desc, indent=2), encoding="utf-8")


@atexit.register
def _destroy_all() -> None:
    for net in list(_LIVE):
        with contextlib.suppress(Exception):
            net.destroy()
