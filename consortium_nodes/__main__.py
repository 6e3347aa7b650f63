"""``python -m consortium_nodes run --config FILE`` (one node) and ``audit --consortium FILE`` (every node's chain).

The local launchers and the load generator are tools apart from the product: ``scripts/consortium``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consortium_nodes.config import NodeConfig, make_machine
from consortium_nodes.errors import ConfigError
from consortium_nodes.peers import Peers
from ledger.errors import LedgerError
from ledger.store.keyfiles import read_consortium, read_private_key
from ledger.store.ledger_store import LedgerStore
from ledger.transport import Tls

if TYPE_CHECKING:
    from consortium_nodes.ordering import Orderer, SoloOrderer
    from consortium_nodes.scheduler import Election, EtcdElection


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d: dict[str, Any] = {"t": self.formatTime(record), "level": record.levelname, "logger": record.name,
                             "msg": record.getMessage()}
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return json.dumps(d, ensure_ascii=False)


def _make_orderer(cfg: NodeConfig, tls: Tls | None = None,
                  genesis: str | None = None) -> tuple[Orderer, SoloOrderer | None]:
    """This node's orderer, and the solo orderer itself when this node is the designated one."""
    kind = cfg.ordering.get("kind", "solo")
    if kind == "solo":
        from consortium_nodes.ordering import HttpOrderer, SoloOrderer

        leader = str(cfg.ordering.get("leader", cfg.name))
        if leader == cfg.name:
            solo = SoloOrderer.open(cfg.data_dir / "orderer.db")
            return solo, solo
        return HttpOrderer(url=cfg.peers[leader], tls=tls, member=leader, genesis=genesis), None
    if kind == "etcd":
        from consortium_nodes.etcd_orderer import EtcdOrderer

        return EtcdOrderer(endpoints=list(cfg.ordering["endpoints"]), prefix=str(cfg.ordering["prefix"]),
                           tls=tls), None
    raise ConfigError(f"unknown ordering {kind!r}")


def _make_election(cfg: NodeConfig, solo: SoloOrderer | None, tls: Tls | None = None) -> Election:
    """Who schedules ``system.tick``: the solo orderer's node, or the holder of the etcd election key."""
    from consortium_nodes.scheduler import EtcdElection, FixedElection

    if cfg.ordering.get("kind", "solo") == "etcd":
        return EtcdElection(name=cfg.name, endpoints=list(cfg.ordering["endpoints"]),
                            prefix=str(cfg.ordering["prefix"]), ttl=cfg.scheduler_lease_s, tls=tls)
    return FixedElection(leader=solo is not None)


def _make_proposer_election(cfg: NodeConfig, tls: Tls | None = None) -> EtcdElection | None:
    """With etcd ordering: the ``proposer`` key whose holder proposes the batches (:mod:`consortium_nodes.proposer`),
    on a lease of ``scheduler_lease_s``; solo ordering has one orderer already (None)."""
    from consortium_nodes.scheduler import EtcdElection

    if cfg.ordering.get("kind", "solo") != "etcd" or not cfg.one_proposer:
        return None
    return EtcdElection(name=cfg.name, endpoints=list(cfg.ordering["endpoints"]), prefix=str(cfg.ordering["prefix"]),
                        ttl=cfg.scheduler_lease_s, tls=tls, role="proposer")


