"""The node's HTTP interface for clients and peers (JSON over HTTP/1.1)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from flask.json.provider import DefaultJSONProvider

from consortium_nodes import access
from consortium_nodes import signature_stream as signature_streams
from consortium_nodes.node import Node
from consortium_nodes.ordering import Batch, OrderConflict, SoloOrderer
from ledger.core import checkpoint as cp
from ledger.core.batch import BatchSignature, UnsignedBatch, check_batch
from ledger.core.encoding import parse_untrusted
from ledger.core.transaction import parse_time
from ledger.errors import EncodingError, LedgerError, ProofError
from ledger.reasons import status_of
from ledger.transport import Tls

#: transactions or tx ids one request may carry
MAX_BULK = 5000
#: seconds a client may ask a transaction request to wait for finality (``wait``)
MAX_TX_WAIT = 30.0
#: blocks per ``GET /v1/blocks``: by default and at most
BLOCKS_DEFAULT, BLOCKS_MAX = 20, 100
#: the solo orderer's ``GET /v1/order/read``: longest wait (s), batches by default and at most
ORDER_MAX_WAIT, ORDER_READ_DEFAULT, ORDER_READ_MAX = 5.0, 64, 256


class NodeJSONProvider(DefaultJSONProvider):
    """Request bodies read through :func:`ledger.core.encoding.parse_untrusted`: a body too deep, with a lone
    surrogate or otherwise not JSON is no JSON (``get_json(silent=True)`` gives None: 400 ``malformed``),
    never a RecursionError or UnicodeError deep in a handler."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return parse_untrusted(s)
        except EncodingError as exc:
            raise json.JSONDecodeError(exc.message, "", 0) from None


def _http_status(reason: str | None) -> int:
    """The HTTP status of an error ``reason``, from the one registry of reason codes (:mod:`ledger.reasons`)."""
    return status_of(reason or "", 400)


def _arg_int(name: str, default: int | None = None) -> int | None:
    v = request.args.get(name)
    if v is None:
        return default
    try:
        return int(v)
    except ValueError:
        raise LedgerError(f"query parameter {name} must be an integer", reason="malformed") from None


def _arg_float(name: str, default: float, cap: float) -> float:
    v = request.args.get(name)
    try:
        return max(0.0, min(float(v), cap)) if v is not None else default
    except ValueError:
        raise LedgerError(f"query parameter {name} must be a number", reason="malformed") from None


def _error(code: str, message: str, *, reason: str | None = None) -> Response:
    d: dict[str, Any] = {"error": {"code": code, "message": message}}
    if reason is not None:
        d["reason"] = reason
    return jsonify(d)


# -- error handlers ------------------------------------------------------------
def ledger_error(exc: LedgerError) -> tuple[Response, int]:
    return _error(exc.reason, exc.message, reason=exc.reason), _http_status(exc.reason)


def not_found(_exc: Any) -> tuple[Response, int]:
    return _error("not_found", "no such resource", reason="not_found"), 404


def method_not_allowed(_exc: Any) -> tuple[Response, int]:
    return _error("method_not_allowed", "method not allowed"), 405


def internal(exc: Exception) -> tuple[Response, int]:
    current_app.logger.exception("internal error")
    return _error("internal", "internal error", reason="internal"), 500


ERROR_HANDLERS: list[tuple[type[Exception] | int, Callable[..., tuple[Response, int]]]] = [
    (LedgerError, ledger_error), (404, not_found), (405, method_not_allowed), (Exception, internal),
]


def _body() -> Any:
    """The request's JSON body, None without one; a JSON body no node reads (too deep, a lone surrogate, not
    UTF-8, an integer of thousands of digits: :class:`NodeJSONProvider`) is 400 ``malformed``."""
    body = request.get_json(silent=True)
    if body is None and request.is_json and request.get_data(cache=True):
        raise LedgerError("the request body is not JSON a node reads", reason="malformed")
    return body


def _json_object() -> dict[str, Any]:
    """The request body if it is a JSON object, else ``{}``."""
    body = _body() or {}
    return body if isinstance(body, dict) else {}


def _note() -> str:
    note = _json_object().get("note")
    if not isinstance(note, str):
        raise LedgerError("note is required", reason="malformed")
    return note


# -- the node's routes: each view takes the node and the rule's variables --------
def status(node: Node) -> Response:
    """Height, head, final height, ``certificate`` of the newest final block (``height``, ``header_hash``,
    ``signers``: member names, ``quorum``, ``nodes``; null before the first), log, pool, divergences, fault."""
    return jsonify(node.status(digest=request.args.get("digest") == "1"))


