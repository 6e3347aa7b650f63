"""The consortium on separate hosts: four node hosts, three etcd members on the first three of them and an
API host, each a network namespace (:mod:`tools.netns`); ``scripts/consortium up --netns`` / ``down``.

The files are those of :class:`tools.local_consortium.LocalConsortium` (``DIR/consortium.json`` describes
the nodes, ``DIR/nodes/<name>/node.json`` their configs); the description also holds the network
(``netns``) and the etcd members' process ids, so ``down`` from another process stops them and deletes
the namespaces.  Inside a fresh namespace nothing else listens, so the node and etcd ports are fixed
(:data:`NODE_PORT`, :data:`ETCD_CLIENT_PORT`, :data:`ETCD_PEER_PORT`) on each host's own address.

Where node URLs and listening options are made: :func:`node_endpoint` (one place, for TLS to plug in).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import requests

from consortium_nodes.errors import NodeError
from tools.local_consortium import LocalConsortium, desc_session
from tools.netns import Host, Network, destroy_described

ETCD_BINARY = "/usr/bin/etcd"
NODE_HOSTS = ("h1", "h2", "h3", "h4")
ETCD_HOSTS = NODE_HOSTS[:3]
API_HOST = "api"
NODE_PORT = 7100
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380


def node_endpoint(host: Host, port: int = NODE_PORT, *, relayed: bool = False,
                  tls: bool = True) -> tuple[str, dict[str, Any]]:
    """The URL peers, the API and tools use for the node on ``host``, and the listening options of its
    ``node.json``: on the host's address, or on the namespace's loopback behind the host's relay
    (``relayed``, :mod:`tools.netns_shaper`); mutual TLS (the node's ``tls`` files, made by
    :meth:`LocalConsortium._create`) unless ``tls`` is false — a node refuses a non-loopback address without it."""
    scheme = "https" if tls else "http"
    return f"{scheme}://{host.ip}:{port}", {"host": "127.0.0.1" if relayed else host.ip, "port": port}


def etcd_urls(host: Host, *, tls: bool = True) -> tuple[str, str]:
    """The client and peer URLs of the etcd member on ``host``."""
    scheme = "https" if tls else "http"
    return f"{scheme}://{host.ip}:{ETCD_CLIENT_PORT}", f"{scheme}://{host.ip}:{ETCD_PEER_PORT}"


def etcd_session(desc: dict[str, Any]) -> requests.Session:
    """A session to the layout's etcd members: the first node member's client certificate, etcd's servers
    checked against the node members' CAs (plain without TLS)."""
    http = requests.Session()
    http.trust_env = False
    tls = desc.get("netns", {}).get("etcd_tls")
    if tls:
        http.cert = (tls["client_cert"], tls["client_key"])
        http.verify = tls["trusted_ca"]
    return http


