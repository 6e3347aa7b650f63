"""Enforcement acts signed by the officer's department (ledger/eticket/staff_acts.py, rules_keys.py): violation
steps and penalty.record need the key a department registered for ``enforcement:<department>`` when the
consortium lists them in act_signed; the gateway can neither sign nor register such a key."""

from __future__ import annotations

from typing import Any

from ledger.core.crypto import PrivateKey
from ledger.eticket import queries
from ledger.eticket.acts import act_message, public_key_json, sign_act, split_act
from ledger.eticket.staff_acts import penalty_body, penalty_payload, step_body, step_payload
from ledger.eticket.testing import PHOTO, World, make_world
from ledger.eticket.units import iso

VID = "LZZTC2026112320000000001"
STEPS = ["violation.confirm", "violation.dismiss", "violation.dispatch", "violation.resolve", "penalty.record"]
OFFICER = "enforcement:chengguan:u7"


def _world() -> World:
    world = make_world({"act_signed": ["permit.decide", *STEPS]})
    world.sign_acts = False  # these tests sign (or not) by hand
    world.ok("violation.report", {"violation_id": VID, "type": "unapproved_disposal", "source": "camera",
                                  "evidence": [PHOTO], "plate": "渝A12345"}, "camera:CAM-7")
    return world


def _register(world: World, key: PrivateKey, actor: str, by: str, signer: str) -> Any:
    """``registry.key`` of ``key`` for ``actor``, valid for a day, by actor ``by`` signed by member ``signer``."""
    return world.submit("registry.key", {"key_id": key.key_id, "actor": actor, "public_key": public_key_json(key),
                                         "valid_from": iso(world.clock - 60), "valid_until": iso(world.clock + 86400)},
                        by, signer=signer)


def test_only_a_department_registers_its_officers_key() -> None:
    """An enforcement key for 城管 registered through the gateway (an operator's request) or by 住建's member
    is forbidden; by 城管's own member it is valid; an enforcement key must name a configured department."""
    world = _world()
    key = PrivateKey.generate()

    def register(actor: str, by: str, signer: str) -> Any:
        return _register(world, key, actor, by, signer)

    assert register("enforcement:chengguan", "operator:u1", "gateway").code == "forbidden"
    assert register("enforcement:chengguan", "admin:zhujian", "zhujian").code == "forbidden"
    assert register("enforcement:cg-yubei", "admin:chengguan", "chengguan").code == "malformed"
    assert register("enforcement:chengguan", "admin:chengguan", "chengguan").ok


def test_violation_steps_and_penalties_need_the_departments_key() -> None:
    """With the steps and penalty.record in act_signed: a confirm relayed unsigned is act_unsigned and changes
    nothing; signed by 住建's officers' key for a 城管 officer act_key_mismatch; signed by 城管's key it is
    valid, and so is a signed penalty on the confirmed violation, while the same penalty changed after
    signing (a smaller fine) is bad_act_signature."""
    world = _world()
    cg = world.register_act_key("enforcement:chengguan")
    zj = world.register_act_key("enforcement:zhujian")
    confirm = step_payload("confirm", VID, "非误报", iso(world.clock))
    before = world.machine.digest()
    assert world.submit("violation.confirm", confirm, OFFICER).code == "act_unsigned"
    assert world.machine.digest() == before
    assert world.submit("violation.confirm", sign_act(zj, "violation.confirm", confirm), OFFICER).code == \
        "act_key_mismatch"
    assert world.ok("violation.confirm", sign_act(cg, "violation.confirm", confirm), OFFICER).ok
    fine = penalty_payload("PN-1", "company", "C-01", "5000", iso(world.clock), violation_ids=[VID],
                           measures=[{"kind": "suspend", "days": 3}])
    signed = sign_act(cg, "penalty.record", fine)
    assert world.submit("penalty.record", {**signed, "amount_yuan": "50"}, OFFICER).code == "bad_act_signature"
    assert world.submit("penalty.record", fine, OFFICER).code == "act_unsigned"
    assert world.ok("penalty.record", signed, OFFICER).ok
    assert queries.violation(world.machine, VID)["penalty_ids"] == ["PN-1"]  # type: ignore[index]


def test_every_step_is_signed_by_the_department() -> None:
    """dismiss (on another report), dispatch and resolve each refused act_unsigned unsigned and valid signed by
    the department's enforcement key; step_payload carries only the step's own text field."""
    world = _world()
    cg = world.register_act_key("enforcement:chengguan")
    world.ok("violation.confirm", sign_act(cg, "violation.confirm", step_payload("confirm", VID, None,
                                                                                 iso(world.clock))), OFFICER)
    for step, text in (("dispatch", "巴福镇基层治理中心"), ("resolve", "已处置")):
        p = step_payload(step, VID, text, iso(world.clock))
        assert set(p) == {"violation_id", {"dispatch": "centre", "resolve": "result"}[step], "time"}
        assert world.submit(f"violation.{step}", p, OFFICER).code == "act_unsigned"
        assert world.ok(f"violation.{step}", sign_act(cg, f"violation.{step}", p), OFFICER).ok
    other = "LZZTC2026112320000000002"
    world.ok("violation.report", {"violation_id": other, "type": "other", "source": "patrol"}, "camera:CAM-7")
    p = step_payload("dismiss", other, "误报", iso(world.clock))
    assert world.submit("violation.dismiss", p, OFFICER).code == "act_unsigned"
    assert world.ok("violation.dismiss", sign_act(cg, "violation.dismiss", p), OFFICER).ok
    assert world.replay().digest() == world.machine.digest()


