"""A local N-member etcd cluster on loopback: start, find the leader, kill -9 and restart members, stop."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import requests

from tools.etcd_members import ETCD_BINARY, MAX_REQUEST_BYTES, EtcdClusterError, EtcdMember, EtcdTls, etcd_command
from tools.etcd_procs import HANDLES, die_with_parent, pid_is_our_etcd, reap, stop_strays, wait_pid_gone
from tools.proc import free_ports

DESCRIPTION_FILE = "cluster.json"
#: heartbeat and election timeout of a detached cluster (:meth:`EtcdCluster.ensure`): etcd's defaults
DEPLOYED_HEARTBEAT_MS, DEPLOYED_ELECTION_MS = 100, 1000
_LIVE_CLUSTERS: weakref.WeakSet[EtcdCluster] = weakref.WeakSet()

__all__ = ["ETCD_BINARY", "MAX_REQUEST_BYTES", "EtcdCluster", "EtcdClusterError", "EtcdMember", "EtcdTls", "main"]


class EtcdCluster:
    """A local etcd cluster of 3 or 5 members on 127.0.0.1, each with its own data dir and log file.

    Use :meth:`start` to create and start one, :meth:`attach` to control one described by a
    ``cluster.json`` written by another process (e.g. ``python -m tools.etcd_cluster up``).
    """

    def __init__(
        self,
        *,
        base_dir: Path,
        members: Sequence[EtcdMember],
        token: str,
        heartbeat_ms: int = 50,
        election_ms: int = 500,
        quota_bytes: int = 256 * 1024 * 1024,
        compaction_retention: int = 1000,
        bind_to_parent: bool = True,
        trusted_ca: str | None = None,
        client: tuple[str, str] | None = None,
    ) -> None:
        self.base_dir = base_dir
        self.trusted_ca, self.client = trusted_ca, client
        self._http = requests.Session()
        self._http.trust_env = False
        if trusted_ca is not None and client is not None:
            self._http.verify, self._http.cert = trusted_ca, client
        self.token = token
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.quota_bytes = quota_bytes
        self.compaction_retention = compaction_retention
        self.bind_to_parent = bind_to_parent
        self._members: dict[str, EtcdMember] = {m.name: m for m in members}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        _LIVE_CLUSTERS.add(self)

    # ---- factories -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        data_dir: str | os.PathLike[str],
        members: int = 3,
        heartbeat_ms: int = 50,
        election_ms: int = 500,
        quota_bytes: int = 256 * 1024 * 1024,
        compaction_retention: int = 1000,
        bind_to_parent: bool = True,
        timeout: float = 20.0,
        tls: EtcdTls | None = None,
    ) -> EtcdCluster:
        """Start a new cluster of ``members`` (3 or 5) under ``data_dir`` and wait until all are healthy.

        With ``tls`` every member serves clients and peers over TLS and requires a client certificate
        issued by ``tls.trusted_ca`` (``--client-cert-auth``, ``--peer-client-cert-auth``).

        ``data_dir`` must not already hold a cluster.  ``compaction_retention`` is the number of
        revisions etcd keeps (``--auto-compaction-mode revision``).  With ``bind_to_parent`` the
        members get SIGKILL from Linux if the starting thread dies, so crashed tests leak nothing.
        """
        if members not in (1, 3, 5):
            raise ValueError("members must be 1, 3 or 5")
        if not Path(ETCD_BINARY).exists():
            raise EtcdClusterError(f"{ETCD_BINARY} is missing (apt-get install etcd-server)")
        base = Path(data_dir).resolve()
        if (base / DESCRIPTION_FILE).exists():
            raise EtcdClusterError(f"{base} already holds a cluster; run 'down' or use another dir")
        base.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * members)
        specs = []
        scheme = "https" if tls is not None else "http"
        for i in range(members):
            name = f"etcd{i}"
            mdir = base / name
            mdir.mkdir(exist_ok=True)
            specs.append(
                EtcdMember(
                    name=name,
                    client_url=f"{scheme}://127.0.0.1:{ports[2 * i]}",
                    peer_url=f"{scheme}://127.0.0.1:{ports[2 * i + 1]}",
                    data_dir=str(mdir / "data"),
                    log_file=str(mdir / "etcd.log"),
                    pid=None,
                    cert=tls.members[i][0] if tls is not None else None,
                    key=tls.members[i][1] if tls is not None else None,
                )
            )
        cluster = cls(
            base_dir=base,
            members=specs,
            token=f"muck-{uuid.uuid4().hex[:12]}",
            heartbeat_ms=heartbeat_ms,
            election_ms=election_ms,
            quota_bytes=quota_bytes,
            compaction_retention=compaction_retention,
            bind_to_parent=bind_to_parent,
            trusted_ca=tls.trusted_ca if tls is not None else None,
            client=tls.client if tls is not None else None,
        )
        try:
            for name in cluster.names:
                cluster._spawn(name)
            cluster.wait_healthy(timeout=timeout)
            cluster.write_description()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @classmethod
    def ensure(
        cls, *, data_dir: str | os.PathLike[str], members: int = 3, timeout: float = 20.0,
        tls: EtcdTls | None = None,
    ) -> EtcdCluster:
        """A detached cluster in ``data_dir`` that outlives this process: start it if none is described
        there, else restart its dead members on their data dirs; wait until healthy; write cluster.json.

        Use :meth:`stop_dir` (or ``python -m tools.etcd_cluster down``) to stop it.
        """
        if (Path(data_dir) / DESCRIPTION_FILE).exists():
            cluster = cls.attach(data_dir=data_dir)
            try:
                for name in cluster.names:
                    if cluster.pid(name) is None:
                        cluster.restart(name, wait=False)
                cluster.wait_healthy(timeout=timeout)
            except BaseException:
                cluster.stop()
                raise
            cluster.write_description()
        else:
            # a long-lived cluster (the served stack) runs etcd's own defaults (100 ms heartbeats, 1 s election
            # timeout), as a deployment would: half the idle raft traffic of the tests' quick 50/500
            cluster = cls.start(data_dir=data_dir, members=members, bind_to_parent=False, timeout=timeout, tls=tls,
                                heartbeat_ms=DEPLOYED_HEARTBEAT_MS, election_ms=DEPLOYED_ELECTION_MS)
        cluster._procs.clear()  # hand the processes over: they outlive this process, stop_dir ends them
        return cluster

    @classmethod
    def stop_dir(cls, data_dir: str | os.PathLike[str], *, purge: bool = False) -> None:
        """Stop the cluster described in ``<data_dir>/cluster.json`` by pid (no-op if none is described)."""
        path = Path(data_dir) / DESCRIPTION_FILE
        if path.exists():
            cls.attach(data_dir=data_dir).stop()
            path.unlink(missing_ok=True)
        stop_strays(Path(data_dir))
        if purge:
            shutil.rmtree(data_dir, ignore_errors=True)

    @classmethod
    def attach(cls, *, data_dir: str | os.PathLike[str]) -> EtcdCluster:
        """Control a cluster described by ``<data_dir>/cluster.json`` (started by another process)."""
        path = Path(data_dir).resolve() / DESCRIPTION_FILE
        try:
            desc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise EtcdClusterError(f"no cluster described at {path}") from exc
        members = [EtcdMember(**m) for m in desc["members"]]
        return cls(
            base_dir=Path(desc["base_dir"]),
            members=members,
            token=desc["token"],
            heartbeat_ms=desc["heartbeat_ms"],
            election_ms=desc["election_ms"],
            quota_bytes=desc["quota_bytes"],
            compaction_retention=desc["compaction_retention"],
            bind_to_parent=False,
            trusted_ca=desc.get("trusted_ca"),
            client=tuple(desc["client"]) if desc.get("client") else None,  # type: ignore[arg-type]
        )

    # ---- description -----------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Member names, ``etcd0`` … ``etcdN-1``."""
        return list(self._members)

    @property
    def endpoints(self) -> list[str]:
        """Client URLs of all members (running or not), e.g. ``http://127.0.0.1:40123``."""
        return [m.client_url for m in self._members.values()]

    def member(self, name: str) -> EtcdMember:
        """The member called ``name`` with its current pid (``None`` if not running)."""
        m = self._members[name]
        return EtcdMember(**{**asdict(m), "pid": self.pid(name)})

    @property
    def members(self) -> list[EtcdMember]:
        """All members with their current pids."""
        return [self.member(n) for n in self._members]

    @property
    def pids(self) -> dict[str, int | None]:
        """Member name → pid of the running process (``None`` if not running)."""
        return {n: self.pid(n) for n in self._members}

    def pid(self, name: str) -> int | None:
        """Process id of member ``name`` if it is running, else ``None``."""
        proc = self._procs.get(name)
        if proc is not None:
            return proc.pid if proc.poll() is None else None
        pid = self._members[name].pid
        if pid is not None and pid_is_our_etcd(pid, self._members[name].data_dir):
            return pid
        return None

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description: members with pids and URLs, and the settings used."""
        return {
            "base_dir": str(self.base_dir),
            "token": self.token,
            "heartbeat_ms": self.heartbeat_ms,
            "election_ms": self.election_ms,
            "quota_bytes": self.quota_bytes,
            "compaction_retention": self.compaction_retention,
            "endpoints": self.endpoints,
            "members": [asdict(m) for m in self.members],
            "trusted_ca": self.trusted_ca,
            "client": list(self.client) if self.client else None,
        }

    def write_description(self) -> Path:
        """Write :meth:`describe` to ``<base_dir>/cluster.json`` atomically and return its path."""
        path = self.base_dir / DESCRIPTION_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.describe(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    # ---- processes -------------------------------------------------------------------------

    def _command(self, name: str) -> list[str]:
        return etcd_command(self._members[name], list(self._members.values()), token=self.token,
                            heartbeat_ms=self.heartbeat_ms, election_ms=self.election_ms, quota_bytes=self.quota_bytes,
                            compaction_retention=self.compaction_retention, trusted_ca=self.trusted_ca)

    def _spawn(self, name: str) -> None:
        m = self._members[name]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        preexec: Callable[[], None] | None = die_with_parent if self.bind_to_parent else None
        with open(m.log_file, "ab") as log:
            proc = subprocess.Popen(
                self._command(name),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd=str(Path(m.data_dir).parent),
                preexec_fn=preexec,
                start_new_session=not self.bind_to_parent,
            )
        self._procs[name] = proc
        HANDLES.append(proc)  # keep every handle alive: a detached member must not warn when collected
        self._members[name] = EtcdMember(**{**asdict(m), "pid": proc.pid})
        self._update_description()

    def _update_description(self) -> None:
        """Rewrite ``cluster.json`` if this cluster is described there, so that ``stop_dir`` (and any
        other process attaching) finds members restarted or killed through this object by their new pids."""
        if (self.base_dir / DESCRIPTION_FILE).exists():
            self.write_description()

    def is_healthy(self, name: str, *, timeout: float = 1.0) -> bool:
        """True if member ``name`` answers ``/health`` with ``"health": "true"`` (it has a leader)."""
        try:
            r = self._http.get(self._members[name].client_url + "/health", timeout=timeout)
            return r.status_code == 200 and r.json().get("health") == "true"
        except (requests.RequestException, ValueError):
            return False

    def wait_healthy(self, names: Sequence[str] | None = None, *, timeout: float = 20.0) -> None:
        """Wait until the given members (default: all) are healthy; raise :class:`EtcdClusterError`."""
        pending = list(names if names is not None else self.names)
        deadline = time.monotonic() + timeout
        while pending:
            for name in list(pending):
                proc = self._procs.get(name)
                if proc is not None and proc.poll() is not None:
                    raise EtcdClusterError(
                        f"etcd member {name} exited with {proc.returncode}; "
                        f"see {self._members[name].log_file}"
                    )
                if self.is_healthy(name, timeout=0.5):
                    pending.remove(name)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise EtcdClusterError(f"etcd members {pending} not healthy after {timeout} s")
            time.sleep(0.05)

    def status(self, name: str, *, timeout: float = 1.0) -> dict[str, Any]:
        """Member ``name``'s ``/v3/maintenance/status`` answer (JSON gateway)."""
        r = self._http.post(self._members[name].client_url + "/v3/maintenance/status", json={}, timeout=timeout)
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    def leader(self, *, timeout: float = 10.0) -> str:
        """Name of the current leader, as agreed by a running member; waits through an election."""
        deadline = time.monotonic() + timeout
        while True:
            ids: dict[str, str] = {}
            leader_id: str | None = None
            for name in self.names:
                if self.pid(name) is None:
                    continue
                try:
                    st = self.status(name, timeout=0.5)
                except (requests.RequestException, ValueError):
                    continue
                ids[str(st["header"]["member_id"])] = name
                if st.get("leader") and str(st["leader"]) != "0":
                    leader_id = str(st["leader"])
            if leader_id is not None and leader_id in ids:
                return ids[leader_id]
            if time.monotonic() > deadline:
                raise EtcdClusterError(f"no leader after {timeout} s")
            time.sleep(0.05)

    def kill(self, name: str) -> None:
        """Kill member ``name`` with SIGKILL (no clean shutdown) and reap it."""
        pid = self.pid(name)
        if pid is None:
            return
        proc = self._procs.get(name)
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
        else:
            os.kill(pid, signal.SIGKILL)
            wait_pid_gone(pid, 10)
            reap(pid)
        self._members[name] = EtcdMember(**{**asdict(self._members[name]), "pid": None})
        self._update_description()

    def restart(self, name: str, *, wait: bool = True, timeout: float = 20.0) -> None:
        """Start member ``name`` again on its existing data dir; by default wait until it is healthy."""
        if self.pid(name) is not None:
            raise EtcdClusterError(f"etcd member {name} is still running")
        self._spawn(name)
        if wait:
            self.wait_healthy([name], timeout=timeout)

    def rolling_restart(self, *, timeout: float = 30.0, stop_timeout: float = 10.0) -> list[str]:
        """Restart every member once, one at a time, so that each reads its files again (etcd reads its trusted
        CA bundle only when it starts, etcd-io/etcd#11555); returns the order.  Each member is stopped
        (SIGTERM: a leader hands leadership over) and started again on its data dir, and the next one only once
        every member is healthy again with a leader, so with 3 (or 5) members quorum is never lost and the
        cluster stays writable.  The followers go first and the leader last: one leader change, not three.  A
        member this object did not start (an attached, detached cluster) is left detached after its restart.
        :class:`EtcdClusterError` if the cluster is not whole and healthy first, or a member does not come back
        within ``timeout`` seconds (the restart stops there: the others keep quorum)."""
        if len(self.names) < 3:
            raise EtcdClusterError("a rolling restart keeps quorum only with 3 or more members")
        down = [n for n in self.names if self.pid(n) is None]
        if down:
            raise EtcdClusterError(f"etcd members {down} are not running: restart them before a rolling restart")
        self.wait_healthy(timeout=timeout)
        leader = self.leader(timeout=timeout)
        order = [n for n in self.names if n != leader] + [leader]
        for name in order:
            owned = name in self._procs
            self._terminate(name, stop_timeout)
            self._spawn(name)
            if not owned:
                self._procs.pop(name, None)  # hand it over as before: it outlives this process
            self.wait_healthy(timeout=timeout)
            self.leader(timeout=timeout)
        return order

    def _terminate(self, name: str, timeout: float) -> None:
        """SIGTERM member ``name``, SIGKILL it if it has not exited after ``timeout`` seconds."""
        pid = self.pid(name)
        if pid is not None:
            proc = self._procs.get(name)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if proc is not None:
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            else:
                if not wait_pid_gone(pid, timeout):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    wait_pid_gone(pid, 5)
                reap(pid)
        self._procs.pop(name, None)
        self._members[name] = EtcdMember(**{**asdict(self._members[name]), "pid": None})

    def stop(self, *, timeout: float = 3.0) -> None:
        """Stop all members gracefully, leader first (SIGTERM, SIGKILL after ``timeout`` s).  Idempotent.

        Stopping the leader first lets it hand leadership over at once; stopping all members at the
        same time makes the leader wait seconds for a transfer that cannot happen.  Once quorum is
        gone the rest get SIGTERM together and SIGKILL after 0.5 s (safe: etcd's WAL is crash-safe).
        """
        while running := [n for n in self.names if self.pid(n) is not None]:
            if len(running) <= len(self.names) // 2:
                # no quorum left: nothing can commit, and a stale leader would wait for a transfer
                for name in running:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid(name) or 0, signal.SIGTERM)
                for name in running:
                    self._terminate(name, 0.5)
                break
            try:
                first = self.leader(timeout=0.3) if len(running) > 1 else running[0]
            except EtcdClusterError:
                first = running[0]
            self._terminate(first if first in running else running[0], timeout)
        self._procs.clear()

    def destroy(self) -> None:
        """Kill all members (SIGKILL: etcd's WAL makes that safe) and delete the cluster's directory."""
        for name in self.names:
            self.kill(name)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _stop_all_at_exit() -> None:
    """Stop clusters this process started and still holds, so an interpreter exit leaks nothing."""
    for cluster in list(_LIVE_CLUSTERS):
        if cluster._procs:
            cluster.stop(timeout=2)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.etcd_cluster up|down|status``: :func:`tools.etcd_cli.main`."""
    from tools.etcd_cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
