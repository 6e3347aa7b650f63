"""``python -m tools.serve``: the embedded default — 4 nodes (solo ordering), a fake WeChat, the API.

What ``scripts/serve`` runs.  Idempotent: a second start reuses the consortium, the keys, the API
database and ``demo.json`` under the data directory (``var/`` by default, ``$VAR_DIR`` or ``--var``).
Stops everything it started on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import signal
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.core.crypto import PrivateKey
from ledger.errors import LedgerError
from ledger.store.keyfiles import read_consortium, read_private_key, write_private_key
from tools.local_consortium import LocalConsortium
from tools.proc import Child, ChildDied, alive, listen_socket, tail, wait_http

BIN = Path(sys.executable).parent
#: gunicorn's access log line: the path without its query string (``?access_token=…`` never reaches a log),
#: no referer or user agent (they can carry URLs with tokens too)
#: the served stack's ``batch_max_wait_ms`` (``--batch-wait-ms``; docs/BENCHMARKS.md "A night's footprint")
SERVED_BATCH_WAIT_MS = 40
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
#: the files of the stack that only its owner may read (the directories are 0700)
PRIVATE_GLOBS = ("ticket_api.sqlite*", "*.log", "demo.json", "consortium.json", "secrets", "secrets/*", "nodes",
                 "nodes/*", "nodes/*/*", "genesis", "genesis/**/*")


def _secrets(var: Path) -> tuple[Path, Path, dict[str, str]]:
    """The QR issuer key and the API's secrets file (both 0600, created once)."""
    d = var / "secrets"
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    qr_key = d / "qr-issuer.pem"
    if not qr_key.exists():
        write_private_key(PrivateKey.generate(), qr_key)
    sfile = d / "api-secrets.json"
    if not sfile.exists():
        fd = os.open(sfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"WECHAT_SECRET": secrets.token_urlsafe(24)}, fh)
    return qr_key, sfile, json.loads(sfile.read_text())