def submit(node: Node) -> tuple[Response, int]:
    body = _body()
    if body is None:
        raise LedgerError("request body must be JSON", reason="malformed")
    single = isinstance(body, dict) and "transactions" not in body
    items = [body] if single else body.get("transactions") if isinstance(body, dict) else body
    if not isinstance(items, list) or len(items) > MAX_BULK:
        raise LedgerError(f"transactions must be a list of at most {MAX_BULK}", reason="malformed")
    results = node.submit(items)
    if not single:
        return jsonify({"results": [r.to_dict() for r in results]}), 200
    r = results[0]
    if r.status == "rejected":
        return jsonify({**r.to_dict(), "error": {"code": r.reason, "message": r.message}}), _http_status(r.reason)
    wait = _arg_float("wait", 0.0, MAX_TX_WAIT)
    if wait > 0 and r.tx_id:
        st = node.tx_status(r.tx_id, wait=wait)
        return jsonify(st), 200 if st["status"] == "final" else 202
    return jsonify(r.to_dict()), 202


def tx(node: Node, tx_id: str) -> tuple[Response, int]:
    st = node.tx_status(tx_id, wait=_arg_float("wait", 0.0, MAX_TX_WAIT), with_tx=True)
    if st["status"] == "unknown":
        return jsonify({**st, "reason": "not_found"}), 404
    return jsonify(st), 200


def tx_statuses(node: Node) -> Response:
    """Bulk status: final, committed or unknown for up to 5000 tx ids (with ``detail``: code, height)."""
    body = _body() or {}
    ids = body.get("tx_ids", []) if isinstance(body, dict) else []
    if not isinstance(ids, list) or len(ids) > MAX_BULK:
        raise LedgerError(f"tx_ids must be a list of at most {MAX_BULK}", reason="malformed")
    if isinstance(body, dict) and body.get("detail"):  # each {"status", "code", "height"}
        return jsonify({"statuses": node.status_details([str(i) for i in ids])})
    return jsonify({"statuses": node.statuses([str(i) for i in ids])})


def query(node: Node, name: str) -> Response:
    """Read-only state queries with JSON keyword arguments, e.g. POST /v1/query/ticket {"ticket_id": ...}."""
    body = _body()
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise LedgerError("query arguments must be a JSON object", reason="malformed")
    return jsonify({"result": node.query(name, body), "height": node.store.height,
                    "final_height": node.final_height})


def final(node: Node) -> Response:
    """``{"final_height": n}``: the newest final height, read without a query; with ``after`` and ``wait``
    (seconds, at most ``MAX_TX_WAIT``) the answer waits until a height above ``after`` is final (a long
    poll: a follower of the chain asks once per block or per ``wait``, instead of polling ``/status``)."""
    after = _arg_int("after")
    wait = _arg_float("wait", 0.0, MAX_TX_WAIT)
    if after is not None and wait > 0:
        node.wait_final(after + 1, wait)
    return jsonify({"final_height": node.final_height})


def blocks(node: Node) -> Response:
    start = _arg_int("start", 0) or 0
    limit = min(_arg_int("limit", BLOCKS_DEFAULT) or BLOCKS_DEFAULT, BLOCKS_MAX)
    return jsonify({"blocks": [b.to_dict() for b in node.store.blocks(start, start + limit)]})


def block(node: Node, height: int) -> Response:
    b = node.store.block(height)
    if b is None:
        raise LedgerError(f"no block {height}", reason="not_found")
    return jsonify(b.to_dict())


def block_sigs(node: Node, height: int) -> Response:
    h = node.store.header(height)
    if h is None:
        raise LedgerError(f"no block {height}", reason="not_found")
    return jsonify({"height": height, "header_hash": h.hash,
                    "signatures": [s.to_dict() for s in node.store.signatures(height)]})


def signatures(node: Node) -> Response:
    items = _json_object().get("signatures", [])
    return jsonify({"accepted": node.receive_signatures(items if isinstance(items, list) else [])})


def pool_forward(node: Node) -> Response:
    """Transactions another node hands to this one, the proposer of the moment (:mod:`consortium_nodes.proposer`):
    ``{"from", "txs": [[tx_id, text], ...]}``; ``{"pooled"}``.  409 ``not_proposer`` when this node does not
    propose (the sender proposes them itself)."""
    b = _json_object()
    pooled = node.take_handed(b.get("txs"))
    if pooled is None:
        raise LedgerError("this node is not the proposer of the moment", reason="not_proposer")
    return jsonify({"pooled": pooled})