class NetnsConsortium:
    """A consortium of node processes in namespaces; the files live in ``root``."""

    def __init__(self, *, root: Path) -> None:
        self.local = LocalConsortium(root=root)
        self.root = self.local.root
        self.net: Network | None = None
        #: services listen on loopback behind a relay per host that adds the impairments (kernels without
        #: ``sch_netem``); decided in :meth:`up`
        self.relayed = False

    @property
    def desc_path(self) -> Path:
        return self.local.desc_path

    def describe(self) -> dict[str, Any]:
        return self.local.describe()

    def up(self, *, state_machine: str = "null", batch_wait_ms: int | None = None,
           wait: float = 90.0, relay: bool | None = None, tls: bool = True) -> dict[str, Any]:
        """Build the hosts, start etcd on three of them and a node on each node host; wait until every node
        is ready.  On any failure everything started is cleaned up again.  ``relay`` (default: when the
        kernel has no netem) puts a :mod:`tools.netns_shaper` relay in front of every host's services."""
        if self.desc_path.exists():
            raise NodeError(f"{self.root} already holds a consortium; run 'scripts/consortium down --purge' first")
        self.net = net = Network([*NODE_HOSTS, API_HOST])
        try:
            self.relayed = not net.netem_available() if relay is None else relay
            desc = self.local._create(nodes=len(NODE_HOSTS), ordering="etcd", state_machine=state_machine,
                                      base_port=0, batch_wait_ms=batch_wait_ms, tls=tls)
            desc["netns"] = net.describe()
            desc["netns"]["relayed"] = self.relayed
            if tls:
                desc["netns"]["etcd_tls"] = self._etcd_certs(desc)
            if self.relayed:
                desc["netns"]["relay_pids"] = self._relays_up()
            desc["etcd"]["endpoints"] = [etcd_urls(net.hosts[h], tls=tls)[0] for h in ETCD_HOSTS]
            desc["etcd"]["pids"] = self._etcd_up(desc)
            self._place_nodes(desc)
            self.local._write(desc)
            for n, host in zip(desc["nodes"], NODE_HOSTS, strict=True):
                n["pid"] = self._spawn_node(n, host)
                n["host"] = host
            self.local._write(desc)
            self.local.wait_ready([n["name"] for n in desc["nodes"]], timeout=wait)
            return desc
        except BaseException:
            self.down()
            raise

    def _control(self, host: str) -> Path:
        return self.root / f"shape-{host}.json"

    def _relays_up(self) -> dict[str, int]:
        assert self.net is not None
        pids: dict[str, int] = {}
        for h in NODE_HOSTS:
            ip = self.net.hosts[h].ip
            ports = [NODE_PORT] + ([ETCD_CLIENT_PORT, ETCD_PEER_PORT] if h in ETCD_HOSTS else [])
            relays = [a for port in ports for a in ("--relay", f"{ip}:{port}=127.0.0.1:{port}")]
            log = self.root / f"relay-{h}.log"
            pids[h] = self.net.spawn(h, [sys.executable, "-m", "tools.netns_shaper", "--control",
                                         str(self._control(h)), *relays], log=log)
        deadline = time.monotonic() + 30
        for h in NODE_HOSTS:
            log = self.root / f"relay-{h}.log"
            while not (log.exists() and "relaying" in log.read_text(encoding="utf-8", errors="replace")):
                if time.monotonic() > deadline:
                    raise NodeError(f"the relay of host {h} did not start; see {log}")
                time.sleep(0.1)
        return pids

    def impair(self, host: str, *, delay_ms: int = 50, jitter_ms: int = 20, loss_pct: float = 1.0) -> None:
        """Delay (± jitter) and lose ``host``'s traffic: ``tc netem`` on its link, or its relay's shaping."""
        assert self.net is not None
        if not self.relayed:
            self.net.impair(host, delay_ms=delay_ms, jitter_ms=jitter_ms, loss_pct=loss_pct)
        elif host in NODE_HOSTS:
            self._control(host).write_text(json.dumps({"delay_ms": delay_ms, "jitter_ms": jitter_ms,
                                                       "loss_pct": loss_pct}), encoding="utf-8")

    def heal(self, host: str) -> None:
        """Undo partitions and impairments of ``host``."""
        assert self.net is not None
        self.net.heal(host)
        self._control(host).unlink(missing_ok=True)

    def _etcd_certs(self, desc: dict[str, Any]) -> dict[str, Any]:
        """Each etcd member's certificate, issued under the key of the node member on its host (names: its
        host's address and loopback; etcd's peers check them); etcd trusts the node members' CAs only."""
        from ledger.store.certs import bundle_path, issue_leaf, load_member_certs, member_files
        from ledger.store.keyfiles import read_consortium, read_private_key

        assert self.net is not None
        consortium = read_consortium(desc["consortium"])
        d = Path(desc["tls_dir"]) / "etcd"
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        nodes = [n["name"] for n in desc["nodes"]]  # node i on NODE_HOSTS[i]
        trusted = d / "node-ca.pem"
        trusted.write_bytes(load_member_certs(consortium, bundle_path(desc["tls_dir"])).pem(
            [m.name for m in consortium.nodes]))
        members: dict[str, list[str]] = {}
        for h in ETCD_HOSTS:
            owner = nodes[NODE_HOSTS.index(h)]
            f = issue_leaf(consortium, owner, read_private_key(Path(desc["keys_dir"]) / f"{owner}.pem"),
                           d / f"e-{h}", sans=[self.net.hosts[h].ip, "127.0.0.1", "localhost"], label=f"etcd e-{h}")
            members[h] = [str(f.cert), str(f.key)]
        client = member_files(desc["tls_dir"], nodes[0])
        return {"trusted_ca": str(trusted), "members": members, "client_cert": str(client.cert),
                "client_key": str(client.key)}

    def _etcd_up(self, desc: dict[str, Any]) -> dict[str, int]:
        assert self.net is not None
        net = self.net
        etcd_tls = desc["netns"].get("etcd_tls")
        tls = bool(etcd_tls)
        cluster = ",".join(f"e-{h}={etcd_urls(net.hosts[h], tls=tls)[1]}" for h in ETCD_HOSTS)
        etcd_dir = Path(desc["etcd"]["dir"])
        pids: dict[str, int] = {}
        for h in ETCD_HOSTS:
            client, peer = etcd_urls(net.hosts[h], tls=tls)
            scheme = "https" if tls else "http"
            listen_client, listen_peer = (
                (f"{scheme}://127.0.0.1:{ETCD_CLIENT_PORT}", f"{scheme}://127.0.0.1:{ETCD_PEER_PORT}")
                if self.relayed else (client, peer))
            data = etcd_dir / h
            data.mkdir(parents=True, exist_ok=True, mode=0o700)
            argv = [ETCD_BINARY, "--name", f"e-{h}", "--data-dir", str(data / "data"),
                    "--listen-client-urls", listen_client, "--advertise-client-urls", client,
                    "--listen-peer-urls", listen_peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", cluster, "--initial-cluster-state", "new",
                    "--initial-cluster-token", f"muck-{net.run_id}",
                    "--heartbeat-interval", "100", "--election-timeout", "1000"]
            if etcd_tls:
                cert, key = etcd_tls["members"][h]
                argv += ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", etcd_tls["trusted_ca"],
                         "--client-cert-auth", "--peer-cert-file", cert, "--peer-key-file", key,
                         "--peer-trusted-ca-file", etcd_tls["trusted_ca"], "--peer-client-cert-auth"]
            pids[h] = net.spawn(h, argv, log=data / "etcd.log")
        deadline = time.monotonic() + 60
        http = etcd_session(desc)
        for h in ETCD_HOSTS:
            url = etcd_urls(net.hosts[h], tls=tls)[0] + "/health"
            while True:
                try:
                    if http.get(url, timeout=2).json().get("health") == "true":
                        break
                except (requests.RequestException, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise NodeError(f"etcd member on {h} not healthy; see {etcd_dir / h / 'etcd.log'}")
                time.sleep(0.2)
        return pids

    def _place_nodes(self, desc: dict[str, Any]) -> None:
        """Every node on its host: its URL, listening options, peers' URLs and the etcd endpoints."""
        assert self.net is not None
        urls: dict[str, str] = {}
        listen: dict[str, dict[str, Any]] = {}
        for n, h in zip(desc["nodes"], NODE_HOSTS, strict=True):
            urls[n["name"]], listen[n["name"]] = node_endpoint(self.net.hosts[h], relayed=self.relayed,
                                                               tls=bool(desc.get("tls_dir")))
        for n in desc["nodes"]:
            p = Path(n["config"])
            cfg = json.loads(p.read_text(encoding="utf-8"))
            cfg.update(listen[n["name"]])
            cfg["peers"] = {m: u for m, u in urls.items() if m != n["name"]}
            cfg["ordering"] = {"kind": "etcd", "endpoints": desc["etcd"]["endpoints"], "prefix": desc["etcd"]["prefix"]}
            p.write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")
            n["url"] = urls[n["name"]]

    def _spawn_node(self, n: dict[str, Any], host: str) -> int:
        assert self.net is not None
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        log = Path(n["data_dir"]) / "node.log"
        os.close(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        return self.net.spawn(host, [sys.executable, "-m", "consortium_nodes", "run", "--config", n["config"]],
                              log=log, env=env)

    # -- control ----------------------------------------------------------------
    def host_of(self, name: str) -> str:
        """The host a node or etcd member name (``e-h1``) runs on."""
        if name.startswith("e-"):
            return name[2:]
        return str(next(n["host"] for n in self.describe()["nodes"] if n["name"] == name))

    def etcd_leader_host(self, *, timeout: float = 20.0) -> str:
        """The host of the current etcd leader (asked of the members that answer)."""
        deadline = time.monotonic() + timeout
        assert self.net is not None
        desc = self.describe()
        http, tls = etcd_session(desc), bool(desc.get("netns", {}).get("etcd_tls"))
        while True:
            for h in ETCD_HOSTS:
                client = etcd_urls(self.net.hosts[h], tls=tls)[0]
                try:
                    st = http.post(client + "/v3/maintenance/status", json={}, timeout=2).json()
                    members = http.post(client + "/v3/cluster/member/list", json={}, timeout=2).json()
                except (requests.RequestException, ValueError):
                    continue
                leader = st.get("leader")
                for m in members.get("members", []):
                    if leader is not None and str(m.get("ID")) == str(leader):
                        return str(m["name"])[2:]
            if time.monotonic() > deadline:
                raise NodeError("no etcd leader found")
            time.sleep(0.3)

    def down(self, *, purge: bool = False) -> None:
        """Stop every process of the layout and delete its namespaces and bridge (also from a description
        written by another process); ``purge`` removes the files too."""
        pids: list[int] = []
        netdesc: dict[str, Any] | None = None
        if self.desc_path.exists():
            desc = self.describe()
            netdesc = desc.get("netns")
            pids = [int(n["pid"]) for n in desc["nodes"] if n.get("pid")]
            pids += [int(p) for p in (desc.get("etcd", {}).get("pids") or {}).values()]
            pids += [int(p) for p in ((netdesc or {}).get("relay_pids") or {}).values()]
        if self.net is not None:
            self.net.destroy()  # its own processes too
            self.net = None
        if netdesc is not None:
            destroy_described(netdesc, pids=pids)
        if purge and self.root.exists():
            import shutil

            shutil.rmtree(self.root, ignore_errors=True)
        elif self.desc_path.exists():
            desc = self.describe()
            for n in desc["nodes"]:
                n["pid"] = None
            desc.pop("netns", None)
            self.local._write(desc)


# -- the API host's load -------------------------------------------------------
def load(desc_path: Path, *, out: Path, seconds: float, per_request: int = 10, pause: float = 0.05,
         first: int = 0, stop_file: Path | None = None) -> None:
    """Submit transactions for ``seconds`` (run on the API host): ``per_request`` at a time, to the nodes
    in turn (a node that does not answer within 3 s is skipped for that request).  ``out`` gets one JSON
    line per request: ``{"attempted": [ids], "accepted": [ids]}`` (a request without an answer accepted
    none of its ids as far as the client knows; the ledger may still hold them)."""
    from ledger.store.keyfiles import read_private_key
    from ledger.testing import make_tx

    desc = json.loads(desc_path.read_text(encoding="utf-8"))
    gateway = read_private_key(desc["gateway_key"])
    urls = [n["url"] for n in desc["nodes"]]
    session = desc_session(desc)  # the gateway's client certificate; each node trusted as its member
    nonce, i = first, 0
    deadline = time.monotonic() + seconds
    with out.open("a", encoding="utf-8") as f:
        while time.monotonic() < deadline and not (stop_file is not None and stop_file.exists()):
            txs = [make_tx(gateway, nonce + k) for k in range(per_request)]
            nonce += per_request
            url = urls[i % len(urls)]
            i += 1
            accepted: list[str] = []
            try:
                r = session.post(url + "/v1/transactions", json={"transactions": [t.to_dict() for t in txs]},
                                 timeout=3)
                if r.status_code == 200:
                    accepted = [x["tx_id"] for x in r.json()["results"] if x["status"] in ("accepted", "known")]
            except requests.RequestException:
                pass
            f.write(json.dumps({"attempted": [t.tx_id for t in txs], "accepted": accepted, "node": url}) + "\n")
            f.flush()
            time.sleep(pause)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m tools.netns_consortium")
    sub = p.add_subparsers(dest="command", required=True)
    ld = sub.add_parser("load", help="submit transactions from the API host for a while")
    ld.add_argument("--desc", required=True)
    ld.add_argument("--out", required=True)
    ld.add_argument("--seconds", type=float, default=30.0)
    ld.add_argument("--first", type=int, default=0)
    ld.add_argument("--stop-file", help="stop (after the current request) once this file exists")
    a = p.parse_args(argv)
    load(Path(a.desc), out=Path(a.out), seconds=a.seconds, first=a.first,
         stop_file=Path(a.stop_file) if a.stop_file else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
