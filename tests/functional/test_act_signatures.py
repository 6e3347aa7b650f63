"""Each department signs its own decisions (issue 12 part 3) against the real stack (4 ledger nodes over mutual
TLS, gunicorn): the gateway key alone cannot approve for 住建 — through the API or straight to every node —
and a real decision names the department's own key, registered on the chain by the department's member."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ, iso
from ledger.core.transaction import Transaction
from ledger.eticket.acts import decision_body, decision_payload
from ledger.store.keyfiles import read_private_key
from tools.local_consortium import LocalConsortium

from .serve_fixtures import ROOT, Stack, stack, verify_export  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow]


def now() -> datetime:
    return datetime.now(CHINA_TZ).replace(microsecond=0)


def call(s: Stack, method: str, path: str, role: str, body: Any = None) -> requests.Response:
    return requests.request(method, s.api + path, json=body, headers=s.headers(role), timeout=60)


@pytest.fixture(scope="module")
def permit(stack: Stack) -> dict[str, Any]:  # noqa: F811
    r = call(stack, "POST", "/api/v1/permits", "contractor", {
        "project_id": "P-001", "volume_m3": "500", "disposal_site_ids": ["S-003"], "company_ids": ["C-01"],
        "valid_from": (now() - timedelta(hours=1)).isoformat(), "valid_to": (now() + timedelta(days=3)).isoformat()})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _decisions(s: Stack, permit_id: str) -> dict[str, dict[str, Any]]:
    got = call(s, "GET", f"/api/v1/permits/{permit_id}", "contractor").json()
    return {d["department"]: d for d in got["decisions"]}


def test_an_unsigned_or_wrongly_signed_decision_is_refused_through_the_api(stack: Stack,  # noqa: F811
                                                                          permit: dict[str, Any]) -> None:
    """住建's approver token alone (the API relays with the gateway key): 403 act_unsigned, in Chinese and in
    English; signed with 城管's key: act_key_mismatch; a signed approval sent as a rejection:
    bad_act_signature. 住建's decision stays pending."""
    pid = permit["id"]
    for lang, text in (("zh", "密钥"), ("en", "key")):
        r = requests.post(f"{stack.api}/api/v1/permits/{pid}/decisions", json={"decision": "approve"},
                          headers=stack.headers("approvers.zhujian", lang=lang), timeout=60)
        assert (r.status_code, r.json()["reason"]) == (403, "act_unsigned"), r.text
        assert text in r.json()["error"]["message"]
    other = read_private_key(stack.demo["approver_keys"]["chengguan"])
    body = decision_body(other, "permit.decide", pid, "zhujian", "approve", None, iso(now(), timespec="seconds"))
    r = call(stack, "POST", f"/api/v1/permits/{pid}/decisions", "approvers.zhujian", body)
    assert (r.status_code, r.json()["reason"]) == (403, "act_key_mismatch"), r.text
    signed = stack.decision("zhujian", pid)
    r = call(stack, "POST", f"/api/v1/permits/{pid}/decisions", "approvers.zhujian",
             {**signed, "decision": "reject", "comment": "不同意"})
    assert (r.status_code, r.json()["reason"]) == (403, "bad_act_signature"), r.text
    assert _decisions(stack, pid)["zhujian"]["decision"] == "pending"


