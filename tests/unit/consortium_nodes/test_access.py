"""Route access by the TLS peer's member (:mod:`consortium_nodes.access`) on a Flask test client: the
peer certificate is put in the environ as the node's TLS server does."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from flask import Flask

from consortium_nodes import access
from ledger import transport
from ledger.core.consortium import new_consortium
from ledger.core.crypto import PrivateKey
from ledger.store import certs

NOW = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    consortium, keys = new_consortium(nodes=4, name="access-city")
    return consortium, keys, certs.issue_consortium(consortium, keys, tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def setup(world):
    consortium, keys, files = world
    tls = transport.Tls.load(files["chengguan"], consortium)
    app = Flask("t")
    access.install(app, tls)
    app.add_url_rule("/status", endpoint="status", view_func=lambda: "ok")
    app.add_url_rule("/v1/signatures", endpoint="signatures", view_func=lambda: "ok", methods=["POST"])

    def der(name: str) -> bytes:
        cert, _ = certs.leaf(consortium.by_name(name), keys[name], now=NOW)
        return cert.public_bytes(serialization.Encoding.DER)

    return app.test_client(), der, consortium


def _call(client, method: str, path: str, der: bytes | None):
    env = {} if der is None else {access.PEER_CERT: der}
    return client.open(path, method=method, environ_overrides=env, headers={"Accept-Language": "en"})


def test_a_node_member_may_call_client_and_peer_routes(setup):
    client, der, _ = setup
    assert _call(client, "GET", "/status", der("zhujian")).status_code == 200
    assert _call(client, "POST", "/v1/signatures", der("zhujian")).status_code == 200


def test_the_gateway_may_read_but_not_call_peer_routes(setup):
    """The gateway reads status; the signature exchange is 403 ``tls_member_forbidden``."""
    client, der, _ = setup
    assert _call(client, "GET", "/status", der("gateway")).status_code == 200
    r = _call(client, "POST", "/v1/signatures", der("gateway"))
    assert r.status_code == 403 and r.json["reason"] == "tls_member_forbidden"
    assert r.json["error"]["message"] == "This consortium member may not call this node route"


def test_no_certificate_and_a_strangers_certificate_are_refused(setup):
    """Without a certificate: 401 ``tls_client_required``; one no member's key issued: 403
    ``tls_unknown_peer``."""
    client, _, consortium = setup
    r = _call(client, "GET", "/status", None)
    assert r.status_code == 401 and r.json["reason"] == "tls_client_required"
    gw = consortium.by_name("gateway")
    stranger = PrivateKey.generate()
    fake = type(gw)(name=gw.name, org=gw.org, roles=gw.roles, public_key=stranger.public_key)
    cert, _ = certs.leaf(fake, stranger, now=NOW)
    r = _call(client, "GET", "/status", cert.public_bytes(serialization.Encoding.DER))
    assert r.status_code == 403 and r.json["reason"] == "tls_unknown_peer"


def test_a_member_retired_by_vote_is_refused_though_its_certificate_verifies(world, setup):
    """With the membership in force given (a vote retired 生态环境), its genesis-issued certificate still maps
    to it, but every route answers 403 ``member_retired``; the members in force are let through."""
    consortium, _keys, files = world
    _client, der, _ = setup
    retired = consortium.amended(members=[m for m in consortium.members if m.name != "shengtai"])
    app = Flask("t2")
    tls = transport.Tls.load(files["chengguan"], consortium)
    access.install(app, tls, in_force=lambda: retired)
    app.add_url_rule("/status", endpoint="status", view_func=lambda: "ok")
    client = app.test_client()
    r = _call(client, "GET", "/status", der("shengtai"))
    assert r.status_code == 403 and r.json["reason"] == "member_retired"
    assert _call(client, "GET", "/status", der("zhujian")).status_code == 200
