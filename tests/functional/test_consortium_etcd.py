"""Real node processes ordered by a real 3-member etcd cluster on loopback: leader loss and compaction."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import datetime

import pytest
import requests

from consortium_nodes.etcd_orderer import EtcdOrderer
from ledger import transport
from tests.functional.tls_fixtures import HTTP, NODE_MEMBER
from tools.etcd_cluster import EtcdCluster
from tools.load import count_not_final, run_load
from tools.local_consortium import LocalConsortium

pytestmark = [
    pytest.mark.etcd,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("etcd") is None, reason="Debian's etcd-server is not installed"),
]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium-etcd")
    lc = LocalConsortium(root=root)
    lc.up(nodes=4, ordering="etcd", state_machine="null", base_port=0)
    lc.mount(HTTP, NODE_MEMBER)
    yield lc
    lc.down()


def _agree(lc: LocalConsortium, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        st = lc.status()
        if len({s.get("head") for s in st}) == 1 and all(s.get("final_height") == s.get("height") for s in st):
            return st
        if time.monotonic() > deadline:
            return st
        time.sleep(0.3)


def test_nodes_report_etcd_ordering(local):
    """Every node's /status names its ordering engine."""
    assert {s["ordering"] for s in local.status()} == {"etcd"}


def test_batches_written_to_etcd_without_a_node_signature_are_skipped_by_every_node(local):
    """Whoever can write to etcd is not trusted either: a batch put into the order without a signature, one
    signed by the gateway member and one dated 2099 under a node's name but signed by a key the consortium
    does not hold each become the same empty block on all four nodes (``skipped_batches`` with reasons
    ``unsigned_batch``, ``forbidden``, ``unknown_signer``), nothing is clamped to 2099, and a transaction
    submitted afterwards becomes final on every node."""
    from ledger.core.batch import batch_signer
    from ledger.core.crypto import PrivateKey
    from ledger.core.encoding import CHINA_TZ, iso
    from ledger.store.keyfiles import read_private_key
    from ledger.testing import make_tx

    desc = local.describe()
    gateway = read_private_key(desc["gateway_key"])
    orderer = EtcdOrderer(endpoints=desc["etcd"]["endpoints"], prefix=desc["etcd"]["prefix"],
                          tls=local.tls(NODE_MEMBER))
    now = iso(datetime.now(CHINA_TZ))
    future = "2099-01-01T00:00:00+08:00"
    try:
        first = orderer.append(proposer="x", timestamp=now, txs=[])
        orderer.append(proposer="gateway", timestamp=now, txs=[],
                       sign=batch_signer(gateway, proposer="gateway", timestamp=now, txs=[]))
        last = orderer.append(proposer="chengguan", timestamp=future, txs=[],
                              sign=batch_signer(PrivateKey.generate(), proposer="chengguan", timestamp=future, txs=[]))
    finally:
        orderer.close()
    tx = make_tx(gateway, 7001)
    url = desc["nodes"][1]["url"]
    d = HTTP.post(url + "/v1/transactions", json=tx.to_dict(), params={"wait": 20}, timeout=30).json()
    assert d["status"] == "final" and d["height"] > last, d
    st = _agree(local)
    assert len({s["head"] for s in st}) == 1
    for n in desc["nodes"]:
        status = HTTP.get(n["url"] + "/status", timeout=5).json()
        assert status["skipped_batches"]["count"] >= 3 and status["fault"] is None
        blocks = [HTTP.get(n["url"] + f"/v1/blocks/{h}", timeout=5).json() for h in range(first, last + 1)]
        assert all(b["transactions"] == [] for b in blocks)
        assert not any(b["header"]["timestamp"].startswith("2099") for b in blocks)
    assert status["skipped_batches"]["last"]["reason"] == "unknown_signer"


