"""HTTP client of the consortium nodes: submit signed transactions, wait for finality, run queries.

The API is a gateway, not a node: it never decides anything itself.  It signs
a transaction with the gateway member's key, hands it to any node
(``POST /v1/transactions?wait=S``) and reads state through the nodes'
read-only queries (``POST /v1/query/<name>``).  Nodes are tried in turn, so
one node down (killed, restarting, catching up) does not stop the API.  The
nodes' answers are typed in :mod:`ledger.wire`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import requests

from ledger import transport
from ledger.core.transaction import Transaction
from ledger.transport import Tls
from ledger.wire import (
    NodeReport,
    NodeStatus,
    ProvenanceExport,
    QueryAnswer,
    Submitted,
    SubmittedBatch,
    TxDetail,
    TxStatus,
    TxStatuses,
)
from ticket_api.errors import ApiError, ServiceUnavailable


class LedgerRefusal(ApiError):
    """The consortium refused a transaction (admission or a business rule); ``reason`` is its code (HTTP
    status by ``REASON_STATUS``)."""


@dataclass(frozen=True)
class Finality:
    """Where a submitted transaction ended: final in a block with its validation ``code``."""

    tx_id: str
    status: str  # "final" | "committed" | "pending"
    code: str | None = None
    height: int | None = None
    index: int | None = None
    block_hash: str | None = None
    #: the payload of the transaction submitted (``Gateway.change``: the one a journal adopted may be an
    #: earlier attempt's, with its own server-drawn id)
    payload: Mapping[str, Any] | None = None

    @property
    def final(self) -> bool:
        return self.status == "final"


class NodeClient:
    """Talks to the nodes of one consortium, failing over between their URLs."""

    def __init__(self, *, urls: Sequence[str], timeout: float = 15.0, wait: float = 12.0, tls: Tls | None = None,
                 members: Mapping[str, str] | None = None, genesis: str | None = None) -> None:
        """``tls``: the gateway's TLS identity (``https://`` node URLs: its client certificate, and each node
        trusted only as the node member ``members`` names for its URL, else as any node member);
        ``genesis``: a node answering for another genesis hash is never used."""
        if not urls:
            raise ValueError("at least one node URL is needed")
        self.urls = [u.rstrip("/") for u in urls]
        self._tls, self._members, self._genesis = tls, dict(members or {}), genesis
        self._same_chain: set[str] = set()
        self.timeout = timeout
        self.wait = wait
        self._local = threading.local()
        self._next = 0
        self._lock = threading.Lock()

    # -- plumbing ------------------------------------------------------------
    @property
    def _http(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = transport.session(self._tls, members=self._members)
        return s

    def _check_genesis(self, base: str) -> None:
        """:class:`ServiceUnavailable`-worthy (a RuntimeError) when ``base`` is a node of another consortium."""
        if self._genesis is None or base in self._same_chain:
            return
        theirs = self._http.get(base + "/status", timeout=3).json().get("genesis")
        if theirs != self._genesis:
            raise RuntimeError(f"{base} is a node of another consortium (genesis {str(theirs)[:16]})")
        with self._lock:
            self._same_chain.add(base)

    def _order(self) -> list[str]:
        # Round-robin start, so load spreads and a dead first node does not cost every call a timeout.
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self.urls)
        return self.urls[start:] + self.urls[:start]

    def _call(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
              timeout: float | None = None) -> requests.Response:
        last: Exception | None = None
        for base in self._order():
            try:
                self._check_genesis(base)
            except (requests.RequestException, ValueError, AttributeError, RuntimeError) as exc:
                last = exc
                continue
            try:
                resp = self._http.request(method, base + path, json=json, params=params,
                                          timeout=timeout or self.timeout)
            except requests.RequestException as exc:
                last = exc
                continue
            if resp.status_code in (502, 503, 504):  # node not ready (starting, catching up): next
                last = RuntimeError(f"{base} answered {resp.status_code}")
                continue
            return resp
        raise ServiceUnavailable(f"no consortium node answered: {type(last).__name__}")

    @staticmethod
    def _body(resp: requests.Response) -> Any:
        """The answer's JSON (``{}`` for an empty body); its type is the caller's (:mod:`ledger.wire`)."""
        return resp.json() if resp.content else {}

    @staticmethod
    def _refusal(body: Any, status: int) -> LedgerRefusal:
        """A node's 4xx (``ledger.wire.ErrorAnswer``, or anything else) as a :class:`LedgerRefusal`."""
        reason = "malformed"
        message = f"node answered {status}"
        if isinstance(body, dict):
            err = body.get("error") or {}
            reason = str(body.get("reason") or err.get("code") or reason)
            message = str(err.get("message") or body.get("message") or message)
        return LedgerRefusal(message, reason=reason)

    # -- transactions --------------------------------------------------------
    def submit(self, tx: Transaction, *, wait: bool = True) -> Finality:
        """Submit ``tx``; with ``wait`` return once it is final (or raise 503 after ``self.wait`` s).

        Submission is idempotent by tx id on every node, so retrying on
        another node after a timeout is safe.
        """
        params = {"wait": str(self.wait)} if wait else None
        resp = self._call("POST", "/v1/transactions", json=tx.to_dict(), params=params,
                          timeout=self.timeout + (self.wait if wait else 0))
        body: TxStatus = self._body(resp)  # ``Submitted`` without ``wait``: its tx_id and status
        if resp.status_code >= 400:
            raise self._refusal(body, resp.status_code)
        fin = Finality(tx_id=str(body.get("tx_id") or tx.tx_id), status=str(body.get("status", "pending")),
                       code=body.get("code"), height=body.get("height"), index=body.get("index"),
                       block_hash=body.get("block_hash"))
        if wait and not fin.final:
            fin = self.wait_final(fin.tx_id)
        return fin

    def submit_many(self, txs: Sequence[Mapping[str, Any]]) -> list[Submitted]:
        """Submit signed transactions (``Transaction.to_dict``) in one request without waiting; one
        ``{"tx_id", "status": "accepted"|"known"|"rejected", "reason"?}`` each, in order."""
        resp = self._call("POST", "/v1/transactions", json={"transactions": list(txs)})
        body: SubmittedBatch = self._body(resp)
        if resp.status_code >= 400:
            raise self._refusal(body, resp.status_code)
        return list(body.get("results", []))

    def tx_details(self, tx_ids: Sequence[str]) -> dict[str, TxDetail]:
        """Where many transactions are: ``{tx_id: {"status", "code", "height"}}`` from one node."""
        resp = self._call("POST", "/v1/transactions/status", json={"tx_ids": list(tx_ids), "detail": True})
        body: TxStatuses = self._body(resp)
        if resp.status_code >= 400:
            raise self._refusal(body, resp.status_code)
        return dict(body.get("statuses", {}))

    def preview(self, tx: Transaction, *, min_height: int | None = None) -> tuple[str, str]:
        """``(code, message)`` the rules would give ``tx`` ordered now, from a node's current state
        (``ledger.eticket.queries.preview``) at ``min_height`` or above; an admission failure raises
        :class:`LedgerRefusal`."""
        out = self.query_at("preview", min_height, tx=tx.to_dict())
        return str(out["code"]), str(out.get("message") or "")

    def wait_final(self, tx_id: str) -> Finality:
        """Poll any node until ``tx_id`` is final; 503 ``ledger_timeout`` when it is not in time."""
        resp = self._call("GET", f"/v1/transactions/{tx_id}", params={"wait": str(self.wait)},
                          timeout=self.timeout + self.wait)
        body: TxStatus = self._body(resp)
        if body.get("status") != "final":
            raise ServiceUnavailable(f"transaction {tx_id[:16]} not final in time", reason="ledger_timeout")
        return Finality(tx_id=tx_id, status="final", code=body.get("code"), height=body.get("height"),
                        index=body.get("index"), block_hash=body.get("block_hash"))

    # -- reading -------------------------------------------------------------
    def query(self, name: str, **kwargs: Any) -> Any:
        """Run ``ledger.eticket.queries.<name>(machine, **kwargs)`` on a node."""
        return self.query_at(name, None, **kwargs)

    def query_at(self, name: str, min_height: int | None, **kwargs: Any) -> Any:
        """``query`` answered by a node whose head is at least ``min_height`` (read your own write).

        A transaction is final once more than two thirds of the nodes have its block, so the node a
        read lands on may not have it yet: ask the next node, then wait a little, up to ``self.wait``.
        Only for objects the final write created or changed (a missing one is taken for a lagging node).
        """
        deadline = time.monotonic() + self.wait
        while True:
            resp = self._call("POST", f"/v1/query/{name}", json=kwargs)
            body: QueryAnswer = self._body(resp)
            if resp.status_code >= 400:
                raise self._refusal(body, resp.status_code)
            # A node may store a block a moment before its state machine has applied it: an object the
            # final write created that is missing yet counts as behind too.
            behind = min_height is not None and (int(body.get("height", -1)) < min_height
                                                 or body.get("result") is None)
            if not behind or time.monotonic() > deadline:
                return body.get("result")
            time.sleep(0.01)

    def final_height(self, *, after: int | None = None, wait: float = 0.0) -> int:
        """The newest final block's height on a node (-1 before the first); with ``after`` the node answers
        once a height above it is final or ``wait`` seconds passed (a long poll)."""
        params = {"after": str(after), "wait": str(wait)} if after is not None and wait > 0 else None
        resp = self._call("GET", "/v1/final", params=params, timeout=self.timeout + (wait if params else 0))
        body = self._body(resp)
        if resp.status_code >= 400 or not isinstance(body, dict):
            raise ServiceUnavailable("a node's final height could not be read")
        return int(body.get("final_height", -1))

    def blocks(self, start: int, limit: int = 20) -> list[dict[str, Any]]:
        """Blocks ``start``.. (at most ``limit``; ``{"header", "hash", "transactions": [{"tx_id", "code",
        "tx"}]}``) from a node; fewer when the node has fewer."""
        resp = self._call("GET", "/v1/blocks", params={"start": start, "limit": limit})
        body = self._body(resp)
        if resp.status_code >= 400 or not isinstance(body, dict):
            raise self._refusal(body, resp.status_code)
        return list(body.get("blocks", []))

    def provenance(self, kind: str, key: str) -> ProvenanceExport:
        """A provenance export (``ledger.verify.provenance``) of one object, proofs to a co-signed checkpoint."""
        resp = self._call("POST", "/v1/provenance", json={"kind": kind, "key": key}, timeout=self.timeout + 15)
        body = self._body(resp)
        if resp.status_code >= 400:
            raise self._refusal(body, resp.status_code)
        return cast(ProvenanceExport, dict(body))

    def statuses(self) -> list[NodeReport]:
        """``GET /status`` of every node (an unreachable node is listed with ``reachable: false``)."""
        out: list[NodeReport] = []
        for base in self.urls:
            try:
                resp = self._http.get(base + "/status", timeout=3)
                status: NodeStatus = resp.json()
                out.append(cast(NodeReport, {"url": base, "reachable": True, **status}))
            except (requests.RequestException, ValueError) as exc:
                out.append({"url": base, "reachable": False, "error": type(exc).__name__})
        return out
