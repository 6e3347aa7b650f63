"""Governance on the chain with real node processes (four nodes, solo ordering): a member key rotated by a vote
of the node members, applied at a block boundary on every node, the old blocks still verifying under the old key
and the old key refused afterwards, for transactions, co-signatures and its TLS certificate; a node added by
vote joining over mutual TLS, and retired again."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from consortium_nodes.audit import audit_consortium
from ledger import transport
from ledger.core.card import make_card
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.core.governance import PROPOSE, VOTE
from ledger.core.transaction import Transaction
from ledger.core.validity import Validity
from ledger.store.certs import member_files
from ledger.store.keyfiles import read_consortium, read_private_key, write_private_key
from ledger.testing import make_tx
from ledger.transport import Tls
from ledger.verify.chain import verify_chain
from tests.functional.tls_fixtures import HTTP, NODE_MEMBER
from tools.local_consortium import LocalConsortium

pytestmark = pytest.mark.slow

NODES = ("chengguan", "zhujian", "jiaotong", "shengtai")


def running(tmp_path_factory: pytest.TempPathFactory, name: str, state_machine: str) -> Iterator[LocalConsortium]:
    """Four nodes with solo ordering under ``state_machine``, the tests' session mounted as a node member; for
    this module's fixture and the other governance modules'."""
    lc = LocalConsortium(root=tmp_path_factory.mktemp(name))
    lc.up(nodes=4, ordering="solo", state_machine=state_machine)
    lc.mount(HTTP, NODE_MEMBER)
    yield lc
    lc.down()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    yield from running(tmp_path_factory, "governance", "null")


def _url(lc: LocalConsortium, name: str) -> str:
    return str(next(n["url"] for n in lc.describe()["nodes"] if n["name"] == name))


def _key(lc: LocalConsortium, name: str) -> PrivateKey:
    return read_private_key(Path(lc.describe()["keys_dir"]) / f"{name}.pem")


def _iso(t: datetime) -> str:
    return t.astimezone(CHINA_TZ).replace(microsecond=0).isoformat()


def _gov(key: PrivateKey, kind: str, payload: dict[str, Any]) -> Transaction:
    return Transaction.create(key=key, type=kind, payload=payload, actor="department:governance",
                              timestamp=_iso(datetime.now(CHINA_TZ)))


def _final(lc: LocalConsortium, tx: Transaction, node: str = "chengguan") -> dict[str, Any]:
    """Submit ``tx`` and wait for it to be final; its status."""
    r = HTTP.post(_url(lc, node) + "/v1/transactions", json=tx.to_dict(), params={"wait": 20}, timeout=30)
    assert r.status_code == 200, r.text
    d: dict[str, Any] = r.json()
    assert d["status"] == "final", d
    return d


def _status(lc: LocalConsortium, name: str) -> dict[str, Any]:
    r = HTTP.get(_url(lc, name) + "/status", timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _until(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)


def _cli(lc: LocalConsortium, member: str, *args: str, node: str = "jiaotong") -> subprocess.CompletedProcess[str]:
    """``ledger governance ...`` as ``member`` runs it: signed with its member key, over its TLS identity."""
    desc = lc.describe()
    tls: list[str] = []
    if desc.get("tls_dir"):
        files = member_files(desc["tls_dir"], member)
        tls = ["--cert", str(files.cert), "--tls-key", str(files.key), "--ca", str(files.ca)]
    return subprocess.run(
        [sys.executable, "-m", "ledger", "governance", *args, "--consortium", desc["consortium"], "--member-key",
         str(Path(desc["keys_dir"]) / f"{member}.pem"), "--node", _url(lc, node), "--wait", "30", *tls],
        capture_output=True, text=True, timeout=120, check=False)


def _signed_by(lc: LocalConsortium, node: str, height: int, key_id: str) -> bool:
    """``node`` holds a co-signature of block ``height`` by ``key_id`` (stored only when it verified)."""
    r = HTTP.get(_url(lc, node) + f"/v1/blocks/{height}/signatures", timeout=10)
    return r.status_code == 200 and any(s["key_id"] == key_id for s in r.json()["signatures"])


def test_a_key_rotated_by_vote_leaves_old_blocks_verifying_and_refuses_the_old_key(local: LocalConsortium) -> None:
    """生态环境局 rotates its node key: it consents with its current key, two more nodes approve.  Every node puts
    the new membership in force at the same block; afterwards a transaction under the old key is refused
    (``key_rotated``) and the node's co-signatures under its old key no longer count, until it restarts with the
    new key (and a TLS certificate issued under it) and co-signs again.  Every node's chain, with blocks
    co-signed under the old key, passes the audit."""
    gateway, old = _key(local, "gateway"), _key(local, "shengtai")
    before = _final(local, make_tx(gateway, 1))
    _until("shengtai co-signs under its genesis key",
           lambda: _signed_by(local, "chengguan", before["height"], old.key_id))
    new = PrivateKey.generate()
    now = datetime.now(CHINA_TZ)
    card = make_card(new, name="shengtai", org="生态环境局", roles=("node", "approver"),
                     validity=Validity(not_before=_iso(now - timedelta(days=1)),
                                       not_after=_iso(now + timedelta(days=365))))
    proposal = {"proposal_id": "rotate-shengtai-1", "action": "rotate_key", "member": "shengtai",
                "card": card.to_dict()}
    assert _final(local, _gov(_key(local, "chengguan"), PROPOSE, proposal))["code"] == "valid"
    _until("zhujian holds the proposal, approved by its proposer",  # final: a quorum stored it, maybe not zhujian
           lambda: [p["approvals"] for p in _status(local, "zhujian")["membership"]["pending"]] == [["chengguan"]])
    voted = _cli(local, "zhujian", "vote", "--proposal-id", "rotate-shengtai-1")  # its own key, its own process
    assert voted.returncode == 0, voted.stderr
    assert json.loads(voted.stdout)["code"] == "valid"
    decided = _final(local, _gov(old, VOTE, {"proposal_id": "rotate-shengtai-1", "approve": True}), node="jiaotong")
    assert decided["code"] == "valid"
    since = decided["height"] + 1
    for name in NODES:
        _until(f"{name} has the rotation in force", lambda n=name: _status(local, n)["membership"]["version"] == 1)
        m = _status(local, name)["membership"]
        assert m["since"] == since and m["members"]["shengtai"] == new.key_id and m["pending"] == []

    late = _cli(local, "jiaotong", "vote", "--proposal-id", "rotate-shengtai-1")
    assert late.returncode != 0 and "[governance_unknown_proposal]" in late.stderr, late.stderr  # decided already
    r = HTTP.post(_url(local, "zhujian") + "/v1/transactions", json=make_tx(old, 2).to_dict(), timeout=10)
    assert r.status_code == 403 and r.json()["reason"] == "key_rotated", r.text
    after = _final(local, make_tx(gateway, 3))
    assert after["height"] >= since
    # its node says its key is out; under mutual TLS its certificate, issued under the old key, no longer reaches
    # its peers either (the next test), so it builds no block past the rotation until it restarts with the new key
    assert _status(local, "shengtai")["own_key"]["in_force"] is False
    assert not any(_signed_by(local, n, after["height"], old.key_id) for n in NODES)

    new_key_file = Path(local.describe()["keys_dir"]) / "shengtai-2.pem"
    write_private_key(new, new_key_file)
    local.rekey("shengtai", new_key_file, card=card.to_dict())  # and a TLS leaf issued under the new key
    local.mount(HTTP, NODE_MEMBER)  # shengtai's node trusted under its new key
    assert _status(local, "shengtai")["own_key"]["in_force"] is True
    later = _final(local, make_tx(new, 4))
    assert later["code"] == "valid"
    _until("shengtai co-signs under its new key, and the peers keep it",
           lambda: _signed_by(local, "chengguan", later["height"], new.key_id))

    # the blocks it stored while its old-key certificate was refused got their peers' signatures by its syncer
    _until("shengtai holds every block final", lambda: _status(local, "shengtai")["final_height"] >= later["height"])
    report = audit_consortium(local.desc_path)
    assert report["ok"], report
    audit = subprocess.run([sys.executable, "-m", "ledger", "audit", "--nodes", str(local.desc_path)],
                           capture_output=True, text=True, timeout=300, check=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    db = next(n for n in local.describe()["nodes"] if n["name"] == "jiaotong")["data_dir"]
    verified = verify_chain(f"sqlite:///{db}/ledger.db")
    assert verified.ok, verified.problems
    assert _signed_by(local, "jiaotong", before["height"], old.key_id)  # the old block keeps its old co-signature


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Four more nodes over mutual TLS, for a fifth to join: its certificate, issued under its own key, is in
    no founder's CA bundle; the founders trust it once its key is in force."""
    lc = LocalConsortium(root=tmp_path_factory.mktemp("governance-join"))
    lc.up(nodes=4, ordering="solo", state_machine="null")
    lc.mount(HTTP, NODE_MEMBER)
    yield lc
    lc.down()


