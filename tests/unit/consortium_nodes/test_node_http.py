"""The node's HTTP routes as a flat table, over a Flask test client of a node wired in memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from node_fakes import Cluster, signed_body

from consortium_nodes.http import create_app
from consortium_nodes.ordering import SoloOrderer
from ledger.testing import make_tx

NODE_RULES = {
    ("GET", "/status"), ("POST", "/v1/transactions"), ("GET", "/v1/transactions/<tx_id>"),
    ("POST", "/v1/transactions/status"), ("POST", "/v1/query/<name>"), ("GET", "/v1/final"), ("GET", "/v1/blocks"),
    ("GET", "/v1/blocks/<int:height>"), ("GET", "/v1/blocks/<int:height>/signatures"), ("POST", "/v1/signatures"),
    ("POST", "/v1/signatures/stream"), ("POST", "/v1/pool/forward"),
    ("GET", "/v1/proofs/inclusion"), ("GET", "/v1/proofs/consistency"), ("GET", "/v1/checkpoint"),
    ("POST", "/v1/checkpoint/cosign"), ("POST", "/v1/checkpoints"), ("POST", "/v1/checkpoints/new"),
    ("GET", "/v1/checkpoints/latest"), ("POST", "/v1/provenance"), ("GET", "/v1/order/copies"),
}
SOLO_RULES = {("POST", "/v1/order/append"), ("GET", "/v1/order/read"), ("GET", "/v1/order/head")}


def _rules(app) -> set[tuple[str, str]]:
    return {(m, r.rule) for r in app.url_map.iter_rules() if r.endpoint != "static"
            for m in r.methods - {"HEAD", "OPTIONS"}}


def test_every_route_is_registered_and_solo_routes_only_on_the_solo_orderer(cluster: Cluster, tmp_path) -> None:
    """The app serves exactly the node's routes, plus the solo orderer's three when it is the solo orderer."""
    node = cluster.add(cluster.names[0])
    assert _rules(create_app(node)) == NODE_RULES
    solo = SoloOrderer(url=f"sqlite:///{tmp_path / 'orderer.db'}")
    try:
        assert _rules(create_app(node, solo=solo)) == NODE_RULES | SOLO_RULES
    finally:
        solo.close()


def test_errors_keep_their_json_shapes_and_statuses(cluster: Cluster) -> None:
    """A refused request answers ``{"error": {"code", "message"}, "reason"}`` with the reason's status; an
    unknown path 404 not_found; a wrong method 405 without a reason; a rejected transaction its reason's status
    (a bad signature: 403, as at the API)."""
    client = create_app(cluster.add(cluster.names[0])).test_client()
    r = client.post("/v1/transactions", data="not json", content_type="application/json")
    assert r.status_code == 400 and r.json["reason"] == "malformed" and r.json["error"]["code"] == "malformed"
    r = client.get("/nope")
    assert r.status_code == 404 and r.json == {"error": {"code": "not_found", "message": "no such resource"},
                                               "reason": "not_found"}
    r = client.post("/status")
    assert r.status_code == 405 and r.json == {"error": {"code": "method_not_allowed",
                                                         "message": "method not allowed"}}
    r = client.get("/v1/blocks/7")
    assert r.status_code == 404 and r.json["reason"] == "not_found"
    tx = make_tx(cluster.t.gateway, 1).to_dict()
    tx["signature"]["value"] = "AAAA"
    r = client.post("/v1/transactions", json=tx)
    assert r.status_code == 403 and r.json["status"] == "rejected" and r.json["reason"] == "bad_signature"


def test_submit_then_status_over_http(cluster: Cluster) -> None:
    """A transaction posted to the node is accepted (202) and ``/status`` shows it pooled, with the count
    of skipped batches."""
    client = create_app(cluster.add(cluster.names[0])).test_client()
    tx = make_tx(cluster.t.gateway, 2)
    r = client.post("/v1/transactions", json=tx.to_dict())
    assert r.status_code == 202 and r.json == {"tx_id": tx.tx_id, "status": "accepted"}
    st = client.get("/status").json
    assert st["pool"] == 1 and st["height"] == -1 and st["skipped_batches"] == {"count": 0, "last": None}
    assert client.get(f"/v1/transactions/{tx.tx_id}").json["status"] == "pending"


def test_final_height_answers_at_once_or_after_waiting(cluster: Cluster) -> None:
    """``/v1/final`` answers the final height; asked for a height after it with ``wait``, it answers
    the same height once the wait ran out (nothing became final); a bad ``after`` is 400 malformed."""
    client = create_app(cluster.add(cluster.names[0])).test_client()
    assert client.get("/v1/final").json == {"final_height": -1}
    assert client.get("/v1/final", query_string={"after": -1, "wait": 0.05}).json == {"final_height": -1}
    r = client.get("/v1/final", query_string={"after": "x"})
    assert r.status_code == 400 and r.json["reason"] == "malformed"


def test_solo_orderer_routes_append_read_and_refuse_a_bad_batch(cluster: Cluster, tmp_path) -> None:
    """On the solo orderer the app appends batches (consecutive seqs), reads them after a seq, answers the
    head, and refuses a batch without its fields with 400 malformed (a bad timestamp is the nodes' to skip)."""
    solo = SoloOrderer(url=f"sqlite:///{tmp_path / 'orderer.db'}")
    try:
        a = cluster.names[0]
        client = create_app(cluster.add(a), solo=solo).test_client()
        key = cluster.t.keys[a]
        assert client.get("/v1/order/head").json == {"head": -1}
        assert client.post("/v1/order/append", json=signed_body(key, proposer=a, seq=0, timestamp="t",
                                                                txs=["{}"])).json == {
            "seq": 0}
        assert client.post("/v1/order/append", json=signed_body(key, proposer=a, seq=1, timestamp="not-a-time",
                                                                txs=[])).json == {
            "seq": 1}
        r = client.post("/v1/order/append", json={"proposer": "a"})
        assert r.status_code == 400 and r.json["reason"] == "malformed"
        batches = client.get("/v1/order/read", query_string={"after": 0}).json["batches"]
        assert [json.loads(b)["seq"] for b in batches] == [1]
        assert client.get("/v1/order/head").json == {"head": 1}
    finally:
        solo.close()


HOSTILE_BODIES = [
    b"[" * 100_000,  # RecursionError in the decoder: 500 and a traceback per request before
    b'{"kind": "\\ud800", "key": "x", "tx_ids": ["\\ud800"], "txs": ["\\ud800"]}',  # a lone surrogate
    b'{"n": ' + b"9" * 5000 + b"}",  # a bare ValueError from int()
    b"\xff\xfe not utf-8",
]
NODE_JSON_ROUTES = ["/v1/transactions", "/v1/transactions/status", "/v1/query/ticket", "/v1/signatures",
                    "/v1/checkpoint/cosign", "/v1/provenance", "/v1/order/append"]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
@pytest.mark.parametrize("path", NODE_JSON_ROUTES)
def test_hostile_bodies_are_refused_never_a_500(cluster: Cluster, path: str, body: bytes, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """Bodies nested 100,000 deep, with lone surrogates, with an integer of 5,000 digits or not UTF-8 are
    refused with a 4xx and the usual error JSON on every route that reads JSON, anonymous callers included;
    nothing is logged as an internal error."""
    import logging

    node = cluster.add(cluster.names[0])
    client = create_app(node, solo=SoloOrderer(url=f"sqlite:///{tmp_path / 'orderer.db'}")).test_client()
    with caplog.at_level(logging.ERROR):
        r = client.post(path, data=body, content_type="application/json")
    assert 400 <= r.status_code < 500, (path, r.status_code, r.data[:200])
    assert r.json is not None and r.json.get("reason") and "internal" not in r.json["reason"]
    assert "internal error" not in caplog.text and "Traceback" not in caplog.text
