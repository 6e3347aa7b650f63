"""Member-owned keys end to end, with real processes: ``ledger keygen`` on each member's side, a genesis
assembled from the cards and co-signed by every founder, nodes that run it (and refuse a changed or
incompletely signed one), and keys that expire per their card."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.core.encoding import CHINA_TZ
from ledger.store.keyfiles import read_card, read_private_key
from ledger.testing import make_tx
from tests.functional.tls_fixtures import HTTP, NODE_MEMBER
from tools.local_consortium import LocalConsortium

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NODES = (("chengguan", "城市管理局"), ("zhujian", "住房和城乡建设委员会"), ("jiaotong", "交通运输局"),
         ("shengtai", "生态环境局"))


def ledger(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The ``ledger`` command as a member runs it (its own process)."""
    return subprocess.run([sys.executable, "-m", "ledger", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def _iso(t: datetime) -> str:
    return t.astimezone(CHINA_TZ).replace(microsecond=0).isoformat()


@pytest.fixture(scope="module")
def founded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four departments (生态环境's node key ended yesterday), the gateway (its key ends in 20 days) and a
    member whose key has expired each run ``ledger keygen`` in their own directory; the genesis is assembled
    from the cards and each signs it."""
    root = tmp_path_factory.mktemp("founding")
    now = datetime.now(CHINA_TZ)
    expired = ["--not-before", _iso(now - timedelta(days=60)), "--not-after", _iso(now - timedelta(days=1))]
    members: list[tuple[str, str, str, list[str]]] = [
        (n, org, "node,approver", expired if n == "shengtai" else []) for n, org in NODES]
    members.append(("gateway", "治理中心接口服务", "gateway", ["--not-after", _iso(now + timedelta(days=20))]))
    members.append(("retired", "旧接口服务", "gateway", expired))
    for name, org, roles, extra in members:
        home = root / "members" / name
        home.mkdir(parents=True)
        r = ledger("keygen", "--name", name, "--org", org, "--roles", roles, "--key", "key.pem", "--card",
                   "card.json", *extra, cwd=home)
        assert r.returncode == 0, r.stderr
    cards = [str(root / "members" / n / "card.json") for n, *_ in members]
    params = root / "params.json"
    params.write_text(json.dumps({"max_payload_bytes": 65536, "max_block_txs": 2000}), encoding="utf-8")
    gen = root / "genesis"
    gen.mkdir()
    r = ledger("genesis", "assemble", "--name", "cq-muck", "--params", str(params), "--out",
               str(gen / "consortium.json"), *cards, cwd=root)
    assert r.returncode == 0, r.stderr
    for name, *_ in members:
        r = ledger("genesis", "sign", str(gen / "consortium.json"), "--key", str(root / "members" / name / "key.pem"),
                   cwd=root)
        assert r.returncode == 0, r.stderr
    # A local run keeps every member's key on this one machine: the launcher issues their TLS certificates.
    (gen / "keys").mkdir(mode=0o700)
    for name, *_ in members:
        shutil.copy2(root / "members" / name / "key.pem", gen / "keys" / f"{name}.pem")
    return root


@pytest.fixture(scope="module")
def local(founded: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    lc = LocalConsortium(root=tmp_path_factory.mktemp("run"))
    lc.up(nodes=4, ordering="solo", state_machine="null", genesis_dir=founded / "genesis")
    lc.mount(HTTP, NODE_MEMBER)
    yield lc
    lc.down()


def _status(lc: LocalConsortium, name: str) -> dict[str, Any]:
    url = next(n["url"] for n in lc.describe()["nodes"] if n["name"] == name)
    r = HTTP.get(url + "/status", timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_keygen_writes_an_owner_only_key_and_a_self_signed_card(founded: Path) -> None:
    """``ledger keygen`` writes the private key with mode 0600 (never printed) and a card signed by that key
    naming the member, its roles, key id and validity in +08:00; a second keygen never overwrites the key."""
    home = founded / "members" / "zhujian"
    assert stat.S_IMODE(os.stat(home / "key.pem").st_mode) == 0o600
    card = read_card(home / "card.json")  # verifies the self-signature
    key = read_private_key(home / "key.pem")
    assert card.key_id == key.key_id and card.name == "zhujian"
    assert card.member.roles == {"node", "approver"} and card.member.org == "住房和城乡建设委员会"
    assert card.validity.not_after.endswith("+08:00")
    doc = json.loads((home / "card.json").read_text(encoding="utf-8"))
    assert doc["algorithm"] == "ed25519" and "PRIVATE" not in json.dumps(doc)
    before = (home / "key.pem").read_bytes()
    r = ledger("keygen", "--name", "zhujian", "--roles", "node", "--key", "key.pem", "--card", "c2.json", cwd=home)
    assert r.returncode != 0 and "never overwritten" in r.stderr and "PRIVATE" not in r.stdout + r.stderr
    assert (home / "key.pem").read_bytes() == before


def test_every_node_runs_the_cosigned_genesis(local: LocalConsortium, founded: Path) -> None:
    """A genesis assembled from the cards and signed by every founder is accepted by every node, and a
    transaction by a member with a valid key becomes final."""
    r = ledger("genesis", "check", str(founded / "genesis" / "consortium.json"), cwd=founded)
    assert r.returncode == 0, r.stderr
    genesis = json.loads(r.stdout)["genesis"]
    for name, _ in NODES:
        st = _status(local, name)
        assert st["genesis"] == genesis and st["ready"], st
        assert st["own_key"]["member"] == name and st["own_key"]["expired"] is (name == "shengtai")
    gw = read_private_key(founded / "genesis" / "keys" / "gateway.pem")
    url = local.describe()["nodes"][1]["url"]
    r2 = HTTP.post(url + "/v1/transactions", json=make_tx(gw, 1, at=datetime.now(CHINA_TZ)).to_dict(),
                   params={"wait": 15}, timeout=30)
    assert r2.status_code == 200, r2.text
    assert r2.json()["status"] == "final" and r2.json()["code"] == "valid"


def test_a_transaction_under_an_expired_key_is_refused_with_key_expired(local: LocalConsortium,
                                                                       founded: Path) -> None:
    """A member whose card's validity ended yesterday signs a transaction: it is recorded in a co-signed
    block with code ``key_expired`` (judged at the block's time), and the chain goes on."""
    old = read_private_key(founded / "genesis" / "keys" / "retired.pem")
    url = local.describe()["nodes"][2]["url"]
    r = HTTP.post(url + "/v1/transactions", json=make_tx(old, 2, at=datetime.now(CHINA_TZ)).to_dict(),
                  params={"wait": 15}, timeout=30)
    assert r.status_code in (200, 403), r.text
    d = r.json()
    assert d.get("code", d.get("reason")) == "key_expired", d


def test_status_lists_the_keys_expiring_within_30_days(local: LocalConsortium) -> None:
    """Every node's /status lists the gateway's key (20 days left) and the expired ones, not the other
    departments' keys (a year left)."""
    for name, _ in NODES:
        expiring = {k["member"]: k for k in _status(local, name)["keys_expiring"]}
        assert set(expiring) == {"gateway", "retired", "shengtai"}, expiring
        assert 18 <= expiring["gateway"]["days_left"] <= 20 and expiring["retired"]["days_left"] < 0
        assert expiring["gateway"]["not_after"].endswith("+08:00") and expiring["gateway"]["key_id"]


def test_the_api_chain_status_lists_the_keys_expiring(local: LocalConsortium) -> None:
    """``GET /api/v1/chain/status`` (the API in-process over these running nodes, as an operator) lists each
    member key expiring within 30 days once, soonest first, with its member, key id, end and days left."""
    from ticket_api.app import create_app
    from ticket_api.testing import app_config

    app = create_app(app_config(f"sqlite:///{local.root / 'api.db'}", SERVICES="ticket_api.adapter:make_services",
                                LEDGER_LOCAL=str(local.desc_path)))
    token = app.extensions["ticket_api"].tokens.issue(role="operator", tenant="city", subject="ops-1").token
    resp = app.test_client().get("/api/v1/chain/status", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    keys = resp.json["keys_expiring"]
    assert [k["member"] for k in keys][-1] == "gateway" and {k["member"] for k in keys} == {
        "gateway", "retired", "shengtai"}
    assert all(set(k) == {"member", "key_id", "not_after", "days_left"} for k in keys)


def test_a_node_whose_key_expired_says_so_and_the_others_go_on(local: LocalConsortium, founded: Path) -> None:
    """生态环境's node key expired: the node keeps running and following the chain, does not co-sign (its
    signature would not count), and its /status says why; the other three nodes make the blocks final."""
    gw = read_private_key(founded / "genesis" / "keys" / "gateway.pem")
    url = next(n["url"] for n in local.describe()["nodes"] if n["name"] == "shengtai")
    r = HTTP.post(url + "/v1/transactions", json=make_tx(gw, 3, at=datetime.now(CHINA_TZ)).to_dict(),
                  params={"wait": 15}, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "final", r.text
    st = _status(local, "shengtai")
    assert st["ready"] and st["own_key"]["expired"] and st["own_key"]["days_left"] < 0
    assert st["own_key"]["refused"]["reason"] == "key_expired" and st["own_key"]["refused"]["height"] >= 0
    assert "shengtai" not in st["certificate"]["signers"] and len(st["certificate"]["signers"]) == 3


def _tampered(founded: Path, tmp: Path, how: str) -> Path:
    """A copy of the genesis with one founder's signature removed, or one card changed."""
    doc = json.loads((founded / "genesis" / "consortium.json").read_text(encoding="utf-8"))
    if how == "unsigned":
        doc["founder_signatures"] = [s for s in doc["founder_signatures"] if s["member"] != "zhujian"]
    elif how == "card":
        doc["members"][1]["org"] = "某公司"  # the card's self-signature no longer holds
    else:  # "resigned": the card changed and its own key signed it again; the founders signed the old one
        from ledger.core.card import make_card
        from ledger.core.validity import Validity

        m = doc["members"][3]
        card = make_card(read_private_key(founded / "members" / m["name"] / "key.pem"), name=m["name"],
                         org=m["org"], roles=[*m["roles"], "regulator"],
                         validity=Validity(not_before=m["not_before"], not_after=m["not_after"]))
        doc["members"][3] = card.to_dict()
    out = tmp / f"consortium-{how}.json"
    out.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return out


@pytest.mark.parametrize(("how", "reason"), [("unsigned", "genesis_unsigned"), ("card", "card_invalid"),
                                             ("resigned", "genesis_bad_signature")])
def test_every_node_refuses_a_changed_or_incompletely_signed_genesis(
    local: LocalConsortium, founded: Path, tmp_path: Path, how: str, reason: str
) -> None:
    """Each node started on a genesis lacking one founder's signature, or with one card altered (its
    self-signature broken, or re-signed by its key after the founders signed), exits non-zero at once with
    one line naming the reason."""
    bad = _tampered(founded, tmp_path, how)
    procs = []
    for n in local.describe()["nodes"]:
        cfg = json.loads(Path(n["config"]).read_text(encoding="utf-8"))
        cfg["consortium"] = str(bad)
        p = tmp_path / f"{n['name']}.json"
        p.write_text(json.dumps(cfg), encoding="utf-8")
        procs.append((n["name"], subprocess.Popen([sys.executable, "-m", "consortium_nodes", "run", "--config",
                                                   str(p)], cwd=ROOT, stdout=subprocess.PIPE,
                                                  stderr=subprocess.PIPE, text=True)))
    for name, proc in procs:
        _out, err = proc.communicate(timeout=120)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert proc.returncode != 0, (name, err)
        assert len(lines) == 1 and f"[{reason}]" in lines[0], (name, err)