def test_a_node_added_by_vote_catches_up_cosigns_and_counts_toward_the_quorum(joined: LocalConsortium,
                                                                            tmp_path: Path) -> None:
    """A fifth department makes its key and card; three of the four nodes vote it in and every node puts the
    five-node membership (quorum four) in force at the same block.  Its node starts, catches up with the chain
    and co-signs; with one founder's node stopped a transaction still becomes final, which four signatures of
    five need: the new node's counts.  Every node's chain, the new node's too, passes the audit."""
    gateway = _key(joined, "gateway")
    _final(joined, make_tx(gateway, 10))
    k = PrivateKey.generate()
    now = datetime.now(CHINA_TZ)
    card = make_card(k, name="shuiwu", org="水务局", roles=("node", "approver"),
                     validity=Validity(not_before=_iso(now - timedelta(days=1)),
                                       not_after=_iso(now + timedelta(days=365))))
    key_file = tmp_path / "shuiwu.pem"
    write_private_key(k, key_file)
    card_file = tmp_path / "shuiwu-card.json"
    card_file.write_text(json.dumps(card.to_dict(), ensure_ascii=False), encoding="utf-8")
    proposed = _cli(joined, "chengguan", "propose", "--proposal-id", "add-shuiwu", "--action", "add_member",
                    "--card", str(card_file))
    assert proposed.returncode == 0, proposed.stderr
    for voter in ("zhujian", "jiaotong"):
        decided = _final(joined, _gov(_key(joined, voter), VOTE, {"proposal_id": "add-shuiwu", "approve": True}))
        assert decided["code"] == "valid"
    for name in NODES:
        _until(f"{name} has shuiwu in force", lambda n=name: _status(joined, n)["membership"]["version"] == 1)
        m = _status(joined, name)["membership"]
        assert m["nodes"] == [*NODES, "shuiwu"] and m["quorum"] == 4 and m["since"] == decided["height"] + 1

    joined.join("shuiwu", key_file, card=card.to_dict())  # its leaf under its own key: mutual TLS both ways
    joined.mount(HTTP, NODE_MEMBER)
    assert _url(joined, "shuiwu").startswith("https://")
    head = _status(joined, "chengguan")["height"]
    _until("shuiwu catches up", lambda: _status(joined, "shuiwu")["height"] >= head, timeout=60)
    assert _status(joined, "shuiwu")["membership"]["version"] == 1
    assert _status(joined, "shuiwu")["own_key"]["in_force"] is True
    cosigned = _final(joined, make_tx(gateway, 11))
    _until("shuiwu co-signs, and chengguan keeps its signature",
           lambda: _signed_by(joined, "chengguan", cosigned["height"], k.key_id))

    joined.stop("jiaotong")
    try:
        final = _final(joined, make_tx(gateway, 12))  # four of five: chengguan, zhujian, shengtai and shuiwu
        assert final["code"] == "valid"
        _until("the certificate holds shuiwu's signature",
               lambda: _signed_by(joined, "chengguan", final["height"], k.key_id))
        st = _status(joined, "chengguan")
        assert st["certificate"]["quorum"] == 4 and st["certificate"]["nodes"] == 5
    finally:
        joined.start("jiaotong")
    _until("jiaotong catches up", lambda: _status(joined, "jiaotong")["final_height"] >= final["height"],
           timeout=60)
    report = audit_consortium(joined.desc_path)
    assert report["ok"], report