def signature_stream(node: Node) -> Response:
    """A peer's signatures as a stream of frames in one chunked request (:mod:`consortium_nodes.signature_stream`),
    read until the peer ends it or this node stops; the answer (``frames``, ``accepted``) is for the record."""
    if "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        raise LedgerError("a signature stream is sent with Transfer-Encoding: chunked", reason="malformed")
    done = signature_streams.receive(request.environ["wsgi.input"], node.receive_signatures,
                                     stopping=lambda: node.stopping)
    return jsonify(done)


def inclusion(node: Node) -> Response:
    tx_id = request.args.get("tx_id", "")
    stored = node.store.get_tx(tx_id)
    if stored is None:
        raise LedgerError(f"no transaction {tx_id}", reason="not_found")
    log = node.store.log()
    size = _arg_int("size", log.size) or log.size
    if stored.seq >= size:
        raise ProofError(f"transaction {tx_id} is not in a tree of size {size}")
    return jsonify({"tx_id": tx_id, "index": stored.seq, "tree_size": size, "root": log.root(size).hex(),
                    "leaf_hash": log.leaf(stored.seq).hex(),
                    "hashes": [h.hex() for h in log.inclusion(stored.seq, size)]})


def consistency(node: Node) -> Response:
    log = node.store.log()
    old = _arg_int("old", 0) or 0
    new = _arg_int("new", log.size) or log.size
    return jsonify({"old_size": old, "new_size": new, "old_root": log.root(old).hex(),
                    "new_root": log.root(new).hex(), "hashes": [h.hex() for h in log.consistency(old, new)]})


def checkpoint(node: Node) -> Response:
    """A checkpoint of the log at the newest final block, signed by this node."""
    header = node.store.header(node.final_height) if node.final_height >= 0 else None
    size = 0 if header is None else header.log_size
    log = node.store.log()
    note = cp.sign(cp.Checkpoint(node.consortium.origin, size, log.root(size)), [(node.name, node.key)])
    return jsonify({"size": size, "root": log.root(size).hex(), "note": note})


def cosign(node: Node) -> Response:
    """Witness a checkpoint: co-sign it only if it matches this node's own log."""
    return jsonify({"note": node.cosign_checkpoint(_note())})


def share_checkpoint(node: Node) -> Response:
    return jsonify({"stored": node.accept_checkpoint(_note())})


def new_checkpoint(node: Node) -> Response:
    """Coordinate a checkpoint co-signed by a quorum of the nodes, now."""
    return jsonify({"note": node.make_checkpoint()})


def latest_checkpoint(node: Node) -> Response:
    note = node.latest_checkpoint()
    if note is None:
        raise LedgerError("no co-signed checkpoint yet", reason="not_found")
    return jsonify({"note": note})


def provenance(node: Node) -> Response:
    body = _body() or {}
    if not isinstance(body, dict) or not isinstance(body.get("kind"), str) or not isinstance(body.get("key"), str):
        raise LedgerError("kind and key are required", reason="malformed")
    return jsonify(node.provenance(body["kind"], body["key"]))


# -- the solo orderer's routes (on the designated node only) ----------------------
def order_append(solo: SoloOrderer, node: Node) -> tuple[Response, int]:
    """Append a batch signed by the node member it names as proposer, for the ``seq`` it expects (the next
    one).  The front door only: every node checks the signature again when it builds the block.  Refuses
    400 ``malformed`` (fields missing), 403 ``unsigned_batch`` / ``unknown_signer`` / ``forbidden`` (not a
    node member, or not the proposer) / ``bad_signature``, 422 ``block_time_ahead`` (timed more than the
    consortium's ``max_clock_skew_s`` ahead of this node's clock), 409 ``order_conflict`` with the real
    ``head`` (another batch took that number: sign for ``head + 1``)."""
    b = _json_object()
    try:
        proposer, timestamp = str(b["proposer"]), str(b["timestamp"])
        txs = tuple(str(t).encode("utf-8") for t in b["txs"])
    except (KeyError, TypeError) as exc:
        raise LedgerError(f"bad batch: {exc!r}", reason="malformed") from exc
    signature = BatchSignature.read(b.get("signature"))
    if signature is None:
        raise UnsignedBatch("the solo orderer appends only batches signed by a node member of the consortium")
    seq = b.get("seq")
    if type(seq) is not int:
        raise LedgerError("a signed batch names the sequence number it was signed for (seq)", reason="malformed")
    check_batch(node.consortium, seq=seq, proposer=proposer, timestamp=timestamp, txs=txs, signature=signature)
    try:
        when = parse_time(timestamp)
    except LedgerError:
        when = None  # the nodes skip a batch whose time is not ISO 8601, alike
    if when is not None and (when - node.clock()).total_seconds() > node.consortium.max_clock_skew_s:
        raise LedgerError(f"batch time {timestamp} is more than {node.consortium.max_clock_skew_s} s ahead of "
                          "the solo orderer's clock", reason="block_time_ahead")
    try:
        seq = solo.append_batch(Batch(seq=seq, proposer=proposer, timestamp=timestamp, txs=txs, signature=signature))
    except OrderConflict as exc:
        body = {"error": {"code": exc.reason, "message": exc.message}, "reason": exc.reason, "head": exc.head}
        return jsonify(body), _http_status(exc.reason)
    return jsonify({"seq": seq}), 200


