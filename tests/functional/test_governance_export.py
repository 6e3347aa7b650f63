"""Provenance exports across a key rotation by vote, with real node processes (four nodes, solo ordering, the
e-ticket rules): the gateway's key is rotated by three node votes and its own consent; an export of an org with
one record under the old key and one under the new verifies offline with scripts/verify-export (which replays the
votes from the genesis), and the same export with a governance record removed fails with its own line; after a
member is added and retired again by vote, an export that leaves out the retirement or the rotation fails against
the membership line the nodes co-signed in the checkpoint."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.core.card import make_card
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.core.governance import PROPOSE, VOTE
from ledger.core.transaction import Transaction
from ledger.core.validity import Validity
from ledger.store.keyfiles import read_consortium
from tests.functional.test_governance import _final, _gov, _iso, _key, _status, _until, _url, running
from tests.functional.tls_fixtures import HTTP
from tools.local_consortium import LocalConsortium

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NODES = ("chengguan", "zhujian", "jiaotong", "shengtai")
ORG = "ORG-GOV"
ORG2 = "ORG-GOV-2"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    yield from running(tmp_path_factory, "governance-export", "eticket")


def _org(key: PrivateKey, name: str, update: bool = False, org: str = ORG) -> Transaction:
    payload: dict[str, Any] = {"org_id": org, "name": name, "kind": "contractor"}
    if update:
        payload["update"] = True
    return Transaction.create(key=key, type="registry.org", payload=payload, actor="operator:u1",
                              timestamp=_iso(datetime.now(CHINA_TZ)))


def _verify(lc: LocalConsortium, export: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "verify-export"), str(path), "--consortium",
                           lc.describe()["consortium"]], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def rotated(local: LocalConsortium) -> dict[str, Any]:
    """An org registered under the gateway's genesis key, the gateway's key rotated by vote (城管 proposes, 住建
    and 交通 approve, the gateway consents with its current key), the org renamed under the new key; the org's
    export from a node."""
    old = _key(local, "gateway")
    assert _final(local, _org(old, "治理测试单位"))["code"] == "valid"
    assert _final(local, _org(old, "治理测试单位二", org=ORG2))["code"] == "valid"  # no record after the rotation
    genesis = read_consortium(local.describe()["consortium"])
    gateway = next(m for m in genesis.members if m.name == "gateway")
    new = PrivateKey.generate()
    now = datetime.now(CHINA_TZ)
    card = make_card(new, name="gateway", org=gateway.org, roles=gateway.roles,
                     validity=Validity(not_before=_iso(now - timedelta(days=1)),
                                       not_after=_iso(now + timedelta(days=365))))
    proposal = {"proposal_id": "rotate-gateway", "action": "rotate_key", "member": "gateway", "card": card.to_dict()}
    assert _final(local, _gov(_key(local, "chengguan"), PROPOSE, proposal))["code"] == "valid"
    for voter in ("zhujian", "jiaotong"):
        vote = _gov(_key(local, voter), VOTE, {"proposal_id": "rotate-gateway", "approve": True})
        assert _final(local, vote)["code"] == "valid"
    decided = _final(local, _gov(old, VOTE, {"proposal_id": "rotate-gateway", "approve": True}))
    assert decided["code"] == "valid"
    for name in NODES:
        _until(f"{name} has the rotation in force", lambda n=name: _status(local, n)["membership"]["version"] == 1)
    assert _status(local, "chengguan")["membership"]["members"]["gateway"] == new.key_id
    renamed = _final(local, _org(new, "治理测试单位（更名）", update=True))
    assert renamed["code"] == "valid" and renamed["height"] > decided["height"]
    r = HTTP.post(_url(local, "chengguan") + "/v1/provenance", json={"kind": "org", "key": ORG}, timeout=60)
    assert r.status_code == 200, r.text
    return {"export": r.json(), "old": old.key_id, "new": new.key_id}


def test_an_export_with_records_under_the_rotated_key_verifies_offline(local: LocalConsortium,
                                                                      rotated: dict[str, Any],
                                                                      tmp_path: Path) -> None:
    """The export carries the rotation (its proposal and the three approving votes, the deciding one the
    gateway's own) and the org's two records, under the old and the new key; verify-export, pinned to the
    genesis, says OK with exit status 0."""
    export = rotated["export"]
    assert export["format"] == "muck-ledger-provenance/v2"
    assert [r["signer"]["key_id"] for r in export["records"]] == [rotated["old"], rotated["new"]]
    [change] = export["governance"]
    assert (change["proposal_id"], change["action"]) == ("rotate-gateway", "rotate_key")
    assert [r["type"] for r in change["records"]] == [PROPOSE, VOTE, VOTE, VOTE]
    assert change["records"][-1]["index"] < change["in_force_from"] <= export["records"][1]["index"]
    done = _verify(local, export, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK: all 2 records"), done.stdout


def test_the_export_without_a_governance_record_fails(local: LocalConsortium, rotated: dict[str, Any],
                                                     tmp_path: Path) -> None:
    """With 住建's vote removed the rotation lacks its quorum (its own line first) and the record under the new
    key is by no member in force; with the gateway's consent removed, the rotation's own line; exit status 1."""
    no_vote = copy.deepcopy(rotated["export"])
    del no_vote["governance"][0]["records"][1]
    done = _verify(local, no_vote, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "FAILED: governance 0 (rotate-gateway): 2 of 4 node members approved, 3 needed (a vote " \
                       "removed?)", done.stdout
    assert any(line.startswith("FAILED: record 1 (") and "submitter is not a consortium member" in line
               for line in lines), done.stdout
    no_consent = copy.deepcopy(rotated["export"])
    del no_consent["governance"][0]["records"][3]
    done = _verify(local, no_consent, tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == ("FAILED: governance 0 (rotate-gateway): the rotation lacks the approval "
                                           "of gateway's current key (a vote removed?)"), done.stdout


def _provenance(local: LocalConsortium, org: str) -> dict[str, Any]:
    r = HTTP.post(_url(local, "chengguan") + "/v1/provenance", json={"kind": "org", "key": org}, timeout=60)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _vote_through(local: LocalConsortium, proposal: dict[str, Any], version: int) -> None:
    """城管 proposes, 住建 and 交通 approve; every node has membership ``version`` in force."""
    assert _final(local, _gov(_key(local, "chengguan"), PROPOSE, proposal))["code"] == "valid"
    for voter in ("zhujian", "jiaotong"):
        vote = _gov(_key(local, voter), VOTE, {"proposal_id": proposal["proposal_id"], "approve": True})
        assert _final(local, vote)["code"] == "valid"
    for name in NODES:
        _until(f"{name} has membership version {version}",
               lambda n=name: _status(local, n)["membership"]["version"] == version)


@pytest.fixture(scope="module")
def retired(local: LocalConsortium, rotated: dict[str, Any]) -> dict[str, Any]:
    """After the rotation: a monitoring station (监测站, role regulator) added by vote, then retired by vote; the
    exports of both orgs then (ORG-GOV-2's one record is under the gateway's old key, before the rotation)."""
    now = datetime.now(CHINA_TZ)
    card = make_card(PrivateKey.generate(), name="jiance", org="监测站", roles=("regulator",),
                     validity=Validity(not_before=_iso(now - timedelta(days=1)),
                                       not_after=_iso(now + timedelta(days=365))))
    _vote_through(local, {"proposal_id": "add-jiance", "action": "add_member", "card": card.to_dict()}, 2)
    _vote_through(local, {"proposal_id": "retire-jiance", "action": "retire_member", "member": "jiance"}, 3)
    assert "jiance" not in _status(local, "chengguan")["membership"]["members"]
    # the coordinator checkpoints the grown log periodically: an export under a checkpoint after the retirement
    _until("a checkpoint after the retirement", lambda: len(_provenance(local, ORG).get("governance", [])) == 3)
    return {"org": _provenance(local, ORG), "org2": _provenance(local, ORG2)}


def _without(export: dict[str, Any], proposal_id: str) -> dict[str, Any]:
    left = copy.deepcopy(export)
    left["governance"] = [c for c in left["governance"] if c["proposal_id"] != proposal_id]
    assert len(left["governance"]) == len(export["governance"]) - 1
    return left


def test_an_export_that_leaves_out_a_retirement_or_a_rotation_fails(local: LocalConsortium,
                                                                    retired: dict[str, Any],
                                                                    tmp_path: Path) -> None:
    """The checkpoint the nodes co-signed carries the membership line (version 3: rotation, addition,
    retirement); the intact exports verify (OK, version 3 as co-signed).  Leaving out the retirement (nothing in
    the export needs it), or, from ORG-GOV-2's export (its record under the old key, before the rotation), the
    rotation, replays without a problem of its own but fails against the co-signed line: one FAILED line, exit
    status 1."""
    why = ("FAILED: membership: the export's governance changes make membership version 2, the checkpoint's "
           "co-signed membership is version 3 (a membership change removed or added?)")
    for export in (retired["org"], retired["org2"]):
        assert [c["proposal_id"] for c in export["governance"]] == ["rotate-gateway", "add-jiance", "retire-jiance"]
        [line] = [x for x in export["checkpoint"].split("\n") if x.startswith("muck-ledger/membership/v1 ")]
        assert line.split(" ")[2] == "3", line
        done = _verify(local, export, tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.rstrip("\n").endswith("; membership version 3 as co-signed"), done.stdout
        done = _verify(local, _without(export, "retire-jiance"), tmp_path)
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stdout.splitlines() == [why], done.stdout
    done = _verify(local, _without(retired["org2"], "rotate-gateway"), tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [why], done.stdout
