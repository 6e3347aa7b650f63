"""Enforcement acts signed by the officer's department (issue 12 part 3) against the real stack, in a
consortium whose policy lists the violation steps and penalty.record among the acts their actors must sign:
the demo departments registered their enforcement officers' keys with their own member keys; a step or a
penalty relayed by the API unsigned is refused act_unsigned (the gateway alone cannot confirm a violation nor
fine anyone), signed with 城管's key it is recorded, and provenance names the department as the signer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ledger.core.crypto import PrivateKey
from ledger.eticket.acts import DEFAULT_ACT_SIGNED
from ledger.store.keyfiles import read_private_key

from .serve_fixtures import Stack, serve

pytestmark = [pytest.mark.slow]
STEPS = ["violation.confirm", "violation.dismiss", "violation.dispatch", "violation.resolve"]
SIGNED = [*DEFAULT_ACT_SIGNED, *STEPS, "penalty.record"]


def call(s: Stack, method: str, path: str, role: str, body: Any = None) -> requests.Response:
    return requests.request(method, s.api + path, json=body, headers=s.headers(role), timeout=60)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from serve(tmp_path_factory, eticket={"act_signed": SIGNED})


def _report(s: Stack) -> str:
    r = call(s, "POST", "/api/v1/violations", "operator", {
        "type": "uncovered_load", "source": "camera", "plate": "渝A12345", "project_id": "P-001",
        "location": {"lat": 29.71, "lon": 106.53}})
    assert r.status_code == 201, r.text
    return str(r.json()["violation_id"])


def test_steps_and_penalties_need_the_departments_signature(stack: Stack) -> None:
    """A confirm relayed unsigned — for the enforcement officer or the operator — is refused 403
    act_unsigned; signed with 城管's enforcement key it confirms the violation; an unsigned penalty is
    act_unsigned, a signed one is recorded on the violation; the violation's provenance names 城管 as the
    signer of the confirm and the penalty, relayed by the gateway."""
    vid = _report(stack)
    for role in ("enforcement", "operator"):
        r = call(stack, "POST", f"/api/v1/violations/{vid}/confirm", role, {"note": "非误报"})
        assert (r.status_code, r.json()["reason"]) == (403, "act_unsigned"), (role, r.text)
    r = call(stack, "POST", f"/api/v1/violations/{vid}/confirm", "enforcement", stack.step(vid, "confirm", "非误报"))
    assert r.status_code == 200 and r.json()["state"] == "confirmed", r.text
    fields = {"penalty_id": "PN-SIG-1", "target_kind": "truck", "target_id": "TR-0001", "violation_ids": [vid],
              "amount_yuan": "500", "measures": [{"kind": "warning"}]}
    bare = call(stack, "POST", "/api/v1/penalties", "enforcement", fields)
    assert (bare.status_code, bare.json()["reason"]) == (403, "act_unsigned"), bare.text
    r = call(stack, "POST", "/api/v1/penalties", "enforcement", stack.penalty(fields))
    assert r.status_code == 201 and r.json()["penalty_id"] == "PN-SIG-1", r.text
    export = call(stack, "GET", f"/api/v1/provenance/violation/{vid}", "regulator").json()
    by_type = {x["type"]: x for x in export["records"]}
    key_id = read_private_key(stack.demo["enforcement_keys"]["chengguan"]).key_id
    for t in ("violation.confirm", "penalty.record"):
        assert by_type[t]["signer"] == {"key_id": key_id, "member": "chengguan"}, t
        assert by_type[t]["relayed_by"]["member"] == "gateway"


def test_each_step_is_signed_and_another_departments_key_does_not_fit(stack: Stack) -> None:
    """Dispatch and resolve of a confirmed violation, and a dismiss of another, are recorded signed by 城管's
    key; a confirm signed with 住建's enforcement key for 城管's officer is act_key_mismatch, one changed after
    signing (another note) bad_act_signature."""
    vid, other = _report(stack), _report(stack)
    wrong = stack.step(vid, "confirm", "非误报", dept="zhujian")
    r = call(stack, "POST", f"/api/v1/violations/{vid}/confirm", "enforcement", wrong)
    assert r.json()["reason"] == "act_key_mismatch", r.text
    changed = {**stack.step(vid, "confirm", "非误报"), "note": "另一说明"}
    r = call(stack, "POST", f"/api/v1/violations/{vid}/confirm", "enforcement", changed)
    assert r.json()["reason"] == "bad_act_signature", r.text
    for step, text, state in (("confirm", None, "confirmed"), ("dispatch", "悦来街道基层治理中心", "dispatched"),
                              ("resolve", "已处置", "resolved")):
        r = call(stack, "POST", f"/api/v1/violations/{vid}/{step}", "enforcement", stack.step(vid, step, text))
        assert r.status_code == 200 and r.json()["state"] == state, (step, r.text)
    r = call(stack, "POST", f"/api/v1/violations/{other}/dismiss", "enforcement", stack.step(other, "dismiss", "误报"))
    assert r.status_code == 200 and r.json()["state"] == "dismissed", r.text


def test_the_api_cannot_register_an_officers_key(stack: Stack) -> None:
    """The operator registering an enforcement key for 城管 through the API (the gateway's member key) is
    refused 403 forbidden: only 城管's own member key may."""
    key = PrivateKey.generate()
    r = stack.register_key("enforcement:chengguan", key, days=30)
    assert (r.status_code, r.json()["reason"]) == (403, "forbidden"), r.text
