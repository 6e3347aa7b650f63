"""The node's HTTP interface for clients and peers (JSON over HTTP/1.1)."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request

from consortium_nodes.node import Node
from consortium_nodes.ordering import Batch
from consortium_nodes.solo import SoloOrderer
from ledger.core import checkpoint as cp
from ledger.errors import LedgerError, ProofError
from ledger.reasons import status_of


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


def create_app(node: Node, *, solo: SoloOrderer | None = None) -> Flask:
    """The Flask app of one node; ``solo`` is set on the designated solo orderer."""
    app = Flask(f"node-{node.name}")
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    @app.errorhandler(LedgerError)
    def _ledger_error(exc: LedgerError) -> tuple[Response, int]:
        return jsonify({"error": {"code": exc.reason, "message": exc.message}, "reason": exc.reason}), status_of(
            exc.reason
        )

    @app.errorhandler(404)
    def _nf(_exc: Any) -> tuple[Response, int]:
        return jsonify({"error": {"code": "not_found", "message": "no such resource"}, "reason": "not_found"}), 404

    @app.errorhandler(405)
    def _na(_exc: Any) -> tuple[Response, int]:
        return jsonify({"error": {"code": "method_not_allowed", "message": "method not allowed"}}), 405

    @app.errorhandler(Exception)
    def _internal(exc: Exception) -> tuple[Response, int]:
        app.logger.exception("internal error")
        return jsonify({"error": {"code": "internal", "message": "internal error"}, "reason": "internal"}), 500

    @app.get("/status")
    def status() -> Response:
        """Height, head, final height, ``certificate`` of the newest final block (``height``, ``header_hash``,
        ``signers``: member names, ``quorum``, ``nodes``; null before the first), log, pool, divergences, fault."""
        return jsonify(node.status(digest=request.args.get("digest") == "1"))

    @app.post("/v1/transactions")
    def submit() -> tuple[Response, int]:
        body = request.get_json(silent=True)
        if body is None:
            raise LedgerError("request body must be JSON", reason="malformed")
        single = isinstance(body, dict) and "transactions" not in body
        items = [body] if single else body.get("transactions") if isinstance(body, dict) else body
        if not isinstance(items, list) or len(items) > 5000:
            raise LedgerError("transactions must be a list of at most 5000", reason="malformed")
        results = node.submit(items)
        if not single:
            return jsonify({"results": [r.to_dict() for r in results]}), 200
        r = results[0]
        if r.status == "rejected":
            return jsonify({**r.to_dict(), "error": {"code": r.reason, "message": r.message}}), status_of(
                r.reason or ""
            )
        wait = _arg_float("wait", 0.0, 30.0)
        if wait > 0 and r.tx_id:
            st = node.tx_status(r.tx_id, wait=wait)
            return jsonify(st), 200 if st["status"] == "final" else 202
        return jsonify(r.to_dict()), 202

    @app.get("/v1/transactions/<tx_id>")
    def tx(tx_id: str) -> tuple[Response, int]:
        st = node.tx_status(tx_id, wait=_arg_float("wait", 0.0, 30.0), with_tx=True)
        if st["status"] == "unknown":
            return jsonify({**st, "reason": "not_found"}), 404
        return jsonify(st), 200

    @app.post("/v1/transactions/status")
    def tx_statuses() -> Response:
        """Bulk status: final, committed or unknown for up to 5000 tx ids (with ``detail``: code, height)."""
        body = request.get_json(silent=True) or {}
        ids = body.get("tx_ids", []) if isinstance(body, dict) else []
        if not isinstance(ids, list) or len(ids) > 5000:
            raise LedgerError("tx_ids must be a list of at most 5000", reason="malformed")
        if isinstance(body, dict) and body.get("detail"):  # each {"status", "code", "height"}
            return jsonify({"statuses": node.status_details([str(i) for i in ids])})
        return jsonify({"statuses": node.statuses([str(i) for i in ids])})

    @app.post("/v1/query/<name>")
    def query(name: str) -> Response:
        """Read-only state queries with JSON keyword arguments, e.g. POST /v1/query/ticket {"ticket_id": ...}."""
        body = request.get_json(silent=True)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise LedgerError("query arguments must be a JSON object", reason="malformed")
        return jsonify({"result": node.query(name, body), "height": node.store.height,
                        "final_height": node.final_height})

    @app.get("/v1/blocks")
    def blocks() -> Response:
        start = _arg_int("start", 0) or 0
        limit = min(_arg_int("limit", 20) or 20, 100)
        return jsonify({"blocks": [b.to_dict() for b in node.store.blocks(start, start + limit)]})

    @app.get("/v1/blocks/<int:height>")
    def block(height: int) -> Response:
        b = node.store.block(height)
        if b is None:
            raise LedgerError(f"no block {height}", reason="not_found")
        return jsonify(b.to_dict())

    @app.get("/v1/blocks/<int:height>/signatures")
    def block_sigs(height: int) -> Response:
        h = node.store.header(height)
        if h is None:
            raise LedgerError(f"no block {height}", reason="not_found")
        return jsonify({"height": height, "header_hash": h.hash,
                        "signatures": [s.to_dict() for s in node.store.signatures(height)]})

    @app.post("/v1/signatures")
    def signatures() -> Response:
        body = request.get_json(silent=True) or {}
        items = body.get("signatures", []) if isinstance(body, dict) else []
        return jsonify({"accepted": node.receive_signatures(items if isinstance(items, list) else [])})

    @app.get("/v1/proofs/inclusion")
    def inclusion() -> Response:
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

    @app.get("/v1/proofs/consistency")
    def consistency() -> Response:
        log = node.store.log()
        old = _arg_int("old", 0) or 0
        new = _arg_int("new", log.size) or log.size
        return jsonify({"old_size": old, "new_size": new, "old_root": log.root(old).hex(),
                        "new_root": log.root(new).hex(), "hashes": [h.hex() for h in log.consistency(old, new)]})

    @app.get("/v1/checkpoint")
    def checkpoint() -> Response:
        """A checkpoint of the log at the newest final block, signed by this node."""
        header = node.store.header(node.final_height) if node.final_height >= 0 else None
        size = 0 if header is None else header.log_size
        log = node.store.log()
        note = cp.sign(cp.Checkpoint(node.consortium.origin, size, log.root(size)), [(node.name, node.key)])
        return jsonify({"size": size, "root": log.root(size).hex(), "note": note})

    @app.post("/v1/checkpoint/cosign")
    def cosign() -> Response:
        """Witness a checkpoint: co-sign it only if it matches this node's own log."""
        body = request.get_json(silent=True) or {}
        note = body.get("note") if isinstance(body, dict) else None
        if not isinstance(note, str):
            raise LedgerError("note is required", reason="malformed")
        return jsonify({"note": node.cosign_checkpoint(note)})

    @app.post("/v1/checkpoints")
    def share_checkpoint() -> Response:
        body = request.get_json(silent=True) or {}
        note = body.get("note") if isinstance(body, dict) else None
        if not isinstance(note, str):
            raise LedgerError("note is required", reason="malformed")
        return jsonify({"stored": node.accept_checkpoint(note)})

    @app.post("/v1/checkpoints/new")
    def new_checkpoint() -> Response:
        """Coordinate a checkpoint co-signed by a quorum of the nodes, now."""
        return jsonify({"note": node.make_checkpoint()})

    @app.get("/v1/checkpoints/latest")
    def latest_checkpoint() -> Response:
        note = node.latest_checkpoint()
        if note is None:
            raise LedgerError("no co-signed checkpoint yet", reason="not_found")
        return jsonify({"note": note})

    @app.post("/v1/provenance")
    def provenance() -> Response:
        body = request.get_json(silent=True) or {}
        if not isinstance(body, dict) or not isinstance(body.get("kind"), str) or not isinstance(body.get("key"), str):
            raise LedgerError("kind and key are required", reason="malformed")
        return jsonify(node.provenance(body["kind"], body["key"]))

    if solo is not None:
        @app.post("/v1/order/append")
        def order_append() -> Response:
            b = request.get_json(silent=True) or {}
            try:
                seq = solo.append(proposer=str(b["proposer"]), timestamp=str(b["timestamp"]),
                                  txs=[str(t).encode("utf-8") for t in b["txs"]])
            except (KeyError, TypeError) as exc:
                raise LedgerError(f"bad batch: {exc!r}", reason="malformed") from exc
            return jsonify({"seq": seq})

        @app.get("/v1/order/read")
        def order_read() -> Response:
            after = _arg_int("after", -1)
            batches: list[Batch] = solo.read(after if after is not None else -1,
                                             wait=_arg_float("wait", 0.0, 5.0),
                                             limit=min(_arg_int("limit", 64) or 64, 256))
            return jsonify({"batches": [b.to_json() for b in batches]})

        @app.get("/v1/order/head")
        def order_head() -> Response:
            return jsonify({"head": solo.head()})

    return app
