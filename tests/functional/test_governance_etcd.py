"""A node added by vote under etcd ordering and mutual TLS, with real node and etcd processes: etcd reads its trusted
CA bundle only when it starts (etcd-io/etcd#11555), so the join puts the new member's CA in the bundle and restarts
the etcd members one at a time; ordering never stops meanwhile, and the new node orders through etcd, co-signs and
counts toward the quorum."""

from __future__ import annotations

import itertools
import json
import shutil
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests

from consortium_nodes.audit import audit_consortium
from consortium_nodes.etcd_orderer import EtcdOrderer
from ledger.core.card import make_card
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.core.governance import PROPOSE, VOTE
from ledger.core.validity import Validity
from ledger.store.keyfiles import write_private_key
from ledger.testing import make_tx
from tests.functional.test_governance import NODES, _final, _gov, _iso, _key, _signed_by, _status, _until
from tests.functional.tls_fixtures import HTTP, NODE_MEMBER
from tools.etcd_cluster import EtcdCluster
from tools.load import count_not_final
from tools.local_consortium import LocalConsortium, desc_session

pytestmark = [
    pytest.mark.etcd,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("etcd") is None, reason="Debian's etcd-server is not installed"),
]


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    """Four nodes ordered by a 3-member etcd cluster, mutual TLS everywhere: etcd trusts the founding node members'
    CAs only, for a fifth to join."""
    lc = LocalConsortium(root=tmp_path_factory.mktemp("governance-etcd"))
    lc.up(nodes=4, ordering="etcd", state_machine="null")
    lc.mount(HTTP, NODE_MEMBER)
    yield lc
    lc.down()


class Submitter:
    """A client submitting transactions to the founders' nodes, one at a time round-robin, until stopped; the ids
    the nodes accepted."""

    def __init__(self, lc: LocalConsortium) -> None:
        desc = lc.describe()
        self.http = desc_session(desc, "gateway")
        self.urls = [n["url"] for n in desc["nodes"]]
        self.key = _key(lc, "gateway")
        self.accepted: list[str] = []
        self.refused: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="submitter", daemon=True)

    def _run(self) -> None:
        urls = itertools.cycle(self.urls)
        for i in itertools.count(1000):
            if self.stop.is_set():
                return
            tx = make_tx(self.key, i)
            try:
                r = self.http.post(next(urls) + "/v1/transactions", json={"transactions": [tx.to_dict()]}, timeout=10)
                status = r.json()["results"][0]["status"]
            except (requests.RequestException, ValueError, KeyError):
                continue  # not answered: not accepted, the client tries the next node with the next transaction
            (self.accepted if status in ("accepted", "known") else self.refused).append(f"{tx.tx_id} {status}")

    def ids(self) -> list[str]:
        return [a.split()[0] for a in self.accepted]


def test_a_node_added_by_vote_under_etcd_and_tls_orders_cosigns_and_counts_toward_the_quorum(
        joined: LocalConsortium, tmp_path: Path) -> None:
    """A fifth department's node is voted in under etcd ordering and mutual TLS.  Joining it puts its member CA in
    etcd's trusted bundle and restarts every etcd member once (each a new process), while a client keeps
    submitting transactions to the founders' nodes: every one accepted becomes final, and no founder's node is left
    with a fault.  etcd then answers the new member's certificate; its node catches up, a transaction submitted to
    it (which it orders through etcd itself) becomes final, it co-signs, and with one founder's node stopped a
    transaction still becomes final, which four signatures of five need: the new node's counts."""
    gateway = _key(joined, "gateway")
    _final(joined, make_tx(gateway, 10))
    k = PrivateKey.generate()
    now = datetime.now(CHINA_TZ)
    card = make_card(k, name="shuiwu", org="水务局", roles=("node", "approver"),
                     validity=Validity(not_before=_iso(now - timedelta(days=1)),
                                       not_after=_iso(now + timedelta(days=365))))
    key_file = tmp_path / "shuiwu.pem"
    write_private_key(k, key_file)
    proposal = {"proposal_id": "add-shuiwu", "action": "add_member", "card": card.to_dict()}
    assert _final(joined, _gov(_key(joined, "chengguan"), PROPOSE, proposal))["code"] == "valid"
    for voter in ("zhujian", "jiaotong"):
        decided = _final(joined, _gov(_key(joined, voter), VOTE, {"proposal_id": "add-shuiwu", "approve": True}))
        assert decided["code"] == "valid"
    for name in NODES:
        _until(f"{name} has shuiwu in force", lambda n=name: _status(joined, n)["membership"]["version"] == 1)
        assert _status(joined, name)["membership"]["quorum"] == 4

    desc = joined.describe()
    cluster = EtcdCluster.attach(data_dir=desc["etcd"]["dir"])
    etcd_before = cluster.pids
    submitter = Submitter(joined)
    submitter.thread.start()
    try:
        _until("the client's first transactions are accepted", lambda: len(submitter.accepted) >= 5)
        joined.join("shuiwu", key_file, card=card.to_dict())  # rolling restart of etcd, then the node starts
        during = len(submitter.accepted)
        _until("the client's transactions are accepted after the join",
               lambda: len(submitter.accepted) >= during + 5)
    finally:
        submitter.stop.set()
        submitter.thread.join(30)
    etcd_after = EtcdCluster.attach(data_dir=desc["etcd"]["dir"]).pids
    assert all(etcd_after[n] is not None and etcd_after[n] != etcd_before[n] for n in etcd_before), etcd_after
    assert submitter.refused == []
    urls = [n["url"] for n in desc["nodes"]]
    assert count_not_final(urls, submitter.ids(), timeout=60, http=HTTP) == 0
    for name in NODES:
        assert _status(joined, name)["fault"] is None

    joined.mount(HTTP, NODE_MEMBER)
    with EtcdOrderer(endpoints=desc["etcd"]["endpoints"], prefix=desc["etcd"]["prefix"],
                     tls=joined.tls("shuiwu"), retry_for=5) as orderer:
        assert orderer.head() >= 0  # etcd answers a client certificate issued under shuiwu's key
    head = _status(joined, "chengguan")["height"]
    _until("shuiwu catches up", lambda: _status(joined, "shuiwu")["height"] >= head, timeout=60)
    st = _status(joined, "shuiwu")
    assert st["ordering"] == "etcd" and st["fault"] is None and st["own_key"]["in_force"] is True
    own = _final(joined, make_tx(gateway, 11), node="shuiwu")
    assert own["code"] == "valid"
    _until("shuiwu co-signs, and chengguan keeps its signature",
           lambda: _signed_by(joined, "chengguan", own["height"], k.key_id))

    joined.stop("jiaotong")
    try:
        final = _final(joined, make_tx(gateway, 12))  # four of five: chengguan, zhujian, shengtai and shuiwu
        assert final["code"] == "valid"
        _until("the certificate holds shuiwu's signature",
               lambda: _signed_by(joined, "chengguan", final["height"], k.key_id))
        cert = _status(joined, "chengguan")["certificate"]
        assert cert["quorum"] == 4 and cert["nodes"] == 5
    finally:
        joined.start("jiaotong")
    _until("jiaotong catches up", lambda: _status(joined, "jiaotong")["final_height"] >= final["height"], timeout=60)
    report = audit_consortium(joined.desc_path)
    assert report["ok"], json.dumps(report, ensure_ascii=False)[:2000]
