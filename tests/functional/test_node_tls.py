"""Mutual TLS on real node processes: nothing is readable anonymously or over plain HTTP, a certificate no
member's key issued is refused, the gateway cannot call the node-only peer routes, a client accepts only the
node it expects, and a node refuses to listen off loopback without TLS."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from ledger import transport
from ledger.core.consortium import Member, new_consortium
from ledger.core.crypto import PrivateKey
from ledger.store import certs
from tools.local_consortium import LocalConsortium
from tools.proc import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    lc = LocalConsortium(root=tmp_path_factory.mktemp("tls"))
    lc.up(nodes=4, ordering="solo", state_machine="null", base_port=0)
    yield lc
    lc.down()


def _url(lc: LocalConsortium, name: str) -> str:
    return next(n["url"] for n in lc.describe()["nodes"] if n["name"] == name)


def _refused(call) -> None:
    """The call fails at the TLS handshake (or the connection is dropped): no answer at all."""
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        call()


def test_nodes_listen_on_https_only(local):
    """Every node of the default local consortium is an ``https://`` URL."""
    assert all(n["url"].startswith("https://127.0.0.1:") for n in local.describe()["nodes"])


def test_an_anonymous_query_to_a_node_is_refused(local):
    """A client without a certificate gets no answer from a node: not its status, a query or its blocks."""
    url = _url(local, "zhujian")
    anon = requests.Session()
    anon.verify = False
    _refused(lambda: anon.post(url + "/v1/query/ticket", json={"ticket_id": "x"}, timeout=5))
    _refused(lambda: anon.get(url + "/v1/blocks", timeout=5))
    _refused(lambda: anon.get(url + "/status", timeout=5))


def test_a_plain_http_connection_to_a_node_fails(local):
    """Plain HTTP on a node's port reads nothing: no status, no genesis hash, no transaction."""
    url = _url(local, "zhujian").replace("https://", "http://")
    try:
        r = requests.get(url + "/status", timeout=5)
    except requests.exceptions.ConnectionError:
        return
    assert r.status_code == 400
    assert "genesis" not in r.text


def _stranger_files(tmp: Path, member: Member, key: PrivateKey) -> tuple[str, str]:
    """A leaf certificate issued under ``key`` for ``member`` (who need not be in our consortium)."""
    cert, tls_key = certs.leaf(member, key, now=dt.datetime.now(dt.UTC))
    crt, k = certs.write_leaf(tmp / "stranger", cert, tls_key)
    return str(crt), str(k)


def test_a_client_certificate_of_no_member_is_refused(local, tmp_path):
    """A certificate issued under a key the consortium does not hold (another consortium's gateway) fails the
    handshake on every route."""
    other, keys = new_consortium(nodes=4, name="other-city")
    cert = _stranger_files(tmp_path, other.by_name("gateway"), keys["gateway"])
    s = requests.Session()
    s.verify, s.cert = False, cert
    url = _url(local, "jiaotong")
    _refused(lambda: s.get(url + "/status", timeout=5))
    _refused(lambda: s.post(url + "/v1/query/ticket", json={"ticket_id": "x"}, timeout=5))


def test_a_certificate_claiming_a_member_but_signed_by_another_key_is_refused(local, tmp_path):
    """A leaf naming our gateway member but signed by a stranger's key is not the gateway."""
    gateway = local.consortium().by_name("gateway")
    stranger_key = PrivateKey.generate()
    fake = Member(name=gateway.name, org=gateway.org, roles=gateway.roles, public_key=stranger_key.public_key)
    cert = _stranger_files(tmp_path, fake, stranger_key)
    s = requests.Session()
    s.verify, s.cert = False, cert
    _refused(lambda: s.get(_url(local, "jiaotong") + "/status", timeout=5))


def test_the_gateway_reads_and_submits_but_cannot_call_the_peer_routes(local):
    """With the gateway's certificate: status and blocks answer; signature exchange, co-signing and the
    solo orderer's routes are 403 ``tls_member_forbidden``; a node member may call them."""
    gw = local.session("gateway")
    leader, other = _url(local, "chengguan"), _url(local, "zhujian")
    assert gw.get(other + "/status", timeout=5).status_code == 200
    assert gw.get(other + "/v1/blocks", timeout=5).status_code == 200
    for method, url, path in [("POST", other, "/v1/signatures"), ("POST", other, "/v1/signatures/stream"),
                              ("GET", other, "/v1/blocks/0/signatures"),
                              ("POST", other, "/v1/checkpoint/cosign"), ("POST", other, "/v1/checkpoints"),
                              ("GET", leader, "/v1/order/head"), ("GET", leader, "/v1/order/read"),
                              ("POST", leader, "/v1/order/append")]:
        r = gw.request(method, url + path, json={}, timeout=5, headers={"Accept-Language": "en"})
        assert r.status_code == 403, path
        assert r.json()["reason"] == "tls_member_forbidden", path
    node = local.session("jiaotong")
    assert node.get(leader + "/v1/order/head", timeout=5).status_code == 200


