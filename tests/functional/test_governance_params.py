"""The e-ticket rules' parameters changed by vote, with real node processes (four nodes, solo ordering, the e-ticket
rules): a value the rules would not take is refused when proposed; an approved change holds on every node from
the block after the deciding one, and every node's chain still re-executes in the audit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from consortium_nodes.audit import audit_consortium
from ledger.core.encoding import CHINA_TZ
from ledger.core.governance import PROPOSE, VOTE
from ledger.core.transaction import Transaction
from ledger.eticket.acts import FULL_ACT_SIGNED
from tests.functional.test_governance import NODES, _final, _gov, _iso, _key, _status, _until, _url, running
from tests.functional.tls_fixtures import HTTP
from tools.local_consortium import LocalConsortium

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    yield from running(tmp_path_factory, "governance-params", "eticket")


def _org(lc: LocalConsortium, org_id: str) -> Transaction:
    return Transaction.create(key=_key(lc, "gateway"), type="registry.org", actor="operator:u1",
                              payload={"org_id": org_id, "name": f"参数测试单位{org_id}", "kind": "contractor"},
                              timestamp=_iso(datetime.now(CHINA_TZ)))


def _code_on(lc: LocalConsortium, node: str, tx_id: str) -> Any:
    r = HTTP.get(_url(lc, node) + f"/v1/transactions/{tx_id}", params={"wait": 10}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json().get("code")


def test_the_rules_parameters_change_by_vote_on_every_node(local: LocalConsortium) -> None:
    """An org registered through the gateway is valid; a proposal of an act_signed list naming no e-ticket type
    is refused governance_invalid; 城管 proposes that registry.org be signed by its actor too, 住建 and 交通
    approve; from then on every node refuses the gateway's unsigned registry.org as act_unsigned, and every node's
    chain passes the audit (the replay takes the change at the same block)."""
    assert _final(local, _org(local, "ORG-P1"))["code"] == "valid"
    bad = _gov(_key(local, "chengguan"), PROPOSE, {"proposal_id": "bad-params", "action": "set_parameters",
                                                   "parameters": {"eticket": {"act_signed": ["no.such_type"]}}})
    assert _final(local, bad)["code"] == "governance_invalid"
    wanted = sorted({*FULL_ACT_SIGNED, "registry.org"})
    proposal = {"proposal_id": "sign-orgs", "action": "set_parameters",
                "parameters": {"eticket": {"act_signed": wanted}}}
    assert _final(local, _gov(_key(local, "chengguan"), PROPOSE, proposal))["code"] == "valid"
    for voter in ("zhujian", "jiaotong"):
        assert _final(local, _gov(_key(local, voter), VOTE, {"proposal_id": "sign-orgs", "approve": True}))["code"] \
            == "valid"
    for name in NODES:
        _until(f"{name} has the change in force", lambda n=name: _status(local, n)["membership"]["version"] == 1)
    later = _org(local, "ORG-P2")
    assert _final(local, later)["code"] == "act_unsigned"
    assert {n: _code_on(local, n, later.tx_id) for n in NODES} == {n: "act_unsigned" for n in NODES}
    report = audit_consortium(local.desc_path)
    assert report["ok"], report
    audit = subprocess.run([sys.executable, "-m", "ledger", "audit", "--nodes", str(local.desc_path)],
                           capture_output=True, text=True, timeout=300, check=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr
