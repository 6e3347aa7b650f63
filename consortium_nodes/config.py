"""Node configuration files (JSON): identity, storage, peers, ordering, and the state machine a node runs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consortium_nodes.errors import ConfigError
from ledger import machines
from ledger.core.builder import StateMachine
from ledger.core.consortium import Consortium
from ledger.errors import ConsortiumError


@dataclass(frozen=True)
class NodeConfig:
    """What one member's node needs to run."""

    name: str
    consortium: Path
    key: Path
    db: str
    host: str = "127.0.0.1"
    port: int = 7000
    peers: Mapping[str, str] = field(default_factory=dict)
    ordering: Mapping[str, Any] = field(default_factory=lambda: {"kind": "solo"})
    state_machine: str = "eticket"
    data_dir: Path = Path("var")
    batch_max_txs: int = 500
    batch_max_wait_ms: int = 40
    replay: str = "fast"
    #: seconds between the consortium's ``system.tick`` transactions (0: this node never schedules them)
    tick_interval_s: float = 60.0
    #: seconds of the scheduler's etcd lease (etcd ordering): how soon another node takes over
    scheduler_lease_s: float = 10.0
    #: etcd ordering: only the holder of the ``proposer`` lease proposes, the others hand it their batches
    one_proposer: bool = True
    #: the node's TLS files (``cert``, ``key``, ``ca``: paths relative to the config file); None: plain HTTP,
    #: on loopback only
    tls: Mapping[str, str] | None = None
    #: a node of a member the consortium is adding by vote: it may start with a key no membership holds yet
    #: (it follows the chain and co-signs once the vote is in force); without it such a key is refused
    joining: bool = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @classmethod
    def from_file(cls, path: str | Path) -> NodeConfig:
        p = Path(path)
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read node config {p}: {exc.strerror}") from exc
        except ValueError as exc:
            raise ConfigError(f"node config {p} is not JSON: {exc}") from exc
        base = p.parent
        try:
            return cls(
                name=str(d["name"]),
                consortium=(base / d["consortium"]).resolve(),
                key=(base / d["key"]).resolve(),
                db=str(d["db"]),
                host=str(d.get("host", "127.0.0.1")),
                port=int(d.get("port", 7000)),
                peers={str(k): str(v) for k, v in d.get("peers", {}).items()},
                ordering=dict(d.get("ordering", {"kind": "solo"})),
                state_machine=str(d.get("state_machine", "eticket")),
                data_dir=(base / d.get("data_dir", ".")).resolve(),
                batch_max_txs=int(d.get("batch_max_txs", 500)),
                batch_max_wait_ms=int(d.get("batch_max_wait_ms", 40)),
                replay=str(d.get("replay", "fast")),
                tick_interval_s=float(d.get("tick_interval_s", 60.0)),
                scheduler_lease_s=float(d.get("scheduler_lease_s", 10.0)),
                one_proposer=bool(d.get("one_proposer", True)),
                tls=None if not d.get("tls") else {k: str((base / d["tls"][k]).resolve())
                                                   for k in ("cert", "key", "ca")},
                joining=bool(d.get("joining", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"node config {p} is missing or has a bad field: {exc!r}") from exc


def make_machine(name: str, consortium: Consortium) -> StateMachine:
    """``null`` accepts every well-signed transaction; ``eticket`` runs the muck-ticket rules."""
    try:
        factory = machines.machine_factory(name)
    except ConsortiumError as exc:
        raise ConfigError(exc.message) from exc
    return factory(consortium)
