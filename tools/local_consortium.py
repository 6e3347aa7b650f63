"""A local consortium on loopback for demos and tests: ``scripts/consortium up|down|stop|start|status``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from consortium_nodes.errors import ConfigError, NodeError, PortInUse
from ledger import transport
from ledger.core.consortium import Consortium, Member, department_members
from ledger.core.encoding import CHINA_TZ
from ledger.eticket import default_parameters as eticket_defaults
from ledger.store.certs import (
    issue_consortium,
    leaf,
    member_files,
    write_leaf,
)
from ledger.store.founding import found_consortium
from ledger.store.keyfiles import read_consortium, read_private_key
from ledger.transport import Tls
from tools.proc import (
    KILLED,
    NOT_RUNNING,
    STILL_ALIVE,
    alive,
    free_ports,
    port_free,
    spawn_detached,
    stop_pid,
    stop_process,
    tail,
)


def default_parameters() -> dict[str, Any]:
    """Ledger parameters of a demo city, with the e-ticket rules' own defaults."""
    return {"max_payload_bytes": 65536, "max_block_txs": 2000, "eticket": eticket_defaults()}


def desc_tls(desc: dict[str, Any], member: str = "gateway") -> Tls | None:
    """``member``'s TLS identity in the consortium a description names (None without TLS)."""
    if not desc.get("tls_dir"):
        return None
    genesis = read_consortium(desc["consortium"])
    files = desc.get("member_tls", {}).get(member)  # a leaf issued under a key a vote put in force
    tls = Tls.load(files or member_files(desc["tls_dir"], member), genesis)
    if desc.get("voted"):  # members this launcher started under a key a vote put in force (join, rekey)
        members = {m.name: m for m in genesis.members}
        members.update({m.name: m for m in map(Member.from_dict, desc["voted"])})
        known = genesis.amended(members=list(members.values()))
        tls.follow(lambda: known)
    return tls


def desc_session(desc: dict[str, Any], member: str = "gateway", *, pool: int = 10) -> requests.Session:
    """A ``requests`` session to the nodes of a description as ``member`` (plain without TLS); ``pool``
    connections kept alive per node."""
    return transport.session(desc_tls(desc, member), members={n["url"]: n["name"] for n in desc["nodes"]},
                             pool=pool)


