"""``ledger tls``: a member's TLS certificates, made on the member's own machine with its own key.

Each department's operator runs, with the consortium document and its own member key:

* ``ledger tls ca``: its member CA certificate (public; self-signed by the member key, so anyone holding the
  genesis can check it) — sent to the other operators;
* ``ledger tls leaf``: a TLS certificate for one of its processes (a node, the API, an etcd member on its
  host) and the certificate's own key (0600), signed by the member key (``--card``: the key a governance vote
  put in force; the nodes trust it from the vote's block, no bundle needed);
* ``ledger tls bundle``: the CA bundle from every member's CA certificate, each checked against the
  consortium document (``--nodes-only``: the node members' CAs, etcd's trusted CA file).

The local launchers do the same for every member at once (:func:`ledger.store.certs.issue_consortium`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ledger.core.consortium import Member
from ledger.errors import ConsortiumError
from ledger.store import certs
from ledger.store.keyfiles import read_consortium, read_private_key

EXIT_OK = 0


def _pem_certificates(path: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(Path(path).read_bytes())
    except ValueError as exc:
        raise ConsortiumError(f"{path} holds no PEM certificate: {exc}") from exc


def cmd_ca(a: argparse.Namespace) -> int:
    consortium = read_consortium(a.consortium)
    member = consortium.by_name(a.name)
    ca = certs.member_ca(member, read_private_key(a.key), now=dt.datetime.now(dt.UTC))
    out = Path(a.out)
    out.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    print(json.dumps({"member": member.name, "ca": str(out), "key_id": member.public_key.key_id},
                     ensure_ascii=False))
    return EXIT_OK


def _member(a: argparse.Namespace) -> Member:
    """The member from the consortium document, or from ``--card``: the card a vote put in force (a member
    added, or its key rotated, by governance; the nodes trust it once the vote applied)."""
    consortium = read_consortium(a.consortium)
    if a.card is None:
        return consortium.by_name(a.name)
    try:
        member = Member.from_dict(json.loads(Path(a.card).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConsortiumError(f"cannot read the member card {a.card}: {exc}") from exc
    if member.name != a.name:
        raise ConsortiumError(f"the card {a.card} is member {member.name}'s, not {a.name}'s")
    return member


def cmd_leaf(a: argparse.Namespace) -> int:
    member = _member(a)
    key = read_private_key(a.key)
    if key.public_key != member.public_key:
        raise ConsortiumError(f"the key given is not member {member.name}'s consortium key")
    cert, tls_key = certs.leaf(member, key, now=dt.datetime.now(dt.UTC), sans=a.san or certs.LOOPBACK_SANS,
                               label=a.label)
    crt, k = certs.write_leaf(Path(a.out), cert, tls_key)
    print(json.dumps({"member": member.name, "cert": str(crt), "key": str(k),
                      "sans": list(a.san or certs.LOOPBACK_SANS),
                      "not_after": cert.not_valid_after_utc.isoformat()}, ensure_ascii=False))
    return EXIT_OK


def cmd_bundle(a: argparse.Namespace) -> int:
    consortium = read_consortium(a.consortium)
    found: list[x509.Certificate] = []
    for path in a.ca:
        found += _pem_certificates(path)
    member_certs = certs.MemberCerts(consortium, found)  # refuses a CA no member's key made or not self-signed
    names = [m.name for m in (consortium.nodes if a.nodes_only else consortium.members)]
    missing = [n for n in names if n not in member_certs.names()]
    if missing and not a.allow_missing:
        raise ConsortiumError(f"no CA certificate given for member(s) {', '.join(missing)}")
    present = [n for n in names if n in member_certs.names()]
    Path(a.out).write_bytes(member_certs.pem(present))
    print(json.dumps({"bundle": a.out, "members": present, "missing": missing}, ensure_ascii=False))
    return EXIT_OK


def register(sub: Any) -> None:
    t = sub.add_parser("tls", help="a member's TLS certificates under its own consortium key")
    tsub = t.add_subparsers(dest="action", required=True)

    ca = tsub.add_parser("ca", help="the member's CA certificate (public), self-signed by its member key")
    ca.add_argument("--consortium", required=True)
    ca.add_argument("--name", required=True, help="the member's name in the consortium document")
    ca.add_argument("--key", required=True, help="the member's private key file (never leaves its machine)")
    ca.add_argument("--out", required=True)
    ca.set_defaults(func=cmd_ca)

    lf = tsub.add_parser("leaf", help="a TLS certificate and its key (0600) for one of the member's processes")
    lf.add_argument("--consortium", required=True)
    lf.add_argument("--name", required=True)
    lf.add_argument("--key", required=True)
    lf.add_argument("--out", required=True, help="writes OUT.crt and OUT.key")
    lf.add_argument("--san", action="append", help="host name or IP address (repeat; default: loopback)")
    lf.add_argument("--label", default="tls", help="what the certificate is for (tls, etcd0, …)")
    lf.add_argument("--card", help="the member's card a governance vote put in force (added, or key rotated)")
    lf.set_defaults(func=cmd_leaf)

    b = tsub.add_parser("bundle", help="the CA bundle of the members' CA certificates, checked against the genesis")
    b.add_argument("--consortium", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--nodes-only", action="store_true", help="only the node members' CAs (etcd's trusted CA file)")
    b.add_argument("--allow-missing", action="store_true", help="write a bundle even if some member's CA is missing")
    b.add_argument("ca", nargs="+", help="PEM files with members' CA certificates")
    b.set_defaults(func=cmd_bundle)
