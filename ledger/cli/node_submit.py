"""A member's own transaction from the command line (``ledger actor-key``, ``ledger governance``): the node
options, the session (mutual TLS for an https node), submitting and waiting until it is final and valid."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from ledger.core.consortium import Consortium
from ledger.core.transaction import Transaction
from ledger.errors import ConsortiumError, LedgerError
from ledger.store.certs import TlsFiles
from ledger.transport import Tls, session


def node_args(p: argparse.ArgumentParser) -> None:
    """The options naming the consortium, the member's key and the node to submit to."""
    p.add_argument("--consortium", required=True, help="the consortium (genesis) file")
    p.add_argument("--member-key", required=True, help="the department's own member key (never leaves its machine)")
    p.add_argument("--node", required=True, help="a node's URL (the department's own), e.g. https://node2:7102")
    p.add_argument("--cert", help="this member's TLS leaf certificate (for an https node)")
    p.add_argument("--tls-key", help="the leaf's key")
    p.add_argument("--ca", help="the consortium's CA bundle")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for finality (default 60)")


def node_session(a: argparse.Namespace, consortium: Consortium) -> requests.Session:
    """A session to ``a.node``: plain for http, with this member's TLS files for https (else
    ``tls_client_required``)."""
    tls = None
    if a.node.startswith("https://"):
        if not (a.cert and a.tls_key and a.ca):
            raise ConsortiumError("an https node needs --cert, --tls-key and --ca (this member's TLS files)",
                                  reason="tls_client_required")
        tls = Tls.load(TlsFiles(cert=Path(a.cert), key=Path(a.tls_key), ca=Path(a.ca)), consortium)
    return session(tls)


def submit_final(a: argparse.Namespace, http: requests.Session, tx: Transaction, show: Mapping[str, Any]) -> int:
    """Submit ``tx`` to ``a.node``, wait up to ``a.wait`` s for it to be final, print one JSON line (its id,
    ``show``, status, code, height); 0 when final and valid, else :class:`LedgerError` with the node's or the
    consortium's reason code (``node_refused``, ``ledger_unavailable``, ``ledger_timeout``, the refusal's)."""
    node = a.node.rstrip("/")
    try:
        r = http.post(f"{node}/v1/transactions", json=tx.to_dict(), timeout=30)
        if r.status_code not in (200, 202):
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            raise LedgerError(f"the node refused the transaction: HTTP {r.status_code} {r.text[:200]}",
                              reason=str((body if isinstance(body, dict) else {}).get("reason") or "node_refused"))
        deadline = time.monotonic() + a.wait
        while True:
            st = http.get(f"{node}/v1/transactions/{tx.tx_id}", params={"wait": 5}, timeout=30).json()
            if st.get("status") == "final" or time.monotonic() > deadline:
                break
    except requests.RequestException as exc:
        raise LedgerError(f"cannot reach {node}: {exc.__class__.__name__}", reason="ledger_unavailable") from None
    code = st.get("code")
    print(json.dumps({"tx_id": tx.tx_id, **show, "status": st.get("status"), "code": code,
                      "height": st.get("height")}, ensure_ascii=False))
    if st.get("status") != "final":
        raise LedgerError(f"not final within {a.wait:.0f} s: {tx.tx_id}", reason="ledger_timeout")
    if code != "valid":
        raise LedgerError(f"{tx.type} refused by the consortium: {code}", reason=str(code))
    return 0
