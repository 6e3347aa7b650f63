"""A lost order log never loses an accepted transaction, on real node processes: the solo orderer killed and
restarted without its order log, every transaction accepted before is final exactly once on every node."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from consortium_nodes.audit import audit_consortium
from ledger.store.keyfiles import read_private_key
from ledger.testing import make_tx
from tests.functional.tls_fixtures import HTTP, NODE_MEMBER
from tools.local_consortium import LocalConsortium
from tools.proc import port_free

pytestmark = pytest.mark.slow

N = 240


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    lc = LocalConsortium(root=tmp_path_factory.mktemp("orderlog"))
    lc.up(nodes=4, ordering="solo", state_machine="null", base_port=0)
    lc.mount(HTTP, NODE_MEMBER)
    yield lc
    lc.down()


def _statuses(lc: LocalConsortium) -> dict[str, dict]:
    return {n["name"]: HTTP.get(n["url"] + "/status", timeout=10).json() for n in lc.describe()["nodes"]}


def test_a_lost_solo_order_log_loses_no_accepted_transaction(local):
    """Transactions accepted by all four nodes, the solo orderer SIGKILLed at once and restarted with its
    order log deleted: its ``/status`` reports the lost log (``order_log``, ``fault`` until healed) while
    ``ready``; every accepted transaction becomes final exactly once on every node (each node holds N
    transactions), the pools drain to 0, the heads agree and the audit passes."""
    desc = local.describe()
    nodes = desc["nodes"]
    leader = nodes[0]
    gateway = read_private_key(desc["gateway_key"])
    txs = [make_tx(gateway, 10_000 + i) for i in range(N)]
    accepted: list[str] = []
    for i in range(0, N, 20):  # bulk submissions spread over every node, nobody waiting for blocks
        node = nodes[(i // 20) % len(nodes)]
        chunk = txs[i : i + 20]
        r = HTTP.post(node["url"] + "/v1/transactions", json={"transactions": [t.to_dict() for t in chunk]},
                          timeout=30)
        assert r.status_code == 200, r.text
        accepted += [x["tx_id"] for x in r.json()["results"] if x["status"] == "accepted"]
    assert len(accepted) == N
    local.stop(leader["name"], kill=True)
    data = Path(leader["data_dir"])
    for part in data.glob("orderer.db*"):
        part.unlink()
    port = int(leader["url"].rsplit(":", 1)[1].rstrip("/"))
    gone = time.monotonic() + 30
    while not port_free("127.0.0.1", port) and time.monotonic() < gone:  # the killed process's socket closes
        time.sleep(0.1)
    local.start(leader["name"])
    st = HTTP.get(leader["url"] + "/status", timeout=10).json()
    assert st["ready"] is True
    assert st["order_log"] is not None and "lost or rewound" in st["order_log"]["message"], st

    deadline = time.monotonic() + 120
    while True:
        sts = _statuses(local)
        done = all(s["transactions"] == N and s["pool"] == 0 and s["final_height"] == s["height"]
                   for s in sts.values()) and len({s["head"] for s in sts.values()}) == 1
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert done, {k: {f: s[f] for f in ("height", "final_height", "transactions", "pool", "pool_detail", "fault")}
                  for k, s in sts.items()}
    for n in nodes:
        r = HTTP.post(n["url"] + "/v1/transactions/status", json={"tx_ids": accepted}, timeout=30)
        assert r.status_code == 200 and set(r.json()["statuses"].values()) == {"final"}, n["name"]
    assert all(s["fault"] is None and s["ready"] for s in sts.values()), sts
    assert sts[leader["name"]]["order_log"]["healed"] is True
    report = audit_consortium(local.desc_path)
    assert report["ok"], report