def order_read(solo: SoloOrderer, node: Node) -> Response:
    after = _arg_int("after", -1)
    limit = min(_arg_int("limit", ORDER_READ_DEFAULT) or ORDER_READ_DEFAULT, ORDER_READ_MAX)
    batches: list[Batch] = solo.read(after if after is not None else -1, wait=_arg_float("wait", 0.0, ORDER_MAX_WAIT),
                                     limit=limit)
    return jsonify({"batches": [b.to_json() for b in batches]})


def batch_copies(node: Node) -> Response:
    """The batches this node kept with its newest blocks, numbered after ``after`` (a solo orderer that lost
    its log restores the order from its peers' copies too: ``Node._resume_order``)."""
    after = _arg_int("after", -1)
    limit = min(_arg_int("limit", ORDER_READ_DEFAULT) or ORDER_READ_DEFAULT, ORDER_READ_MAX)
    kept = node.batch_copies.after(after if after is not None else -1)
    return jsonify({"batches": [b.to_json() for b in kept[:limit]]})


def order_head(solo: SoloOrderer, node: Node) -> Response:
    return jsonify({"head": solo.head()})


View = Callable[..., Any]

#: (method, rule, view) of every route of a node; each view is called with the node first
ROUTES: list[tuple[str, str, View]] = [
    ("GET", "/status", status),
    ("POST", "/v1/transactions", submit),
    ("GET", "/v1/transactions/<tx_id>", tx),
    ("POST", "/v1/transactions/status", tx_statuses),
    ("POST", "/v1/query/<name>", query),
    ("GET", "/v1/final", final),
    ("GET", "/v1/blocks", blocks),
    ("GET", "/v1/blocks/<int:height>", block),
    ("GET", "/v1/blocks/<int:height>/signatures", block_sigs),
    ("POST", "/v1/signatures", signatures),
    ("POST", signature_streams.PATH, signature_stream),
    ("POST", "/v1/pool/forward", pool_forward),
    ("GET", "/v1/proofs/inclusion", inclusion),
    ("GET", "/v1/proofs/consistency", consistency),
    ("GET", "/v1/checkpoint", checkpoint),
    ("POST", "/v1/checkpoint/cosign", cosign),
    ("POST", "/v1/checkpoints", share_checkpoint),
    ("POST", "/v1/checkpoints/new", new_checkpoint),
    ("GET", "/v1/checkpoints/latest", latest_checkpoint),
    ("POST", "/v1/provenance", provenance),
    ("GET", "/v1/order/copies", batch_copies),
]

#: (method, rule, view) of the solo orderer's routes; each view is called with the solo orderer and the node first
SOLO_ROUTES: list[tuple[str, str, View]] = [
    ("POST", "/v1/order/append", order_append),
    ("GET", "/v1/order/read", order_read),
    ("GET", "/v1/order/head", order_head),
]


def create_app(node: Node, *, solo: SoloOrderer | None = None, tls: Tls | None = None) -> Flask:
    """The Flask app of one node; ``solo`` is set on the designated solo orderer; with ``tls`` every request's
    client certificate must map to a member allowed the route (:mod:`consortium_nodes.access`)."""
    app = Flask(f"node-{node.name}")
    access.install(app, tls, in_force=lambda: node.consortium)
    app.json = NodeJSONProvider(app)
    app.json.ensure_ascii = False
    for error, handler in ERROR_HANDLERS:
        app.register_error_handler(error, handler)
    table: list[tuple[str, str, View, tuple[Any, ...]]] = [(m, r, v, (node,)) for m, r, v in ROUTES]
    if solo is not None:
        table += [(m, r, v, (solo, node)) for m, r, v in SOLO_ROUTES]
    for method, rule, view, first in table:
        app.add_url_rule(rule, endpoint=view.__name__, view_func=functools.partial(view, *first), methods=[method])
    return app
