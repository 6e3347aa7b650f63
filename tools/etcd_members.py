"""One member of a local etcd cluster: what it is (:class:`EtcdMember`, its TLS files :class:`EtcdTls`) and the
etcd command line that starts it (:func:`etcd_command`); :mod:`tools.etcd_cluster` runs them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ETCD_BINARY = "/usr/bin/etcd"
#: etcd's default request size limit (``--max-request-bytes``), set explicitly so the orderer can rely on it.
MAX_REQUEST_BYTES = 1_572_864


class EtcdClusterError(Exception):
    """The local etcd cluster could not be started, found healthy, or controlled."""


@dataclass(frozen=True)
class EtcdMember:
    """One member: its name, URLs, data directory, log file and (while running) process id."""

    name: str
    client_url: str
    peer_url: str
    data_dir: str
    log_file: str
    pid: int | None
    cert: str | None = None  # TLS: this member's certificate and key (client and peer URLs)
    key: str | None = None


@dataclass(frozen=True)
class EtcdTls:
    """Mutual TLS for a cluster: each member's certificate and key, the CA certificates whose leaves may
    connect as clients and as peers (the consortium's node members'), and a client certificate for this
    tool's own health and status calls."""

    trusted_ca: str
    members: Sequence[tuple[str, str]]
    client: tuple[str, str]


def etcd_command(m: EtcdMember, members: Sequence[EtcdMember], *, token: str, heartbeat_ms: int, election_ms: int,
                 quota_bytes: int, compaction_retention: int, trusted_ca: str | None) -> list[str]:
    """The command line of member ``m`` of the cluster of ``members`` (its data dir is kept across restarts:
    ``--initial-cluster-state new`` only matters at the first start)."""
    initial = ",".join(f"{x.name}={x.peer_url}" for x in members)
    return [
        ETCD_BINARY,
        "--name", m.name,
        "--data-dir", m.data_dir,
        "--listen-client-urls", m.client_url,
        "--advertise-client-urls", m.client_url,
        "--listen-peer-urls", m.peer_url,
        "--initial-advertise-peer-urls", m.peer_url,
        "--initial-cluster", initial,
        "--initial-cluster-state", "new",
        "--initial-cluster-token", token,
        "--heartbeat-interval", str(heartbeat_ms),
        "--election-timeout", str(election_ms),
        "--quota-backend-bytes", str(quota_bytes),
        "--auto-compaction-mode", "revision",
        "--auto-compaction-retention", str(compaction_retention),
        "--max-request-bytes", str(MAX_REQUEST_BYTES),
        "--snapshot-count", "10000",
        "--logger", "zap",
        *tls_flags(m, trusted_ca),
    ]  # fmt: skip


def tls_flags(m: EtcdMember, trusted_ca: str | None) -> list[str]:
    """Mutual TLS for clients and peers: only certificates ``trusted_ca`` issued may connect.  etcd reads the
    file when it starts only (etcd-io/etcd#11555): a changed bundle takes a restart of each member."""
    if m.cert is None or m.key is None or trusted_ca is None:
        return []
    return [
        "--cert-file", m.cert, "--key-file", m.key,
        "--trusted-ca-file", trusted_ca, "--client-cert-auth",
        "--peer-cert-file", m.cert, "--peer-key-file", m.key,
        "--peer-trusted-ca-file", trusted_ca, "--peer-client-cert-auth",
    ]  # fmt: skip