def test_etcd_refuses_a_client_without_a_node_members_certificate(local):
    """etcd serves only TLS with client certificates of the consortium's node members: no certificate, the
    gateway's certificate (a member, not a node) and plain HTTP get no answer; a node member's may read."""
    desc = local.describe()
    endpoint = desc["etcd"]["endpoints"][0]
    assert endpoint.startswith("https://")
    body = {"key": "L211Y2s="}  # "/muck"
    gateway = local.tls("gateway")
    assert gateway is not None
    anonymous = requests.Session()
    anonymous.verify = False
    for s in (anonymous, transport.session(gateway)):
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            s.post(endpoint + "/v3/kv/range", json=body, timeout=5)
    try:
        r = requests.post(endpoint.replace("https://", "http://") + "/v3/kv/range", json=body, timeout=5)
        assert r.status_code == 400, r.text
    except requests.exceptions.ConnectionError:
        pass
    node = transport.session(local.tls(NODE_MEMBER))
    assert node.post(endpoint + "/v3/kv/range", json=body, timeout=5).status_code == 200


def test_one_node_proposes_and_the_others_hand_it_their_batches(local):
    """Under load spread over all four nodes, the holder of the proposer lease orders their transactions: exactly
    one node leads, the others name it in /status and hand it batches (each handed transaction taken once), and
    every accepted transaction is final exactly once."""
    before = _agree(local)
    result = run_load(local.desc_path, seconds=4, rate=150, batch=10, wait_final=False)
    urls = [n["url"] for n in local.describe()["nodes"]]
    assert count_not_final(urls, result["accepted_ids"], timeout=60, http=HTTP) == 0
    st = _agree(local)
    props = {s["node"]: s["proposer"] for s in st}
    leaders = [name for name, p in props.items() if p["leading"]]
    assert len(leaders) == 1, props
    assert all(p["proposer"] == leaders[0] for p in props.values()), props
    others = [p for name, p in props.items() if name != leaders[0]]
    assert all(p["handed"] > 0 for p in others), props
    assert sum(p["taken"] for p in props.values()) == sum(p["handed"] for p in props.values())
    assert {s["transactions"] for s in st} == {before[0]["transactions"] + len(set(result["accepted_ids"]))}


def test_etcd_leader_killed_under_load_nothing_lost_or_duplicated(local):
    """Killing the etcd leader under load: ordering resumes after the election, every accepted transaction is
    final exactly once, and all nodes agree on the head."""
    desc = local.describe()
    cluster = EtcdCluster.attach(data_dir=desc["etcd"]["dir"])
    before = local.status()[0]["transactions"]
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(run_load(local.desc_path, seconds=7, rate=120, batch=12,
                                                               wait_final=False)))
    t.start()
    time.sleep(2.0)
    leader = cluster.leader()
    cluster.kill(leader)
    t.join(timeout=90)
    assert result["accepted"] > 400
    urls = [n["url"] for n in desc["nodes"]]
    assert count_not_final(urls, result["accepted_ids"], timeout=60, http=HTTP) == 0
    st = _agree(local)
    assert len({s["head"] for s in st}) == 1
    # Exactly once: the chain grew by exactly the number of distinct accepted transactions.
    assert {s["transactions"] for s in st} == {before + len(set(result["accepted_ids"]))}
    new_leader = cluster.leader()
    assert new_leader != leader
    cluster.restart(leader)


def test_node_behind_compacted_etcd_catches_up_from_peers(local):
    """A node that was down while etcd forgot the batches it misses fetches certified blocks from its peers,
    re-executes them to the same headers and reaches the same head."""
    desc = local.describe()
    local.stop("jiaotong", kill=True)
    result = run_load(local.desc_path, seconds=3, rate=100, batch=10)
    assert result["lost"] == 0
    head = max(s.get("height", -1) for s in local.status() if not s.get("down"))
    orderer = EtcdOrderer(endpoints=desc["etcd"]["endpoints"], prefix=desc["etcd"]["prefix"],
                          tls=local.tls(NODE_MEMBER))
    try:
        orderer.forget(head)
    finally:
        orderer.close()
    local.start("jiaotong")
    st = _agree(local)
    assert len({s["head"] for s in st}) == 1, st
    url = next(n["url"] for n in desc["nodes"] if n["name"] == "jiaotong")
    assert count_not_final([url], result["accepted_ids"], http=HTTP) == 0
    assert HTTP.get(url + "/status", timeout=5).json()["fault"] is None