def test_after_a_rotation_the_old_keys_certificate_is_refused_and_the_new_ones_accepted(
        local: LocalConsortium) -> None:
    """Mutual TLS follows the rotation: a client presenting 生态环境局's certificate issued under its old key fails
    the handshake with every node, one issued under its new key is answered; the nodes' servers present
    certificates the clients check under the keys in force (its node's under its new key)."""
    desc = local.describe()
    if not desc.get("voted"):
        pytest.skip("needs the rotation of the test before")
    genesis = read_consortium(desc["consortium"])
    rotated = local.tls("shengtai")
    assert rotated is not None and rotated.files.cert.name != "shengtai.crt"
    old = Tls.load(member_files(desc["tls_dir"], "shengtai"), genesis)
    old.follow(lambda: rotated.in_force().consortium)  # the client knows the rotation: only the server refuses
    for name in ("chengguan", "zhujian", "jiaotong"):
        url = _url(local, name)
        with pytest.raises(requests.exceptions.ConnectionError):
            transport.session(old, members={url: name}).get(url + "/status", timeout=10)
        r = transport.session(rotated, members={url: name}).get(url + "/status", timeout=10)
        assert r.status_code == 200 and r.json()["membership"]["version"] == 1, r.text
    url = _url(local, "shengtai")  # its node's server certificate: under the new key, not the genesis CA's
    assert transport.session(rotated, members={url: "shengtai"}).get(url + "/status", timeout=10).status_code == 200
    genesis_only = Tls.load(member_files(desc["tls_dir"], NODE_MEMBER), genesis)
    with pytest.raises(requests.exceptions.SSLError):
        transport.session(genesis_only, members={url: "shengtai"}).get(url + "/status", timeout=10)


