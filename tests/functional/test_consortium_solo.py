"""Real node processes on loopback with solo ordering: finality, faults, tampering, divergence."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests

from consortium_nodes.audit import audit_consortium
from ledger.core.block import BlockHeader, sign_header
from ledger.core.crypto import PrivateKey
from ledger.store.keyfiles import read_consortium, read_private_key
from ledger.testing import make_tx
from ledger.verify.chain import verify_chain
from tests.functional.tls_fixtures import HTTP, NODE_MEMBER
from tools.load import count_not_final, run_load
from tools.local_consortium import LocalConsortium

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    lc = LocalConsortium(root=root)
    lc.up(nodes=4, ordering="solo", state_machine="null", base_port=0)
    lc.mount(HTTP, NODE_MEMBER)
    yield lc
    lc.down()


def _desc(lc: LocalConsortium) -> dict:
    return lc.describe()


def _gateway(lc: LocalConsortium) -> PrivateKey:
    return read_private_key(_desc(lc)["gateway_key"])


def _url(lc: LocalConsortium, name: str) -> str:
    return next(n["url"] for n in _desc(lc)["nodes"] if n["name"] == name)


def test_submit_waits_for_finality_with_a_verifiable_certificate(local):
    """A transaction submitted to any node becomes final with signatures of more than 2/3 of the nodes."""
    tx = make_tx(_gateway(local), 1)
    r = HTTP.post(
        _url(local, "jiaotong") + "/v1/transactions", json=tx.to_dict(), params={"wait": 10}, timeout=20
    )
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["status"] == "final" and d["tx_id"] == tx.tx_id and d["code"] == "valid"
    consortium = local.consortium()
    block = HTTP.get(_url(local, "chengguan") + f"/v1/blocks/{d['height']}", timeout=5).json()
    header = BlockHeader.from_dict(block["header"])
    assert header.hash == d["block_hash"]
    from ledger.core.block import HeaderSignature, certificate_signers

    signers = certificate_signers(
        header, [HeaderSignature.from_dict(s) for s in d["certificate"]], consortium
    )
    assert len(signers) >= consortium.quorum


def test_submission_is_idempotent_by_tx_id(local):
    """Submitting the same signed transaction twice, to two nodes, records it once."""
    tx = make_tx(_gateway(local), 2)
    a = HTTP.post(
        _url(local, "chengguan") + "/v1/transactions", json=tx.to_dict(), params={"wait": 10}, timeout=20
    )
    assert a.status_code == 200, a.text
    # Final means a quorum signed it, not that every node stored it yet: wait until shengtai holds the block.
    import time

    deadline = time.monotonic() + 30
    while HTTP.get(_url(local, "shengtai") + "/status", timeout=5).json()["height"] < a.json()["height"]:
        assert time.monotonic() < deadline, "shengtai did not store the block in 30 s"
        time.sleep(0.05)
    b = HTTP.post(_url(local, "shengtai") + "/v1/transactions", json=tx.to_dict(), timeout=20)
    assert a.status_code == 200 and b.status_code == 202
    assert b.json()["status"] == "known"
    dbs = [json.loads(Path(n["config"]).read_text())["db"] for n in _desc(local)["nodes"]]
    path = dbs[0].removeprefix("sqlite:///")
    with sqlite3.connect(path) as c:
        assert (
            c.execute("select count(*) from ledger_transactions where tx_id=?", (tx.tx_id,)).fetchone()[0]
            == 1
        )


def test_bad_signature_is_refused_and_nothing_is_written(local):
    """A transaction with a forged signature gets 403 reason bad_signature (as at the API: one registry of
    reason codes) and never reaches a block."""
    tx = make_tx(_gateway(local), 3).to_dict()
    forged = PrivateKey.generate().sign(b"other")
    import base64

    tx["signature"]["value"] = base64.b64encode(forged).decode()
    r = HTTP.post(_url(local, "zhujian") + "/v1/transactions", json=tx, timeout=10)
    assert r.status_code == 403 and r.json()["reason"] == "bad_signature"
    tx_id = r.json()["tx_id"]
    assert HTTP.get(_url(local, "zhujian") + f"/v1/transactions/{tx_id}", timeout=5).status_code == 404


def _leader(lc: LocalConsortium) -> str:
    return _desc(lc)["nodes"][0]["name"]  # tools.local_consortium makes the first node the solo leader


def _node_key(lc: LocalConsortium, name: str) -> PrivateKey:
    return read_private_key(str(Path(_desc(lc)["keys_dir"]) / f"{name}.pem"))


def _signed_append(lc: LocalConsortium, signer: str, seq: int, timestamp: str) -> requests.Response:
    from ledger.core.batch import sign_batch

    sig = sign_batch(_node_key(lc, signer), seq=seq, proposer=signer, timestamp=timestamp, txs=[])
    body = {"proposer": signer, "timestamp": timestamp, "txs": [], "seq": seq, "signature": sig.to_dict()}
    return HTTP.post(_url(lc, _leader(lc)) + "/v1/order/append", json=body, timeout=10)


def _heads(lc: LocalConsortium) -> list[int]:
    return [HTTP.get(n["url"] + "/status", timeout=5).json()["height"] for n in _desc(lc)["nodes"]]


def test_unauthenticated_order_append_is_refused(local):
    """Anyone on the network could post a batch to the solo leader's ``/v1/order/append``: an unsigned one
    (the old accepted ``curl``) is refused 403 ``unsigned_batch`` with the usual error JSON, and the order's
    head does not move."""
    leader = _url(local, _leader(local))
    head = HTTP.get(leader + "/v1/order/head", timeout=5).json()["head"]
    for body in ({"proposer": "x", "timestamp": "not-a-time", "txs": []},
                 {"proposer": "mallory", "timestamp": "2099-01-01T00:00:00+08:00", "txs": []}):
        r = HTTP.post(leader + "/v1/order/append", json=body, timeout=10)
        assert r.status_code == 403, r.text
        assert r.json()["reason"] == "unsigned_batch" and r.json()["error"]["code"] == "unsigned_batch"
    assert HTTP.get(leader + "/v1/order/head", timeout=5).json()["head"] == head


def test_batch_dated_2099_with_a_node_signature_is_refused_and_the_chain_stays_live(local):
    """A batch properly signed with a node member's key but dated 2099 (a node whose clock or key went
    wrong) is refused by the solo leader, whose clock says now: 422 ``block_time_ahead``; the order does
    not move, so no block is clamped to 2099, and a transaction submitted afterwards becomes final as ever
    with a block time of today.  (Had such a batch reached the order, e.g. through etcd, every node would
    build its block but none would co-sign it: never final; see docs/ARCHITECTURE.md.)"""
    leader = _url(local, _leader(local))
    head = HTTP.get(leader + "/v1/order/head", timeout=5).json()["head"]
    r = _signed_append(local, "jiaotong", head + 1, "2099-01-01T00:00:00+08:00")
    assert r.status_code == 422 and r.json()["reason"] == "block_time_ahead", r.text
    assert HTTP.get(leader + "/v1/order/head", timeout=5).json()["head"] == head
    tx = make_tx(_gateway(local), 4)
    d = HTTP.post(_url(local, "shengtai") + "/v1/transactions", json=tx.to_dict(), params={"wait": 10},
                      timeout=20).json()
    assert d["status"] == "final", d
    header = HTTP.get(leader + f"/v1/blocks/{d['height']}", timeout=5).json()["header"]
    assert not header["timestamp"].startswith("2099")
    for n in _desc(local)["nodes"]:
        st = HTTP.get(n["url"] + "/status", timeout=5).json()
        assert st["withheld_signatures"]["count"] == 0 and st["fault"] is None


def test_batch_a_node_signed_for_the_next_number_is_appended_and_final_everywhere(local):
    """The front door lets a node member's batch in when it is signed for the next sequence number (as the
    nodes' batchers sign theirs): it becomes the same block, final, on all four nodes; signed for a number
    already taken it is answered 409 ``order_conflict`` with the real head."""
    leader = _url(local, _leader(local))
    head = HTTP.get(leader + "/v1/order/head", timeout=5).json()["head"]
    from ledger.core.encoding import CHINA_TZ, iso

    now = iso(datetime.now(CHINA_TZ))
    r = _signed_append(local, "zhujian", head + 1, now)
    assert r.status_code == 200 and r.json() == {"seq": head + 1}, r.text
    late = _signed_append(local, "zhujian", head + 1, now)
    assert late.status_code == 409 and late.json()["reason"] == "order_conflict" and late.json()["head"] >= head + 1
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = [HTTP.get(n["url"] + "/status", timeout=5).json() for n in _desc(local)["nodes"]]
        if all(st["final_height"] >= head + 1 for st in states):
            break
        time.sleep(0.1)
    hashes = {HTTP.get(n["url"] + f"/v1/blocks/{head + 1}", timeout=5).json()["hash"]
              for n in _desc(local)["nodes"]}
    assert len(hashes) == 1 and all(st["final_height"] >= head + 1 for st in states)
    assert all(st["skipped_batches"]["count"] == 0 for st in states)


def test_kill9_one_node_under_load_others_finalise_and_it_catches_up(local):
    """kill -9 of one node under load: the rest keep finalising, the node restarts and reaches the same head,
    and no accepted transaction is lost."""
    desc_path = local.desc_path
    result: dict = {}
    t = threading.Thread(
        target=lambda: result.update(run_load(desc_path, seconds=6, rate=150, batch=15, wait_final=False))
    )
    t.start()
    threading.Event().wait(1.5)
    local.stop("shengtai", kill=True)
    threading.Event().wait(2.0)
    local.start("shengtai")
    t.join(timeout=60)
    assert result["accepted"] > 300
    urls = [n["url"] for n in _desc(local)["nodes"]]
    ids = result["tx_ids_sample"]
    assert count_not_final(urls, ids, http=HTTP) == 0
    # The restarted node reaches the others' head.
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        st = local.status()
        heads = {s["head"] for s in st}
        if len(heads) == 1 and all(s["final_height"] == s["height"] for s in st):
            break
        time.sleep(0.3)
    assert len({s["head"] for s in local.status()}) == 1
    # Every accepted transaction is final on the restarted node itself.
    assert count_not_final([_url(local, "shengtai")], result["accepted_ids"], http=HTTP) == 0


def test_member_signing_a_different_header_is_flagged_as_diverged(local):
    """A node member that signs a header other than the one everybody built is reported as diverged."""
    desc = _desc(local)
    keys = Path(desc["keys_dir"])
    st = HTTP.get(_url(local, "chengguan") + "/status", timeout=5).json()
    height = st["height"]
    real = BlockHeader.from_dict(
        HTTP.get(_url(local, "chengguan") + f"/v1/blocks/{height}", timeout=5).json()["header"]
    )
    fake = BlockHeader(**{**real.to_dict(), "tx_root": "00" * 32})
    liar = read_private_key(keys / "jiaotong.pem")
    sig = sign_header(fake, liar)
    HTTP.post(
        _url(local, "chengguan") + "/v1/signatures",
        json={"signatures": [{"height": height, "header_hash": fake.hash, **sig.to_dict()}]},
        timeout=5,
    )
    st = HTTP.get(_url(local, "chengguan") + "/status", timeout=5).json()
    assert any(
        d["member"] == "jiaotong" and d["height"] == height and d["their_hash"] == fake.hash
        for d in st["diverged"]
    )


def test_checkpoints_are_cosigned_and_the_log_only_grows(local):
    """A checkpoint is co-signed by a quorum of nodes acting as witnesses; a later one is provably an extension
    of it (RFC 9162 consistency proof), and the audit with the kept checkpoint passes."""
    from ledger.core import checkpoint as cp
    from ledger.core.tree import verify_consistency_hashes

    consortium = local.consortium()
    verifiers = {m.name: m.public_key for m in consortium.nodes}
    first = HTTP.post(_url(local, "jiaotong") + "/v1/checkpoints/new", timeout=20).json()["note"]
    c1, signers = cp.verify(first, verifiers, quorum=consortium.quorum, origin=consortium.origin)
    assert len(signers) >= consortium.quorum
    run_load(local.desc_path, seconds=1.5, rate=100, batch=10)
    second = HTTP.post(_url(local, "chengguan") + "/v1/checkpoints/new", timeout=20).json()["note"]
    c2, _ = cp.verify(second, verifiers, quorum=consortium.quorum, origin=consortium.origin)
    assert c2.size > c1.size
    proof = HTTP.get(_url(local, "shengtai") + "/v1/proofs/consistency",
                         params={"old": c1.size, "new": c2.size}, timeout=5).json()
    assert verify_consistency_hashes(c1.size, c2.size, c1.root, c2.root, [bytes.fromhex(h) for h in proof["hashes"]])
    assert HTTP.get(_url(local, "zhujian") + "/v1/checkpoints/latest", timeout=5).json()["note"] == second
    report = audit_consortium(local.desc_path, kept_checkpoint=first)
    assert report["ok"], report


def test_witness_refuses_a_checkpoint_that_does_not_match_its_log(local):
    """A node asked to co-sign a checkpoint with a root its own log does not have refuses (409)."""
    from ledger.core import checkpoint as cp

    st = HTTP.get(_url(local, "chengguan") + "/status", timeout=5).json()
    liar = read_private_key(Path(_desc(local)["keys_dir"]) / "chengguan.pem")
    bogus = cp.sign(cp.Checkpoint(local.consortium().origin, st["transactions"], b"\x07" * 32), [("chengguan", liar)])
    r = HTTP.post(_url(local, "jiaotong") + "/v1/checkpoint/cosign", json={"note": bogus}, timeout=5)
    assert r.status_code == 409 and r.json()["reason"] == "checkpoint_mismatch"


def test_database_changed_behind_a_nodes_back_is_detected_and_named(local):
    """Changing one node's stored transaction is caught: the audit names that node and block, and the node
    itself refuses its chain on restart."""
    run_load(local.desc_path, seconds=1, rate=50, batch=10)
    HTTP.post(_url(local, "chengguan") + "/v1/checkpoints/new", timeout=20).raise_for_status()
    kept_file = local.root / "kept-checkpoint.txt"
    cli = [sys.executable, "-m", "ledger", "audit", "--nodes", str(local.desc_path), "--checkpoint", str(kept_file),
           "--json"]
    healthy = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert kept_file.read_text().startswith(local.consortium().origin + "\n")
    desc = _desc(local)
    victim = next(n for n in desc["nodes"] if n["name"] == "zhujian")
    db = json.loads(Path(victim["config"]).read_text())["db"].removeprefix("sqlite:///")
    local.stop("zhujian")
    with sqlite3.connect(db) as c:
        seq, height, body = c.execute(
            "select seq, height, body from ledger_transactions order by seq limit 1 offset 5"
        ).fetchone()
        c.execute(
            "update ledger_transactions set body=? where seq=?", (body.replace(b"test:", b"TEST:"), seq)
        )
    kept = HTTP.get(_url(local, "chengguan") + "/v1/checkpoints/latest", timeout=5).json()["note"]
    report = audit_consortium(local.desc_path, kept_checkpoint=kept)
    assert report["ok"] is False
    assert report["nodes"]["zhujian"]["checkpoint"]["ok"] is False
    assert report["bad_nodes"] == ["zhujian"]
    assert report["nodes"]["zhujian"]["first_problem"]["height"] == height
    assert all(report["nodes"][n]["ok"] for n in ("chengguan", "jiaotong", "shengtai"))
    consortium = read_consortium(desc["consortium"])
    assert not verify_chain(db, consortium, workers=1).ok
    broken = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1
    out = json.loads(broken.stdout)
    assert out["bad_nodes"] == ["zhujian"] and out["nodes"]["zhujian"]["first_problem"]["height"] == height
    assert "zhujian" in out["advice"]
    local.start("zhujian")
    st = HTTP.get(_url(local, "zhujian") + "/status", timeout=5).json()
    assert st["fault"] and "changed behind its back" in st["fault"]


def test_consortium_up_leaves_its_nodes_running(tmp_path):
    """``scripts/consortium up`` returns while its nodes keep running (they are daemons, not children that
    die with the command); ``status`` from another command sees them ready, ``down`` stops every one."""
    import time

    root = Path(__file__).resolve().parents[2]
    d = tmp_path / "cli"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tools.consortium", *args, "--dir", str(d)], cwd=root,
                              capture_output=True, text=True, timeout=120)

    up = cli("up", "--base-port", "0", "--state-machine", "null")
    assert up.returncode == 0, up.stderr
    pids = [n["pid"] for n in json.loads(up.stdout)["nodes"]]
    try:
        time.sleep(1.0)
        st = cli("status")
        assert st.returncode == 0, st.stderr
        assert [s.get("ready") for s in json.loads(st.stdout)] == [True] * 4
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    from tools.proc import alive

    assert not any(alive(p) for p in pids)
