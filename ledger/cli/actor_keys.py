"""``ledger actor-key``: a department makes its approvers' key and registers it on the chain with its own
member key (``registry.key``), or revokes it (``registry.key_revoke``); see docs/DEPLOY.md "Approvers' keys".

The API never holds these keys: a decision signed with one (``ledger.eticket.acts``) is the department's act,
and the gateway cannot make one.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.cli.node_submit import node_args, node_session, submit_final
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ, iso
from ledger.core.transaction import Transaction
from ledger.errors import ConsortiumError
from ledger.eticket.acts import public_key_json
from ledger.store.keyfiles import read_consortium, read_private_key, write_private_key


def cmd_new(a: argparse.Namespace) -> int:
    path = Path(a.key)
    if path.exists():
        raise ConsortiumError(f"{path} exists: a key is never overwritten", reason="key_exists")
    key = PrivateKey.generate()
    write_private_key(key, path)
    print(json.dumps({"key_id": key.key_id, "actor": a.actor, "public_key": public_key_json(key)},
                     ensure_ascii=False))
    return 0


def _submit(a: argparse.Namespace, tx_type: str, payload: dict[str, Any]) -> int:
    consortium = read_consortium(a.consortium)
    member_key = read_private_key(a.member_key)
    member = consortium.member(member_key.key_id)
    http = node_session(a, consortium)
    tx = Transaction.create(key=member_key, type=tx_type, payload=payload, actor=f"admin:{member.name}",
                            timestamp=iso(datetime.now(CHINA_TZ), timespec="seconds"))
    return submit_final(a, http, tx, {"key_id": payload["key_id"]})


def cmd_register(a: argparse.Namespace) -> int:
    key = read_private_key(a.key)
    now = datetime.now(CHINA_TZ)
    payload = {"key_id": key.key_id, "actor": a.actor, "public_key": public_key_json(key),
               "valid_from": iso(now - timedelta(minutes=5), timespec="seconds"),
               "valid_until": iso(now + timedelta(days=a.days), timespec="seconds")}
    return _submit(a, "registry.key", payload)


def cmd_revoke(a: argparse.Namespace) -> int:
    return _submit(a, "registry.key_revoke", {"key_id": a.key_id, "reason": a.reason})


def register(sub: Any) -> None:
    k = sub.add_parser("actor-key", help="a department's approvers' key: make, register on the chain, revoke")
    ksub = k.add_subparsers(dest="actor_key_cmd", required=True)
    n = ksub.add_parser("new", help="a new key (0600) for an actor, e.g. approver:zhujian; prints its public key")
    n.add_argument("--actor", required=True,
                   help="approver:<department>, enforcement:<department> (or a device: gate:exit:P-001, …)")
    n.add_argument("--key", required=True, help="where to write the private key (never overwritten)")
    n.set_defaults(func=cmd_new)
    r = ksub.add_parser("register", help="register the key on the chain, signed with the department's member key")
    r.add_argument("--actor", required=True)
    r.add_argument("--key", required=True, help="the key made by 'actor-key new'")
    r.add_argument("--days", type=int, default=365, help="validity (default 365 days)")
    node_args(r)
    r.set_defaults(func=cmd_register)
    v = ksub.add_parser("revoke", help="revoke a key (lost, compromised, its holder gone)")
    v.add_argument("--key-id", required=True)
    v.add_argument("--reason", required=True)
    node_args(v)
    v.set_defaults(func=cmd_revoke)