def _seed(var: Path, env: dict[str, str], api: str, wechat: str) -> dict[str, Any]:
    """Register the demo district on the ledger and issue tokens, once; ``demo.json`` marks it done."""
    from ticket_api.adapter.gateway import Gateway
    from ticket_api.db import make_engine
    from ticket_api.ledger_client import NodeClient
    from tools.demo_seed import (
        issue_camera_token,
        issue_tokens,
        seed_approver_keys,
        seed_cameras,
        seed_device_keys,
        seed_ledger,
        seed_operator_key,
        write_demo,
    )

    path = var / "demo.json"
    local = LocalConsortium(root=var)
    desc = local.describe()
    client = NodeClient(urls=[n["url"] for n in desc["nodes"]], tls=local.tls("gateway"),
                        members={n["url"]: n["name"] for n in desc["nodes"]},
                        genesis=read_consortium(desc["consortium"]).genesis_hash)
    gw = Gateway(key=read_private_key(desc["gateway_key"]), client=client)
    params = read_consortium(desc["consortium"]).parameters.get("eticket", {})
    departments = list(params.get("departments") or ["chengguan", "zhujian", "jiaotong", "shengtai"])
    members = {m.name for m in read_consortium(desc["consortium"]).members}
    own = [d for d in departments if d in members]
    approver_keys = seed_approver_keys(client, Path(desc["keys_dir"]), own, var / "secrets" / "approvers",
                                       now=datetime.now(UTC))
    officer_keys = seed_approver_keys(client, Path(desc["keys_dir"]), own, var / "secrets" / "enforcement",
                                      now=datetime.now(UTC), kind="enforcement")
    device_keys = seed_device_keys(gw, var / "secrets" / "devices", now=datetime.now(UTC))
    operator_key = seed_operator_key(client, Path(desc["keys_dir"]), own[0], var / "secrets" / "operator.pem",
                                     now=datetime.now(UTC))
    if path.exists():  # seeded before: same tokens, maybe a new port (and the camera an older seed lacks)
        tokens = json.loads(path.read_text(encoding="utf-8"))["tokens"]
        if "camera" not in tokens:
            seed_cameras(gw, now=datetime.now(UTC))
            tokens["camera"] = issue_camera_token(make_engine(env["TICKET_API_DATABASE_URL"]))
        return write_demo(path, api=api, tokens=tokens, wechat=wechat, approver_keys=approver_keys,
                          enforcement_keys=officer_keys, device_keys=device_keys, operator_key=operator_key)
    if client.query("project", project_id="P-001") is None:
        seed_ledger(gw, now=datetime.now(UTC))
    seed_cameras(gw, now=datetime.now(UTC))
    tokens = issue_tokens(make_engine(env["TICKET_API_DATABASE_URL"]), departments=departments)
    return write_demo(path, api=api, tokens=tokens, wechat=wechat, approver_keys=approver_keys,
                      enforcement_keys=officer_keys, device_keys=device_keys, operator_key=operator_key)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.serve", description=__doc__.splitlines()[0])
    p.add_argument("--var", default=os.environ.get("VAR_DIR", "var"), help="data directory (default var/)")
    p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument("--wechat-port", type=int, default=int(os.environ.get("WECHAT_PORT", "0")) or None)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--node-base-port", type=int, default=int(os.environ.get("NODE_BASE_PORT", "0")),
                   help="first node port of a new consortium (default 0: free ports)")
    p.add_argument("--ordering", choices=("solo", "etcd"), default="solo",
                   help="solo (default: one node orders) or etcd (a 3-member etcd cluster orders, as deployed)")
    p.add_argument("--simulate", action="store_true",
                   help="also run a simulated city's night through the API (scripts/simulate; log in simulate.log)")
    p.add_argument("--simulate-args", default=os.environ.get("SIMULATE_ARGS", "--fraction 0.25 --speed 10"),
                   help="options of scripts/simulate for --simulate (default: %(default)s)")
    p.add_argument("--tick-interval-s", type=float, default=60.0, help="the consortium's clock (default 60 s)")
    p.add_argument("--batch-wait-ms", type=int, default=int(os.environ.get("BATCH_WAIT_MS", str(SERVED_BATCH_WAIT_MS))),
                   help="a new consortium's nodes wait this long after a transaction for more to share its block "
                        "(default %(default)s ms: a city's few transactions a second in fewer blocks)")
    p.add_argument("--eticket", action="append", default=[], metavar="KEY=VALUE",
                   help="an e-ticket parameter of a new consortium (e.g. camera_grace_s=3; tests)")
    p.add_argument("--eticket-params", type=Path, default=None,
                   help="JSON file of e-ticket parameter overrides for a new consortium (docs/ETICKET.md "
                        "\"Parameters\": transport_hours, forbidden_zones, site_alarm_policy, ...)")
    p.add_argument("--plain-nodes", action="store_true",
                   help="a new consortium's nodes speak plain HTTP on loopback, without mutual TLS (benchmarks' "
                        "A/B only; a node refuses a non-loopback address without TLS)")
    p.add_argument("--genesis", type=Path, default=None,
                   help="for a new consortium, a directory holding a genesis co-signed by its founders "
                        "(consortium.json, its own parameters) and their keys (keys/NAME.pem), e.g. keys with "
                        "a short validity; default: every member makes its key and all sign a new genesis")
    args = p.parse_args(argv)
    # Before anything starts, the ports are bound here and held until the children serving them inherit
    # them: never ready over somebody else's server, and no other process can take one meanwhile (0: free).
    listening: list[socket.socket] = []
    for what, host, port in (("the API", args.host, args.port), ("the fake WeChat", "127.0.0.1", args.wechat_port)):
        try:
            listening.append(listen_socket(host, port or 0))
        except OSError:
            for s in listening:
                s.close()
            print(f"serve: {what} port {port} already in use by another process; choose another (--port, "
                  "--wechat-port or PORT=…)", file=sys.stderr)
            return 2
    os.umask(0o077)  # everything the stack and its children create: owner only (databases, logs, keys)
    var = Path(args.var).resolve()
    var.mkdir(parents=True, exist_ok=True)
    make_private(var)
    (var / "serve.ready").unlink(missing_ok=True)
    children: list[Child] = []
    local = LocalConsortium(root=var)

    def cleanup() -> None:
        # a second SIGTERM or Ctrl-C while stopping must not cut the stop short (children left running)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for c in reversed(children):
            c.stop(10)
        local.down()
        (var / "serve.ready").unlink(missing_ok=True)

    def shutdown(*_a: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the stop runs once, to its end
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        return _run(args, var, local, children, *listening)
    finally:
        for s in listening:
            s.close()
        cleanup()


def _run(args: argparse.Namespace, var: Path, local: LocalConsortium, children: list[Child],
         api_socket: socket.socket, wechat_socket: socket.socket) -> int:
    """Start everything (children are appended as they start, for the caller to stop) and wait; the API and
    the fake WeChat server serve on the listening sockets given (closed here once they hold them)."""
    print(f"[serve] consortium: 4 nodes, {args.ordering} ordering, data in {var}", flush=True)
    try:
        eticket: dict[str, Any] = {}
        if args.eticket_params:
            eticket.update(json.loads(args.eticket_params.read_text(encoding="utf-8")))
        eticket.update(kv.split("=", 1) for kv in args.eticket)
        local.up(nodes=4, ordering=args.ordering, base_port=args.node_base_port, batch_wait_ms=args.batch_wait_ms,
                 tick_interval_s=args.tick_interval_s, eticket=eticket or None, genesis_dir=args.genesis,
                 tls=not args.plain_nodes)
    except LedgerError as exc:  # a node port taken, another consortium answering, a node that died
        raise SystemExit(f"serve: {exc.message}") from None
    qr_key, secrets_file, _sec = _secrets(var)
    wport = int(wechat_socket.getsockname()[1])
    appid = "wx-demo-appid"
    wechat = Child("the fake WeChat server",
                   [str(BIN / "python"), "-m", "miniprogram_stub", "wechat", "--host", "127.0.0.1",
                    "--port", str(wport), "--fd", str(wechat_socket.fileno()), "--appid", appid,
                    "--secret-file", str(secrets_file),
                    "--reusable-codes"],  # so the demo can be played again; the secret by file, never in ps
                   log=var / "wechat.log", pass_fds=[wechat_socket.fileno()])
    children.append(wechat)
    wechat_socket.close()
    wechat_url = f"http://127.0.0.1:{wport}"
    api = f"http://{args.host}:{api_socket.getsockname()[1]}"
    env = {
        **os.environ,
        "TICKET_API_DATABASE_URL": f"sqlite:///{var / 'ticket_api.sqlite'}",
        "TICKET_API_SERVICES": "ticket_api.adapter:make_services",
        "TICKET_API_LEDGER_LOCAL": str(var / "consortium.json"),
        "TICKET_API_QR_SIGNING_KEY_FILE": str(qr_key),
        "TICKET_API_SECRETS_FILE": str(secrets_file),
        "TICKET_API_WECHAT_API_BASE": wechat_url,
        "TICKET_API_WECHAT_APPID": appid,
    }
    gunicorn = Child(
        "the API (gunicorn)",
        [str(BIN / "gunicorn"), "--workers", str(args.workers), "--threads", str(args.threads),
         "--worker-class", "gthread", "--bind", f"fd://{api_socket.fileno()}", "--timeout", "60",
         *control_socket_args(var), "--access-logfile", str(var / "api-access.log"),
         "--access-logformat", ACCESS_LOG_FORMAT,
         "--error-logfile", str(var / "api.log"), "ticket_api.app:create_app()"],
        own_log=var / "api.log", env=env, pass_fds=[api_socket.fileno()],
    )
    children.append(gunicorn)
    api_socket.close()
    try:
        wait_http(f"{api}/api/health", gunicorn, timeout=60)
        if not wechat.running():
            raise wechat.died()
    except (ChildDied, TimeoutError) as exc:
        raise SystemExit(f"serve: {exc}") from None
    doc = _seed(var, env, api, wechat_url)
    notifier = _notifier(var, env)  # after the seed: the API's tables exist
    children.append(notifier)
    print(f"[serve] API       {api}/api/health", flush=True)
    print(f"[serve] API docs  {api}/api/docs   (OpenAPI: {api}/api/openapi.json)", flush=True)
    print(f"[serve] dashboard {api}/dashboard", flush=True)
    print(f"[serve] demo data and tokens: {var / 'demo.json'} (project {doc['project_id']})", flush=True)
    print(f"[serve] play the story: .venv/bin/python -m miniprogram_stub demo --demo-file {var / 'demo.json'}",
          flush=True)
    simulator = _simulator(var, env, args.simulate_args) if args.simulate else None
    if simulator is not None:
        children.append(simulator)
        print(f"[serve] simulated city: scripts/simulate {args.simulate_args} (log {var / 'simulate.log'})",
              flush=True)
    (var / "serve.ready").write_text(api, encoding="utf-8")
    while True:
        if simulator is not None and not simulator.running():  # the night is over: the stack stays up
            print(f"[serve] the simulated night ended ({simulator.died()}); summary in {var / 'simulate.log'}",
                  flush=True)
            children.remove(simulator)
            simulator = None
        if not notifier.running():  # restartable: its cursor and outbox are in the API database
            print(f"[serve] {notifier.died()}; starting it again", file=sys.stderr, flush=True)
            children.remove(notifier)
            notifier = _notifier(var, env)
            children.append(notifier)
        for c in children:
            if not c.running():
                print(f"[serve] {c.died()}", file=sys.stderr, flush=True)
                print("[serve] a child process stopped; shutting down", file=sys.stderr, flush=True)
                return 1
        for n in local.describe()["nodes"]:
            if not alive(n.get("pid")):
                last = tail(Path(n["data_dir"]) / "node.log", 20)
                print(f"[serve] node {n['name']} stopped; last lines of its log:\n{last}", file=sys.stderr,
                      flush=True)
                print("[serve] a child process stopped; shutting down", file=sys.stderr, flush=True)
                return 1
        time.sleep(0.5)


def _notifier(var: Path, env: dict[str, str]) -> Child:
    """The notifier (``python -m ticket_api notify``): exactly one beside gunicorn's workers; its pid in
    ``notify.pid`` (for tests that kill it)."""
    child = Child("the notifier", [str(BIN / "python"), "-m", "ticket_api", "notify"], log=var / "notify.log",
                  env=env)
    (var / "notify.pid").write_text(str(child.pid), encoding="utf-8")
    return child


def _simulator(var: Path, env: dict[str, str], options: str) -> Child:
    """``python -m tools.simulate`` against this stack (``--simulate``)."""
    return Child("the simulated city", [str(BIN / "python"), "-m", "tools.simulate", "--var", str(var),
                                        *shlex.split(options)], log=var / "simulate.log", env=env)


def make_private(var: Path) -> None:
    """Files an earlier start (or an older version) left readable by others: owner only, directories 0700."""
    os.chmod(var, 0o700)
    for pattern in PRIVATE_GLOBS:
        for p in var.glob(pattern):
            if p.is_symlink():
                continue
            with contextlib.suppress(FileNotFoundError):  # a running node's files come and go (its WAL, probes)
                os.chmod(p, 0o700 if p.is_dir() else p.stat().st_mode & 0o700)


def control_socket_args(var: Path) -> list[str]:
    """gunicorn's control socket in the stack's own directory, never the shared default under ~/.gunicorn
    (two stacks on one machine would share it); none where the path is too long for a Unix socket."""
    path = var / "gunicorn.ctl"
    return ["--control-socket", str(path)] if len(str(path)) < 100 else ["--no-control-socket"]



if __name__ == "__main__":
    sys.exit(main())