def test_the_gateway_key_is_refused_by_every_node(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """A permit.decide for 住建 signed with the gateway's member key and sent straight to the consortium is
    ordered into a block and refused act_unsigned by every one of the four nodes."""
    local = LocalConsortium(root=stack.var)
    desc = local.describe()
    gateway = read_private_key(desc["gateway_key"])
    payload = decision_payload("permit.decide", permit["id"], "zhujian", "approve", None,
                               iso(now(), timespec="seconds"))
    tx = Transaction.create(key=gateway, type="permit.decide", payload=payload, actor="approver:zhujian:forged",
                            timestamp=iso(now(), timespec="seconds"))
    http = local.session("gateway")
    urls = [n["url"] for n in desc["nodes"]]
    r = http.post(urls[0] + "/v1/transactions", json=tx.to_dict(), timeout=30)
    assert r.status_code in (200, 202), r.text
    codes = []
    for url in urls:
        st = http.get(f"{url}/v1/transactions/{tx.tx_id}", params={"wait": 20}, timeout=60).json()
        assert st["status"] in ("committed", "final"), st
        codes.append(st.get("code"))
    assert codes == ["act_unsigned"] * 4, codes
    assert _decisions(stack, permit["id"])["zhujian"]["decision"] == "pending"


def test_a_department_decision_names_its_own_key(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """Every department approves with its own key: the permit is approved and each decision carries the key id
    of that department's approver key, which the chain lists as registered by the department's own member
    (not the gateway); a key the chain does not know is refused unknown_act_key."""
    pid = permit["id"]
    stranger = PrivateKey.generate()
    body = decision_body(stranger, "permit.decide", pid, "shengtai", "approve", None, iso(now(), timespec="seconds"))
    r = call(stack, "POST", f"/api/v1/permits/{pid}/decisions", "approvers.shengtai", body)
    assert (r.status_code, r.json()["reason"]) == (403, "unknown_act_key"), r.text
    for dept in stack.demo["tokens"]["approvers"]:
        r = call(stack, "POST", f"/api/v1/permits/{pid}/decisions", f"approvers.{dept}", stack.decision(dept, pid))
        assert r.status_code == 200, r.text
    assert call(stack, "GET", f"/api/v1/permits/{pid}", "contractor").json()["status"] == "approved"
    local = LocalConsortium(root=stack.var)
    http = local.session("gateway")
    node = local.describe()["nodes"][0]["url"]
    for dept, d in _decisions(stack, pid).items():
        key = read_private_key(stack.demo["approver_keys"][dept])
        assert d["key_id"] == key.key_id, (dept, d)
        reg = http.post(f"{node}/v1/query/actor_key", json={"key_id": key.key_id}, timeout=30).json()["result"]
        assert (reg["actor"], reg["registered_by"], reg["active"]) == (f"approver:{dept}", dept, True), reg


def test_the_permits_export_names_each_department_as_signer(stack: Stack, permit: dict[str, Any],  # noqa: F811
                                                            tmp_path: Path) -> None:
    """The regulator's provenance export of the approved permit names, for each decision, the department's
    own key as signer and the gateway as the member that relayed it; scripts/verify-export says OK, and an
    export whose signer was changed to the gateway fails it."""
    r = call(stack, "GET", f"/api/v1/provenance/permit/{permit['id']}", "regulator")
    assert r.status_code == 200, r.text
    export = r.json()
    decisions = [x for x in export["records"] if x["type"] == "permit.decide" and x["code"] == "valid"]
    assert sorted(x["signer"]["member"] for x in decisions) == sorted(stack.demo["tokens"]["approvers"])
    for x in decisions:
        key = read_private_key(stack.demo["approver_keys"][x["signer"]["member"]])
        assert x["signer"]["key_id"] == key.key_id and x["relayed_by"]["member"] == "gateway", x
    assert verify_export(stack, export, tmp_path).returncode == 0
    forged = copy.deepcopy(export)
    first = next(x for x in forged["records"] if x["type"] == "permit.decide" and x["code"] == "valid")
    first["signer"] = dict(first["relayed_by"])
    done = verify_export(stack, forged, tmp_path)
    assert done.returncode != 0 and "signer differs" in done.stdout, done.stdout


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledger", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


def test_a_department_registers_and_revokes_a_key_with_the_cli(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    """住建 makes a new approver key (``ledger actor-key new``, mode 0600) and registers it through its own node
    with its member key and TLS files; the same registration signed with the gateway's key exits non-zero with
    one line naming ``forbidden``; a decision signed with the new key is valid, and once 住建 revokes the key
    (``actor-key revoke``) a decision signed with it is refused key_revoked."""
    desc = LocalConsortium(root=stack.var).describe()
    tls, node = Path(desc["tls_dir"]), next(n["url"] for n in desc["nodes"] if n["name"] == "zhujian")
    keyfile = tmp_path / "approver-2.pem"
    made = _cli("actor-key", "new", "--actor", "approver:zhujian", "--key", str(keyfile))
    assert made.returncode == 0, made.stderr
    assert oct(keyfile.stat().st_mode & 0o777) == "0o600"
    again = _cli("actor-key", "new", "--actor", "approver:zhujian", "--key", str(keyfile))
    assert again.returncode != 0 and "key_exists" in again.stderr and len(again.stderr.splitlines()) == 1

    def node_args(member: str) -> list[str]:
        return ["--consortium", desc["consortium"], "--member-key", str(Path(desc["keys_dir"]) / f"{member}.pem"),
                "--node", node, "--cert", str(tls / f"{member}.crt"), "--tls-key", str(tls / f"{member}.key"),
                "--ca", str(tls / "ca-bundle.pem")]

    forged = _cli("actor-key", "register", "--actor", "approver:zhujian", "--key", str(keyfile), *node_args("gateway"))
    assert forged.returncode != 0 and "forbidden" in forged.stderr and len(forged.stderr.splitlines()) == 1
    done = _cli("actor-key", "register", "--actor", "approver:zhujian", "--key", str(keyfile), *node_args("zhujian"))
    assert done.returncode == 0, done.stdout + done.stderr
    key = read_private_key(keyfile)
    assert json.loads(done.stdout)["key_id"] == key.key_id
    p = call(stack, "POST", "/api/v1/permits", "contractor", {
        "project_id": "P-001", "volume_m3": "50", "disposal_site_ids": ["S-003"], "company_ids": ["C-01"],
        "valid_from": (now() - timedelta(hours=1)).isoformat(), "valid_to": (now() + timedelta(days=3)).isoformat()})
    assert p.status_code == 201, p.text

    def decide(pid: str) -> requests.Response:
        body = decision_body(key, "permit.decide", pid, "zhujian", "approve", None, iso(now(), timespec="seconds"))
        return call(stack, "POST", f"/api/v1/permits/{pid}/decisions", "approvers.zhujian", body)

    assert decide(p.json()["id"]).status_code == 200
    gone = _cli("actor-key", "revoke", "--key-id", key.key_id, "--reason", "审批人调岗", *node_args("zhujian"))
    assert gone.returncode == 0, gone.stdout + gone.stderr
    q = call(stack, "POST", "/api/v1/permits", "contractor", {
        "project_id": "P-001", "volume_m3": "50", "disposal_site_ids": ["S-003"], "company_ids": ["C-01"],
        "valid_from": (now() - timedelta(hours=1)).isoformat(), "valid_to": (now() + timedelta(days=3)).isoformat()})
    r = decide(q.json()["id"])
    assert (r.status_code, r.json()["reason"]) == (403, "key_revoked"), r.text