class LocalConsortium:
    """Processes and files of a consortium running on this machine, described by ``DIR/consortium.json``."""

    def __init__(self, *, root: Path) -> None:
        self.root = root.resolve()
        self.desc_path = self.root / "consortium.json"

    def describe(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.desc_path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError(f"no local consortium at {self.root} (run 'scripts/consortium up')") from exc

    def _write(self, desc: dict[str, Any]) -> None:
        tmp = self.desc_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(desc, ensure_ascii=False, indent=2), encoding="utf-8")
        tmp.replace(self.desc_path)

    # -- up / down ------------------------------------------------------------
    def up(self, *, nodes: int = 4, ordering: str = "solo", state_machine: str = "eticket",
           base_port: int = 0, wait: float = 60.0, batch_wait_ms: int | None = None,
           tick_interval_s: float = 0.0, scheduler_lease_s: float | None = None,
           eticket: dict[str, Any] | None = None, tls: bool = True,
           genesis_dir: Path | None = None) -> dict[str, Any]:
        """Create (first time) and start every node; idempotent for nodes already running.

        The consortium is founded as departments found one (:func:`ledger.store.founding.found_consortium`:
        each member makes its own key and card, every member signs the genesis), in ``DIR/genesis``; or,
        with ``genesis_dir``, it is the genesis already there (``consortium.json`` co-signed by its
        founders, ``keys/NAME.pem``: the members' keys, all on this one machine for a local run).

        ``base_port`` 0 (the default) picks free ports; ``batch_wait_ms`` sets the nodes' ``batch_max_wait_ms``
        when the consortium is created (default: the node default).  ``tick_interval_s`` is the seconds
        between the consortium's ``system.tick`` (0, the default here: no ticks, so a test's transactions
        are its own; the served system ticks each minute), ``scheduler_lease_s`` the scheduler's etcd lease
        and ``eticket`` overrides of the e-ticket parameters (short windows for tests).  A node's port that
        another process holds fails at once (:class:`PortInUse`, naming the port), before any node starts."""
        if self.desc_path.exists():
            desc = self.describe()
            if desc.get("ordering") != ordering or len(desc["nodes"]) != nodes:
                raise ConfigError(
                    f"{self.root} holds a {len(desc['nodes'])}-node {desc.get('ordering')} consortium; "
                    "run 'scripts/consortium down --purge' first"
                )
        else:
            desc = self._create(nodes=nodes, ordering=ordering, state_machine=state_machine, base_port=base_port,
                                batch_wait_ms=batch_wait_ms, tick_interval_s=tick_interval_s,
                                scheduler_lease_s=scheduler_lease_s, eticket=eticket, tls=tls,
                                genesis_dir=genesis_dir)
        if ordering == "etcd":
            self._etcd_up(desc)
        self._check_ports([n for n in desc["nodes"] if not alive(n.get("pid"))])
        for n in desc["nodes"]:
            if not alive(n.get("pid")):
                n["pid"] = self._spawn(n)
        self._write(desc)
        self.wait_ready([n["name"] for n in desc["nodes"]], timeout=wait)
        return desc

    def tls(self, member: str = "gateway") -> Tls | None:
        """``member``'s TLS identity in this consortium (None for a consortium made without TLS)."""
        return desc_tls(self.describe(), member)

    def session(self, member: str = "gateway") -> requests.Session:
        """A ``requests`` session to this consortium's nodes as ``member`` (client certificate; each node URL
        trusted only as its own member)."""
        return desc_session(self.describe(), member)

    def mount(self, http: requests.Session, member: str = "gateway") -> requests.Session:
        """Let ``http`` talk to this consortium's nodes as ``member`` too (one session for several)."""
        tls = self.tls(member)
        if tls is not None:
            for n in self.describe()["nodes"]:
                http.mount(n["url"].rstrip("/") + "/", transport.MemberAdapter(tls.client_context(n["name"])))
        return http

    def _create(self, *, nodes: int, ordering: str, state_machine: str, base_port: int,
                batch_wait_ms: int | None = None, tick_interval_s: float = 0.0,
                scheduler_lease_s: float | None = None, eticket: dict[str, Any] | None = None,
                tls: bool = True, genesis_dir: Path | None = None) -> dict[str, Any]:
        if genesis_dir is None:
            gen = self.root / "genesis"
            parameters = default_parameters()
            parameters["eticket"].update(eticket or {})
            consortium = found_consortium(gen, department_members(nodes), name="cq-muck", parameters=parameters,
                                          now=datetime.now(CHINA_TZ))
        else:
            gen = genesis_dir.resolve()
            consortium = read_consortium(gen / "consortium.json")  # refused unless every founder signed
        keys = {m.name: read_private_key(gen / "keys" / f"{m.name}.pem") for m in consortium.members}
        tls_dir = self.root / "genesis" / "tls"  # this run's certificates, never in a given genesis directory
        if tls:
            issue_consortium(consortium, keys, tls_dir)
        names = [m.name for m in consortium.nodes]
        # free ports: distinct (picked together), below the ephemeral range
        ports = free_ports(len(names)) if base_port == 0 else [base_port + i for i in range(len(names))]
        scheme = "https" if tls else "http"
        urls = {n: f"{scheme}://127.0.0.1:{p}" for n, p in zip(names, ports, strict=True)}
        desc: dict[str, Any] = {
            "consortium": str(gen / "consortium.json"),
            "keys_dir": str(gen / "keys"),
            "gateway_key": str(gen / "keys" / "gateway.pem"),
            "tls_dir": str(tls_dir) if tls else None,
            "gateway_tls": member_files(tls_dir, "gateway").to_dict() if tls else None,
            "ordering": ordering,
            "state_machine": state_machine,
            "nodes": [],
        }
        if ordering == "etcd":
            desc["etcd"] = {"dir": str(self.root / "etcd"), "prefix": f"/muck/{consortium.genesis_hash[:16]}"}
        for name, port in zip(names, ports, strict=True):
            d = self.root / "nodes" / name
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            cfg: dict[str, Any] = {
                "name": name,
                "consortium": str(gen / "consortium.json"),
                "key": str(gen / "keys" / f"{name}.pem"),
                "db": f"sqlite:///{d / 'ledger.db'}",
                "host": "127.0.0.1",
                "port": port,
                "peers": {n: u for n, u in urls.items() if n != name},
                "ordering": {"kind": "solo", "leader": names[0]} if ordering == "solo" else {"kind": "etcd"},
                "state_machine": state_machine,
                "data_dir": str(d),
            }
            if tls:
                cfg["tls"] = member_files(tls_dir, name).to_dict()
            if batch_wait_ms is not None:
                cfg["batch_max_wait_ms"] = batch_wait_ms
            cfg["tick_interval_s"] = tick_interval_s
            if scheduler_lease_s is not None:
                cfg["scheduler_lease_s"] = scheduler_lease_s
            (d / "node.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")
            desc["nodes"].append({"name": name, "url": urls[name], "data_dir": str(d), "pid": None,
                                  "config": str(d / "node.json")})
        return desc

    @staticmethod
    def _etcd_up(desc: dict[str, Any]) -> None:
        from tools.local_etcd import etcd_up

        etcd_up(desc)

    @staticmethod
    def _check_ports(nodes: list[dict[str, Any]]) -> None:
        """:class:`PortInUse` naming the first node port another process listens on."""
        for n in nodes:
            u = urlsplit(n["url"])
            host, port = u.hostname or "127.0.0.1", int(u.port or 80)
            if not port_free(host, port):
                raise PortInUse(f"port {port} of node {n['name']} ({host}) is already in use by another process; "
                                "stop it, or create this consortium elsewhere with free ports")

    def _spawn(self, n: dict[str, Any]) -> int:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        data_dir, node_log = Path(n["data_dir"]), Path(n["data_dir"]) / "node.log"
        os.chmod(data_dir, 0o700)
        os.close(os.open(node_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        os.chmod(node_log, 0o600)  # the log may hold peers' addresses and errors: owner only
        # a daemon: ``scripts/consortium up`` returns while its nodes run on
        return spawn_detached([sys.executable, "-m", "consortium_nodes", "run", "--config", n["config"]],
                              log=Path(n["data_dir"]) / "node.log", env=env)

    def wait_ready(self, names: list[str], *, timeout: float = 60.0) -> None:
        """Wait until each named node answers ``ready`` on /status as a node of this consortium (its genesis
        hash); a node that exits, or another consortium's node answering on its port, fails at once."""
        desc = self.describe()
        genesis = read_consortium(desc["consortium"]).genesis_hash
        deadline = time.monotonic() + timeout
        http = self.session()
        for n in desc["nodes"]:
            if n["name"] not in names:
                continue
            while True:
                try:
                    r = http.get(n["url"] + "/status", timeout=2)
                    st = r.json() if r.status_code == 200 else {}
                    if st.get("genesis") not in (None, genesis) or st.get("node") not in (None, n["name"]):
                        raise NodeError(
                            f"{n['url']} (port {urlsplit(n['url']).port}) answers as node {st.get('node')!r} of "
                            f"another consortium (genesis {str(st.get('genesis'))[:16]}…), not our {n['name']}; "
                            f"see {n['data_dir']}/node.log")
                    if st.get("genesis") == genesis and (st.get("ready") or st.get("fault")):
                        break  # ready, or up and reporting its fault (status shows it)
                except requests.exceptions.SSLError as exc:
                    if transport.cert_rejected(exc):
                        raise NodeError(
                            f"{n['url']} (port {urlsplit(n['url']).port}) is not our node {n['name']}: its TLS "
                            f"certificate was not issued under {n['name']}'s key (another consortium's node?); "
                            f"see {n['data_dir']}/node.log") from None
                except (requests.RequestException, ValueError):
                    pass
                if not alive(n.get("pid")):
                    last = tail(Path(n["data_dir"]) / "node.log", 10)
                    raise NodeError(f"node {n['name']} exited; last lines of {n['data_dir']}/node.log:\n{last}")
                if time.monotonic() > deadline:
                    raise NodeError(f"node {n['name']} not ready after {timeout:.0f} s; see {n['data_dir']}/node.log")
                time.sleep(0.1)

    def stop(self, name: str, *, kill: bool = False, timeout: float = 15.0) -> str:
        """Stop one node (SIGTERM, or SIGKILL with ``kill``) by its process id; returns what happened
        (:data:`tools.proc.STOPPED`, ``KILLED``, ``NOT_RUNNING``) and raises :class:`NodeError` if the process
        is still alive, keeping its pid in the description."""
        desc = self.describe()
        n = self._node(desc, name)
        outcome = stop_process(n.get("pid"), timeout=timeout, kill=kill)
        if outcome == STILL_ALIVE:
            raise NodeError(f"node {name} (pid {n['pid']}) is still running after SIGTERM and SIGKILL")
        n["pid"] = None
        self._write(desc)
        return outcome

    def start(self, name: str, *, wait: float = 60.0) -> None:
        desc = self.describe()
        n = self._node(desc, name)
        if not alive(n.get("pid")):
            self._check_ports([n])
            n["pid"] = self._spawn(n)
            self._write(desc)
        self.wait_ready([name], timeout=wait)

    def join(self, name: str, key_file: Path, *, card: dict[str, Any] | None = None, wait: float = 60.0) -> None:
        """Start the node of member ``name``, which a governance vote adds (or has added): configured like the
        founders' nodes (``joining``: its key may not be in force yet), every node of this consortium its peer.
        Under TLS its leaf is issued under its own key with its ``card`` (the one voted in): the nodes trust it
        once the vote is in force, and this consortium's tools (:meth:`tls`) trust it from now on.  With etcd
        ordering its member CA joins etcd's trusted bundle and the etcd members restart one at a time (quorum
        kept, ordering never stops) before the node starts: etcd reads its trusted CAs only when it starts."""
        desc = self.describe()
        if any(n["name"] == name for n in desc["nodes"]):
            raise ConfigError(f"this consortium has a node {name!r} already")
        model = json.loads(Path(desc["nodes"][0]["config"]).read_text(encoding="utf-8"))
        d = self.root / "nodes" / name
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        port = free_ports(1)[0]
        cfg = {**model, "name": name, "key": str(Path(key_file).resolve()), "db": f"sqlite:///{d / 'ledger.db'}",
               "port": port, "peers": {n["name"]: n["url"] for n in desc["nodes"]}, "data_dir": str(d),
               "joining": True}
        scheme = "http"
        if desc.get("tls_dir"):
            cfg["tls"] = self._voted_leaf(desc, name, key_file, card, name)
            self._trust_in_etcd(desc, card, key_file)
            scheme = "https"
        (d / "node.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")
        desc["nodes"].append({"name": name, "url": f"{scheme}://127.0.0.1:{port}", "data_dir": str(d), "pid": None,
                              "config": str(d / "node.json")})
        self._write(desc)
        self.start(name, wait=wait)

    def rekey(self, name: str, key_file: Path, *, card: dict[str, Any] | None = None, wait: float = 60.0) -> None:
        """Restart member ``name``'s node with the key a governance vote rotated it to (``card``: the new card,
        under TLS its new leaf is issued under that key; this consortium's tools trust it from now on, and with
        etcd ordering etcd's members too, after a rolling restart)."""
        self.stop(name)
        desc = self.describe()
        node = self._node(desc, name)
        cfg = json.loads(Path(node["config"]).read_text(encoding="utf-8"))
        cfg["key"] = str(Path(key_file).resolve())
        if desc.get("tls_dir"):
            cfg["tls"] = self._voted_leaf(desc, name, key_file, card, f"{name}-{len(desc.get('voted', [])) + 1}")
            self._trust_in_etcd(desc, card, key_file)
        Path(node["config"]).write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")
        self._write(desc)
        self.start(name, wait=wait)

    @staticmethod
    def _trust_in_etcd(desc: dict[str, Any], card: dict[str, Any] | None, key_file: Path) -> None:
        """With etcd ordering: etcd's members trust the member CA of the key a vote put in force (its ``card``),
        after a rolling restart of the cluster (etcd reads its trusted CAs only when it starts)."""
        if desc.get("etcd") and card is not None:
            from tools.local_etcd import trust_in_etcd

            trust_in_etcd(desc, card, key_file)

    @staticmethod
    def _voted_leaf(desc: dict[str, Any], name: str, key_file: Path, card: dict[str, Any] | None,
                    stem: str) -> dict[str, str]:
        """A leaf for ``name`` under the key a vote put in force (its ``card``), recorded in ``desc``."""
        if card is None or card.get("name") != name:
            raise ConfigError(f"member {name!r} needs its member card (the one voted) for a TLS certificate")
        member, key = Member.from_dict(card), read_private_key(key_file)
        if member.key_id != key.key_id:
            raise ConfigError(f"the card of {name!r} is not for the key in {key_file}")
        write_leaf(Path(desc["tls_dir"]) / stem, *leaf(member, key, now=datetime.now(CHINA_TZ)))
        desc["voted"] = [*desc.get("voted", []), card]
        desc.setdefault("member_tls", {})[name] = member_files(desc["tls_dir"], stem).to_dict()
        return dict(desc["member_tls"][name])

    def down(self, *, purge: bool = False) -> None:
        """Stop every process this consortium started, by process id; :class:`NodeError` naming any node that
        lives on (its pid kept, its data not purged)."""
        if not self.desc_path.exists():
            return
        desc = self.describe()
        for n in desc["nodes"]:
            if alive(n.get("pid")):
                os.kill(n["pid"], signal.SIGTERM)
        alive_still = []
        for n in desc["nodes"]:
            if stop_pid(n.get("pid"), timeout=10):
                n["pid"] = None
            else:  # keep the pid of a process that lives on: a later down or stop tries again
                alive_still.append(f"{n['name']} (pid {n['pid']})")
        if desc.get("etcd"):
            from tools.etcd_cluster import EtcdCluster

            EtcdCluster.stop_dir(Path(desc["etcd"]["dir"]))
        self._write(desc)
        if alive_still:
            raise NodeError(f"nodes still running after SIGTERM and SIGKILL: {', '.join(alive_still)}")
        if purge:
            import shutil

            shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _node(desc: dict[str, Any], name: str) -> dict[str, Any]:
        for n in desc["nodes"]:
            if n["name"] == name:
                return n  # type: ignore[no-any-return]
        raise ConfigError(f"no node named {name!r}")

    def status(self) -> list[dict[str, Any]]:
        out = []
        http = self.session()
        for n in self.describe()["nodes"]:
            try:
                st = http.get(n["url"] + "/status", timeout=2).json()
            except requests.RequestException:
                st = {"node": n["name"], "down": True}
            out.append(st)
        return out

    def consortium(self) -> Consortium:
        return read_consortium(self.describe()["consortium"])


def register(sub: Any) -> None:
    """Add ``up``, ``down``, ``stop``, ``start`` and ``status`` to the CLI."""
    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_)
        p.add_argument("--dir", default="var")
        return p

    up = add("up", "start a local consortium on loopback")
    up.add_argument("--nodes", type=int, default=4)
    up.add_argument("--ordering", choices=["solo", "etcd"], default="solo")
    up.add_argument("--state-machine", choices=["eticket", "null"], default="eticket")
    up.add_argument("--base-port", type=int, default=0,
                    help="first node port (the next nodes on the ports after it); 0, the default, picks free ports")
    up.add_argument("--batch-wait-ms", type=int, default=None,
                    help="how long a node collects transactions before proposing a batch (node default if unset)")
    up.add_argument("--tick-interval-s", type=float, default=60.0,
                    help="seconds between the consortium's system.tick transactions (0: none); default 60")
    up.add_argument("--no-tls", action="store_true",
                    help="plain HTTP between the processes (loopback only; default: mutual TLS)")
    up.add_argument("--genesis", help="a directory holding a genesis co-signed by its founders (consortium.json) "
                    "and their keys (keys/NAME.pem); default: every member makes its key, all sign a new one")
    up.set_defaults(func=lambda a: _print(LocalConsortium(root=Path(a.dir)).up(
        nodes=a.nodes, ordering=a.ordering, state_machine=a.state_machine, base_port=a.base_port,
        batch_wait_ms=a.batch_wait_ms, tick_interval_s=a.tick_interval_s, tls=not a.no_tls,
        genesis_dir=Path(a.genesis) if a.genesis else None)))
    down = add("down", "stop everything the local consortium started")
    down.add_argument("--purge", action="store_true", help="also delete its data")
    down.set_defaults(func=lambda a: LocalConsortium(root=Path(a.dir)).down(purge=a.purge) or 0)
    st = add("stop", "stop one node")
    st.add_argument("name")
    st.add_argument("--kill", action="store_true", help="SIGKILL instead of SIGTERM")
    st.add_argument("--timeout", type=float, default=15.0, help="seconds to wait after SIGTERM before SIGKILL")
    st.set_defaults(func=_cmd_stop)
    sa = add("start", "start one stopped node")
    sa.add_argument("name")
    sa.set_defaults(func=lambda a: LocalConsortium(root=Path(a.dir)).start(a.name) or 0)
    ss = add("status", "print every node's status")
    ss.set_defaults(func=lambda a: _print(LocalConsortium(root=Path(a.dir)).status()))


def _print(obj: Any) -> int:
    print(json.dumps(obj, ensure_ascii=False, indent=2))
    return 0


def _cmd_stop(a: argparse.Namespace) -> int:
    """``stop NAME``: says what happened; 0 when the node stopped cleanly or was not running, 1 when it had to
    be killed after the timeout (``--kill`` asked for that: 0), 2 (a :class:`NodeError`) when it lives on."""
    outcome = LocalConsortium(root=Path(a.dir)).stop(a.name, kill=a.kill, timeout=a.timeout)
    how = {KILLED: "killed with SIGKILL" + ("" if a.kill else f" after {a.timeout:.0f} s without stopping on SIGTERM"),
           NOT_RUNNING: "was not running"}.get(outcome, "stopped cleanly on SIGTERM")
    print(f"node {a.name}: {how}")
    return 1 if outcome == KILLED and not a.kill else 0