def test_the_request_bodies_carry_a_signature_over_the_apis_payload() -> None:
    """step_body and penalty_body sign exactly the payload the API builds from the body (step_payload,
    penalty_payload): the signature verifies over it."""
    key = PrivateKey.generate()
    at = "2026-11-23T22:11:00+08:00"
    body = step_body(key, "dispatch", VID, "中心", at)
    payload = step_payload("dispatch", VID, body["centre"], body["time"])
    _, sig = split_act({**payload, "act_sig": body["act_sig"]})
    assert sig is not None and key.public_key.verify(act_message("violation.dispatch", payload), sig.value)
    fields = {"penalty_id": "PN-2", "target_kind": "truck", "target_id": "TR-1", "amount_yuan": "200",
              "violation_ids": [VID], "measures": [{"kind": "warning"}], "decision_no": "渝城罚〔2026〕1号"}
    pb = penalty_body(key, fields, at)
    assert {k: pb[k] for k in fields} == fields and pb["time"] == at
    payload = penalty_payload("PN-2", "truck", "TR-1", "200", at, violation_ids=[VID],
                              measures=[{"kind": "warning"}], decision_no="渝城罚〔2026〕1号")
    assert sign_act(key, "penalty.record", payload)["act_sig"] == pb["act_sig"]


def test_the_governance_centres_operators_sign_their_steps_with_a_key_a_department_registered() -> None:
    """The centre's operators (actor ``operator:<pseudonym>``) confirm, dismiss and dispatch events with the key
    of actor ``operator``: registered through the gateway (an operator's own request) it is forbidden, for
    ``operator:<someone>`` malformed, by a department's own member valid; a confirm unsigned is then
    act_unsigned, signed by that key valid, and an enforcement officer's key signs no operator's step."""
    world = _world()
    key = PrivateKey.generate()

    def register(actor: str, by: str, signer: str) -> Any:
        return _register(world, key, actor, by, signer)

    assert register("operator", "operator:u1", "gateway").code == "forbidden"
    assert register("operator:u1", "admin:chengguan", "chengguan").code == "malformed"
    assert register("operator", "admin:chengguan", "chengguan").ok
    officer = world.register_act_key("enforcement:chengguan")
    confirm = step_payload("confirm", VID, "非误报", iso(world.clock))
    assert world.submit("violation.confirm", confirm, "operator:u3").code == "act_unsigned"
    assert world.submit("violation.confirm", sign_act(officer, "violation.confirm", confirm), "operator:u3").code \
        == "act_key_mismatch"
    assert world.ok("violation.confirm", sign_act(key, "violation.confirm", confirm), "operator:u3").ok


def test_a_town_centre_resolves_with_a_key_a_department_registered() -> None:
    """A town centre (actor ``centre:<id>``, its staff ``centre:<id>:<pseudonym>``) resolves a violation
    dispatched to it with its own key: registered through the gateway it is forbidden, for a bare ``centre``
    malformed, by a department's own member valid; the resolve is then act_unsigned unsigned, act_key_mismatch
    signed by another centre's key, and valid signed by the centre's key."""
    world = _world()
    officer = world.register_act_key("enforcement:chengguan")
    for step, text in (("confirm", None), ("dispatch", "悦来街道基层治理中心")):
        world.ok(f"violation.{step}", sign_act(officer, f"violation.{step}", step_payload(step, VID, text,
                                                                                          iso(world.clock))), OFFICER)
    key = PrivateKey.generate()
    assert _register(world, key, "centre:YL-01", "operator:u1", "gateway").code == "forbidden"
    assert _register(world, key, "centre", "admin:chengguan", "chengguan").code == "malformed"
    assert _register(world, key, "centre:YL-01", "admin:chengguan", "chengguan").ok
    other = world.register_act_key("centre:BF-02")
    resolve = step_payload("resolve", VID, "已清运并恢复路面", iso(world.clock))
    staff = "centre:YL-01:u9"
    assert world.submit("violation.resolve", resolve, staff).code == "act_unsigned"
    assert world.submit("violation.resolve", sign_act(other, "violation.resolve", resolve), staff).code == \
        "act_key_mismatch"
    assert world.ok("violation.resolve", sign_act(key, "violation.resolve", resolve), staff).ok
    assert queries.violation(world.machine, VID)["state"] == "resolved"  # type: ignore[index]
    assert world.replay().digest() == world.machine.digest()
