"""``ledger governance propose|vote|status``: a member proposes or votes on a change of the consortium (add or
retire a member, rotate a member's key, change parameters or the policy), signed with its own member key on its
own machine and submitted to a node; see docs/ARCHITECTURE.md "Governance on the chain".
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

import requests

from ledger.cli.node_submit import node_args, node_session, submit_final
from ledger.core.encoding import CHINA_TZ, iso
from ledger.core.governance import ACTIONS, PROPOSE, VOTE
from ledger.core.transaction import Transaction
from ledger.errors import GovernanceError, LedgerError
from ledger.store.keyfiles import read_consortium, read_json, read_private_key


def _json_file(path: str, what: str) -> Any:
    return read_json(path, what, error=GovernanceError)


def _submit(a: argparse.Namespace, tx_type: str, payload: dict[str, Any]) -> int:
    """Sign with the member key, submit, wait for finality; exit 0 only when the transaction is final and valid
    (a governance refusal exits with its reason code)."""
    key = read_private_key(a.member_key)
    tx = Transaction.create(key=key, type=tx_type, payload=payload, actor=f"governance:{key.key_id}",
                            timestamp=iso(datetime.now(CHINA_TZ), timespec="seconds"))
    return submit_final(a, node_session(a, read_consortium(a.consortium)), tx,
                        {"type": tx_type, "proposal_id": payload["proposal_id"]})


def cmd_propose(a: argparse.Namespace) -> int:
    payload: dict[str, Any] = {"proposal_id": a.proposal_id, "action": a.action}
    if a.action in ("retire_member", "rotate_key"):
        if not a.member:
            raise GovernanceError(f"{a.action} needs --member")
        payload["member"] = a.member
    if a.action in ("add_member", "rotate_key"):
        if not a.card:
            raise GovernanceError(f"{a.action} needs --card (the member's card, made by 'ledger keygen')")
        payload["card"] = _json_file(a.card, "card")
    if a.action == "set_parameters":
        payload["parameters"] = _json_file(a.parameters or "", "parameters")
    if a.action == "set_policy":
        payload["policy"] = _json_file(a.policy or "", "policy")
    return _submit(a, PROPOSE, payload)


def cmd_vote(a: argparse.Namespace) -> int:
    return _submit(a, VOTE, {"proposal_id": a.proposal_id, "approve": not a.reject})


def cmd_status(a: argparse.Namespace) -> int:
    try:
        st = node_session(a, read_consortium(a.consortium)).get(a.node.rstrip("/") + "/status", timeout=30).json()
    except (requests.RequestException, ValueError) as exc:
        raise LedgerError(f"cannot read {a.node}/status: {exc.__class__.__name__}",
                          reason="ledger_unavailable") from None
    print(json.dumps(st.get("membership"), ensure_ascii=False, indent=2))
    return 0


def register(sub: Any) -> None:
    g = sub.add_parser("governance", help="propose or vote on a change of the consortium, signed with your key")
    gsub = g.add_subparsers(dest="governance_cmd", required=True)
    p = gsub.add_parser("propose", help="propose a change (you approve it by proposing)")
    p.add_argument("--proposal-id", required=True, help="a new id, e.g. rotate-shengtai-2026")
    p.add_argument("--action", required=True, choices=ACTIONS)
    p.add_argument("--member", help="retire_member, rotate_key: the member's name")
    p.add_argument("--card", help="add_member, rotate_key: the member card file (its new key's)")
    p.add_argument("--parameters", help="set_parameters: a JSON file of the parameters to set (null removes)")
    p.add_argument("--policy", help="set_policy: a JSON file of the whole new policy")
    node_args(p)
    p.set_defaults(func=cmd_propose)
    v = gsub.add_parser("vote", help="approve (or --reject) a pending proposal")
    v.add_argument("--proposal-id", required=True)
    v.add_argument("--reject", action="store_true", help="vote against")
    node_args(v)
    v.set_defaults(func=cmd_vote)
    s = gsub.add_parser("status", help="the membership in force and the pending proposals, as a node sees them")
    s.add_argument("--consortium", required=True, help="the consortium (genesis) file")
    s.add_argument("--node", required=True, help="a node's URL")
    for flag in ("--cert", "--tls-key", "--ca"):
        s.add_argument(flag, help="this member's TLS files (for an https node)")
    s.set_defaults(func=cmd_status)
