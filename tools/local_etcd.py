"""The etcd cluster of a local consortium (:mod:`tools.local_consortium`) with etcd ordering: started with the
nodes' configurations pointing at it, its members' certificates, and its trusted CA bundle, which grows by the
member CA of a node member a vote adds (or a key a vote rotates to) and is read again by a rolling restart."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ledger.core.consortium import Member
from ledger.core.encoding import CHINA_TZ
from ledger.store.certs import LOOPBACK_SANS, bundle_path, issue_leaf, load_member_certs, member_ca, member_files
from ledger.store.keyfiles import read_consortium, read_private_key
from tools.etcd_cluster import EtcdCluster, EtcdTls

#: the etcd members of a local consortium
MEMBERS = 3


def trusted_bundle(desc: dict[str, Any]) -> Path:
    """The etcd members' trusted CA file: the member CAs of the node members (their leaves may connect)."""
    return Path(desc["tls_dir"]) / "etcd" / "node-ca.pem"


def etcd_up(desc: dict[str, Any]) -> None:
    """Start the consortium's etcd cluster (or its members that are down) and point every node's
    configuration at it."""
    cluster = EtcdCluster.ensure(data_dir=Path(desc["etcd"]["dir"]), members=MEMBERS,
                                 tls=etcd_tls(desc, members=MEMBERS))
    desc["etcd"]["endpoints"] = cluster.endpoints
    desc["etcd"]["pids"] = cluster.pids
    for n in desc["nodes"]:
        p = Path(n["config"])
        cfg = json.loads(p.read_text(encoding="utf-8"))
        cfg["ordering"] = {"kind": "etcd", "endpoints": cluster.endpoints, "prefix": desc["etcd"]["prefix"]}
        p.write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")


def etcd_tls(desc: dict[str, Any], *, members: int) -> EtcdTls | None:
    """Certificates of the etcd members, each issued under the key of the node member on whose host it
    runs (here: etcd ``i`` under node ``i``); only node members' certificates may connect, as clients
    (the orderer's writes) and as peers.  None without TLS."""
    if not desc.get("tls_dir"):
        return None
    consortium = read_consortium(desc["consortium"])
    d = Path(desc["tls_dir"]) / "etcd"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    nodes = [m.name for m in consortium.nodes]
    trusted = trusted_bundle(desc)
    if not trusted.exists():
        bundle = load_member_certs(consortium, bundle_path(desc["tls_dir"]))
        trusted.write_bytes(bundle.pem(nodes))
    pairs: list[tuple[str, str]] = []
    for i in range(members):
        host = nodes[i % len(nodes)]
        stem = d / f"etcd{i}"
        if not stem.with_suffix(".crt").exists():
            issue_leaf(consortium, host, read_private_key(Path(desc["keys_dir"]) / f"{host}.pem"), stem,
                       sans=LOOPBACK_SANS, label=f"etcd{i}")
        pairs.append((str(stem.with_suffix(".crt")), str(stem.with_suffix(".key"))))
    client = member_files(desc["tls_dir"], nodes[0])
    return EtcdTls(trusted_ca=str(trusted), members=pairs, client=(str(client.cert), str(client.key)))


def trust_in_etcd(desc: dict[str, Any], card: dict[str, Any], key_file: Path) -> list[str]:
    """Let the node member of ``card`` (voted in, or its key rotated by a vote) connect to etcd: its member CA,
    self-signed by the key of ``key_file`` as the founders' are, joins the etcd members' trusted bundle, and a
    rolling restart of the cluster (:meth:`EtcdCluster.rolling_restart`: one member at a time, quorum kept)
    makes every member read it.  Returns the order of the restart ([] when the bundle trusted it already)."""
    member = Member.from_dict(card)
    path = trusted_bundle(desc)
    ca = member_ca(member, read_private_key(key_file), now=datetime.now(CHINA_TZ))
    pem = path.read_bytes()
    if _holds_key(pem, ca.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)):
        return []
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pem + ca.public_bytes(serialization.Encoding.PEM))
    tmp.replace(path)
    cluster = EtcdCluster.attach(data_dir=Path(desc["etcd"]["dir"]))
    order = cluster.rolling_restart()
    desc["etcd"]["pids"] = cluster.pids
    return order


def _holds_key(pem: bytes, raw: bytes) -> bool:
    """True if a certificate of the PEM bundle is for the public key ``raw`` (Ed25519, raw bytes)."""
    for cert in x509.load_pem_x509_certificates(pem):
        pk = cert.public_key()
        if isinstance(pk, ed25519.Ed25519PublicKey) and pk.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw:
            return True
    return False