def test_a_client_accepts_only_the_node_it_expects(local):
    """A session that expects member zhujian refuses the server on chengguan's port: the server's
    certificate is not issued under zhujian's key."""
    tls = local.tls("gateway")
    assert tls is not None
    s = transport.session(tls, expect="zhujian")
    assert s.get(_url(local, "zhujian") + "/status", timeout=5).status_code == 200
    with pytest.raises(requests.exceptions.SSLError) as info:
        s.get(_url(local, "chengguan") + "/status", timeout=5)
    assert transport.cert_rejected(info.value)


def test_a_node_refuses_a_non_loopback_address_without_tls(local, tmp_path):
    """A node configured for 0.0.0.0 without a ``tls`` section exits 2 at once with one line naming
    ``tls_required``."""
    desc = local.describe()
    cfg = json.loads(Path(desc["nodes"][1]["config"]).read_text(encoding="utf-8"))
    cfg.pop("tls")
    cfg.update(host="0.0.0.0", port=free_port(), db=f"sqlite:///{tmp_path / 'ledger.db'}", data_dir=str(tmp_path))
    path = tmp_path / "node.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "consortium_nodes", "run", "--config", str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "[tls_required]" in lines[0], out.stderr
    assert not (tmp_path / "ledger.db").exists()


def test_a_node_keeps_many_client_connections_alive(local):
    """A node keeps each of 24 TLS client connections alive across requests (more than cheroot's default
    of 10 idle keep-alive connections, which made it answer ``Connection: close`` and every later request
    pay a new handshake): no answer says close, and each connection's second request goes over the same
    socket."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(_url(local, "zhujian"))
    tls = local.tls("gateway")
    assert tls is not None
    ctx = tls.client_context("zhujian")
    conns = [http.client.HTTPSConnection(u.hostname or "127.0.0.1", u.port, timeout=10, context=ctx)
             for _ in range(24)]
    try:
        socks = []
        for c in conns:
            c.request("GET", "/status")
            r = c.getresponse()
            r.read()
            assert r.status == 200 and not r.will_close, r.getheader("Connection")
            socks.append(c.sock)
        for c, sock in zip(conns, socks, strict=True):
            c.request("GET", "/status")
            r = c.getresponse()
            r.read()
            assert r.status == 200 and c.sock is sock
    finally:
        for c in conns:
            c.close()


def test_signatures_travel_on_one_stream_per_peer(local):
    """Every node sends its header signatures to each peer as frames of one long-lived stream, not one request
    per block: after a short load every node's ``/status`` shows, for each of its three peers, an open stream
    that was opened once and carried the signatures of every block since (a frame holds what was queued for
    the peer when it was sent: one block's signature or several), and the blocks are final."""
    from tools.load import run_load

    r = run_load(local.desc_path, seconds=2, rate=100, batch=10)
    assert r["accepted"] > 0 and r["lost"] == 0
    statuses = local.status()
    assert len({s["head"] for s in statuses}) == 1
    for s in statuses:
        streams = s["signature_streams"]
        assert sorted(streams) == sorted(n["node"] for n in statuses if n["node"] != s["node"]), s["node"]
        for peer, st in streams.items():
            assert st["open"] and st["opened"] == 1 and st["ended"] == 0, (s["node"], peer, st)
            assert 2 <= st["frames"] <= s["height"] + 1, (s["node"], peer, st)  # blocks 0 … height, ≥ 1 a frame
        assert s["final_height"] == s["height"]


def test_a_malformed_signature_stream_is_refused_and_the_node_goes_on(local):
    """A node member's stream whose frame is not 8 hex digits and a body is answered 400 ``malformed``
    (what came before it was read: a frame of bogus signatures counts 0 accepted); the node stays ready."""
    import http.client
    from urllib.parse import urlsplit

    from consortium_nodes.signature_stream import LAST_CHUNK, chunk, encode_message, frame

    u = urlsplit(_url(local, "zhujian"))
    tls = local.tls("jiaotong")
    assert tls is not None
    conn = http.client.HTTPSConnection(u.hostname or "127.0.0.1", u.port, timeout=10,
                                       context=tls.client_context("zhujian"))
    try:
        conn.putrequest("POST", "/v1/signatures/stream")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.putheader("Accept-Language", "en")
        conn.endheaders()
        bogus = {"height": 0, "header_hash": "00" * 32, "key_id": "0" * 16, "alg": "ed25519", "value": "AA=="}
        conn.send(chunk(frame(encode_message("jiaotong", [bogus]))))
        conn.send(chunk(b"not-hex!{}") + LAST_CHUNK)
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 400 and body["reason"] == "malformed", body
    status = local.session("gateway").get(_url(local, "zhujian") + "/status", timeout=5).json()
    assert status["ready"] and status["fault"] is None