def test_a_member_retired_by_vote_is_refused_with_its_own_reason(joined: LocalConsortium) -> None:
    """After the node added above is retired by four votes of five, the membership is back to four nodes
    (quorum three), a transaction under the retired member's key is refused as ``member_retired`` and its TLS
    certificate fails the handshake with the nodes."""
    m = _status(joined, "chengguan")["membership"]
    if "shuiwu" not in m["nodes"]:
        pytest.skip("needs the node added by the test before")
    shuiwu = m["members"]["shuiwu"]
    proposal = {"proposal_id": "retire-shuiwu", "action": "retire_member", "member": "shuiwu"}
    _final(joined, _gov(_key(joined, "chengguan"), PROPOSE, proposal))
    for voter in ("zhujian", "jiaotong"):
        assert _final(joined, _gov(_key(joined, voter), VOTE,
                                  {"proposal_id": "retire-shuiwu", "approve": True}))["code"] == "valid"
    assert _status(joined, "chengguan")["membership"]["version"] == 1  # three of five: not yet the quorum of four
    assert _final(joined, _gov(_key(joined, "shengtai"), VOTE,
                              {"proposal_id": "retire-shuiwu", "approve": True}))["code"] == "valid"
    for name in NODES:
        _until(f"{name} has retired shuiwu", lambda n=name: _status(joined, n)["membership"]["version"] == 2)
        m = _status(joined, name)["membership"]
        assert m["nodes"] == list(NODES) and m["quorum"] == 3 and "shuiwu" not in m["members"]
    cfg = next(n["config"] for n in joined.describe()["nodes"] if n["name"] == "shuiwu")
    key = read_private_key(json.loads(Path(cfg).read_text(encoding="utf-8"))["key"])  # its node's key file
    assert key.key_id == shuiwu
    r = HTTP.post(_url(joined, "zhujian") + "/v1/transactions", json=make_tx(key, 13).to_dict(), timeout=10)
    assert r.status_code == 403 and r.json()["reason"] == "member_retired", r.text
    with pytest.raises(requests.exceptions.ConnectionError):  # its certificate: refused at the handshake
        joined.session("shuiwu").get(_url(joined, "zhujian") + "/status", timeout=10)
    assert _final(joined, make_tx(_key(joined, "gateway"), 14))["code"] == "valid"