def cmd_run(a: argparse.Namespace) -> int:
    """Run one node until SIGTERM or SIGINT: then the HTTP server and the node's threads stop within a few
    seconds (waiting requests answer at once, others in flight get up to 5 s, the node's threads 3 s
    together), the store closes and the process exits 0 (75 when it stopped itself to be restarted after a
    storage fault, see :mod:`consortium_nodes.storage`).  The database is locked for the process's life (a
    second node on it is refused) and the port is bound before any thread starts (a taken port fails at
    once, naming it)."""
    cfg = NodeConfig.from_file(a.config)
    os.umask(0o077)  # the ledger database, its WAL, the lock and the orderer's database: owner only
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("cheroot").setLevel(logging.WARNING)
    log = logging.getLogger("consortium_nodes")
    consortium = read_consortium(cfg.consortium)
    key = read_private_key(cfg.key)
    from consortium_nodes.lifecycle import check_port, hold_database, listen, require_tls

    require_tls(cfg.host, tls=cfg.tls is not None)  # before anything: one line, exit 2
    tls = None if cfg.tls is None else Tls.load(cfg.tls, consortium)

    lock = hold_database(cfg.db, cfg.data_dir)
    try:
        check_port(cfg.host, cfg.port)
        store = LedgerStore.open(cfg.db, consortium=consortium)
        orderer, solo = _make_orderer(cfg, tls, consortium.genesis_hash)
        from consortium_nodes.http import create_app
        from consortium_nodes.node import Node
        from consortium_nodes.storage import EXIT_RESTART

        exit_code = [0]

        def _restart() -> None:  # the storage watch's thread: stop like on SIGTERM, exit for the supervisor
            exit_code[0] = EXIT_RESTART
            os.kill(os.getpid(), signal.SIGTERM)

        node = Node(
            name=cfg.name, consortium=consortium, key=key, store=store,
            machine=make_machine(cfg.state_machine, consortium), orderer=orderer,
            peers=Peers(peers=cfg.peers, tls=tls, genesis=consortium.genesis_hash), batch_max_txs=cfg.batch_max_txs,
            batch_max_wait=cfg.batch_max_wait_ms / 1000, replay=cfg.replay, restart=_restart,
            election=_make_election(cfg, solo, tls), tick_interval=cfg.tick_interval_s, joining=cfg.joining,
            proposer_election=_make_proposer_election(cfg, tls),
        )
        if tls is not None:
            tls.follow(lambda: node.consortium)  # TLS trust: the membership in force at this node's head
        try:
            server = listen(create_app(node, solo=solo, tls=tls), host=cfg.host, port=cfg.port, tls=tls)
        except BaseException:
            store.close()
            raise
        stopping = threading.Event()

        def _term(signum: int, _frame: Any) -> None:
            # Raised in the main thread, inside cheroot's loop: serve() leaves it, and stop() below closes the
            # socket and gives the worker threads SHUTDOWN_TIMEOUT s.
            if not stopping.is_set():
                stopping.set()
                log.info("node %s: signal %d, stopping", cfg.name, signum)
                node.closing()  # waiting requests answer now, so the server's threads end at once
                raise SystemExit(0)

        signal.signal(signal.SIGTERM, _term)
        signal.signal(signal.SIGINT, _term)
        try:
            node.start()
            log.info("node %s serving on %s", cfg.name, cfg.url)
            with contextlib.suppress(SystemExit):
                server.serve()  # until a signal raises SystemExit in it
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            with contextlib.suppress(Exception):
                server.stop()
            node.stop()
            store.close()
            log.info("node %s stopped", cfg.name)
    finally:
        lock.release()
    return exit_code[0]


def cmd_audit(a: argparse.Namespace) -> int:
    from consortium_nodes.audit import audit_consortium

    kept = Path(a.checkpoint).read_text(encoding="utf-8") if a.checkpoint and Path(a.checkpoint).exists() else None
    report = audit_consortium(Path(a.consortium), workers=a.workers, kept_checkpoint=kept)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0 if report["ok"] else 1


def build_parser(prog: str = "python -m consortium_nodes") -> tuple[argparse.ArgumentParser, Any]:
    p = argparse.ArgumentParser(prog=prog)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one node")
    r.add_argument("--config", required=True)
    r.set_defaults(func=cmd_run)
    au = sub.add_parser("audit", help="verify every node's chain and compare them")
    au.add_argument("--consortium", default="var/consortium.json")
    au.add_argument("--workers", type=int, default=None)
    au.add_argument("--checkpoint", help="a co-signed checkpoint kept from an earlier audit")
    au.set_defaults(func=cmd_audit)
    return p, sub


def run_parsed(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    a = p.parse_args(argv)
    try:
        return int(a.func(a))
    except LedgerError as exc:
        print(f"consortium_nodes: error: {exc.message} [{exc.reason}]", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"consortium_nodes: error: {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line for people; MUCK_DEBUG=1 shows the traceback
        import os

        if os.environ.get("MUCK_DEBUG"):
            raise
        print(f"consortium_nodes: internal error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 3


def main(argv: Sequence[str] | None = None) -> int:
    p, _ = build_parser()
    return run_parsed(p, argv)


if __name__ == "__main__":
    raise SystemExit(main())
