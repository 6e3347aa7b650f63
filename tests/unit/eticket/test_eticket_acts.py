"""Acts signed by their actors (ledger/eticket/acts.py, rules_keys.py): a department's decision needs the
department's own registered key; the gateway can neither sign nor register one."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.core.crypto import PrivateKey
from ledger.eticket.acts import (
    ACT_FIELD,
    act_message,
    act_signature,
    position_point,
    positions_payload,
    public_key_json,
    sign_act,
    split_act,
)
from ledger.eticket.testing import World, make_world
from ledger.eticket.units import iso

DECISION = {"permit_id": "PM-1", "department": "zhujian", "decision": "approve"}


def _world() -> World:
    world = make_world()
    world.sign_acts = False  # these tests sign (or not) by hand
    world.apply_permit("PM-1")
    return world


def _decide(world: World, payload: dict[str, Any], actor: str = "approver:zhujian:u7") -> Any:
    """The API's way: the gateway relays the act."""
    return world.submit("permit.decide", payload, actor, signer="gateway")


def _register(world: World, actor: str, key: PrivateKey, *, by: str, signer: str, **kw: Any) -> Any:
    payload = {"key_id": key.key_id, "actor": actor, "public_key": public_key_json(key),
               "valid_from": iso(world.clock - 60), "valid_until": iso(world.clock + 86400), **kw}
    return world.submit("registry.key", payload, by, signer=signer)


def test_the_gateway_cannot_decide_for_a_department() -> None:
    """An unsigned permit.decide for 住建 relayed by the gateway is refused act_unsigned and changes nothing;
    the same act signed with 住建's registered key is valid and records the decision."""
    world = _world()
    before = world.machine.digest()
    assert _decide(world, DECISION).code == "act_unsigned"
    assert world.machine.digest() == before
    signed = sign_act(world.act_keys["approver:zhujian"], "permit.decide", DECISION)
    assert _decide(world, signed).ok
    [d] = world.machine.state.tables["permit"]["PM-1"].decisions
    assert (d.department, d.actor) == ("zhujian", "approver:zhujian:u7")


def test_another_departments_key_a_changed_act_and_unknown_keys_are_refused() -> None:
    """住建's decision signed with 城管's key: act_key_mismatch; the act changed after signing (approve made
    reject): bad_act_signature; a key never registered: unknown_act_key; a malformed act_sig: malformed."""
    world = _world()
    assert _decide(world, sign_act(world.act_keys["approver:chengguan"], "permit.decide", DECISION)).code == \
        "act_key_mismatch"
    signed = sign_act(world.act_keys["approver:zhujian"], "permit.decide", DECISION)
    assert _decide(world, {**signed, "decision": "reject", "reason": "不同意"}).code == "bad_act_signature"
    assert _decide(world, sign_act(PrivateKey.generate(), "permit.decide", DECISION)).code == "unknown_act_key"
    assert _decide(world, {**DECISION, ACT_FIELD: {"key_id": "x"}}).code == "malformed"
    assert world.machine.state.tables["permit"]["PM-1"].decisions == ()


def test_only_the_department_registers_its_approvers_keys() -> None:
    """An approver key for 住建 registered through the gateway or by 城管's member: forbidden; by 住建's own
    member: valid. A device key is an operator's to register; a key id that is not the key's: malformed."""
    world = _world()
    key = PrivateKey.generate()
    assert _register(world, "approver:zhujian", key, by="admin:zhujian", signer="gateway").code == "forbidden"
    assert _register(world, "approver:zhujian", key, by="admin:zhujian", signer="chengguan").code == "forbidden"
    assert _register(world, "approver:zhujian", key, by="admin:zhujian", signer="zhujian").ok
    gate = PrivateKey.generate()
    assert _register(world, "gate:exit:P-001", gate, by="operator:u1", signer="gateway").ok
    other = PrivateKey.generate()
    assert _register(world, "gate:exit:P-001", other, by="operator:u1", signer="gateway",
                     key_id=gate.key_id).code == "malformed"
    assert _register(world, "driver:D-1", other, by="operator:u1", signer="gateway").code == "malformed"


def test_expired_and_revoked_keys_are_refused_and_old_acts_stay_valid() -> None:
    """A decision signed under a key after its validity ended: key_expired; a key revoked (by its department)
    signs nothing valid afterwards (key_revoked), while the decision it signed before stays on the record and
    a replay of the log gives the same state."""
    world = _world()
    key = world.act_keys["approver:zhujian"]
    assert _decide(world, sign_act(key, "permit.decide", DECISION)).ok
    assert world.submit("registry.key_revoke", {"key_id": key.key_id, "reason": "密钥遗失"}, "admin:zhujian",
                        signer="gateway").code == "forbidden"
    assert world.ok("registry.key_revoke", {"key_id": key.key_id, "reason": "密钥遗失"}, "admin:zhujian",
                    signer="zhujian").ok
    world.apply_permit("PM-2")
    again = {**DECISION, "permit_id": "PM-2"}
    assert _decide(world, sign_act(key, "permit.decide", again)).code == "key_revoked"
    short = PrivateKey.generate()
    assert _register(world, "approver:shengtai", short, by="admin:shengtai", signer="shengtai").ok
    world.advance(2 * 86400)
    act = {**again, "department": "shengtai"}
    assert _decide(world, sign_act(short, "permit.decide", act), "approver:shengtai:u1").code == "key_expired"
    assert len(world.machine.state.tables["permit"]["PM-1"].decisions) == 1
    assert world.replay().digest() == world.machine.digest()


def test_the_signed_bytes_are_the_type_and_the_payload_without_the_signature() -> None:
    """act_message covers the type (a signed decision is not a signed amendment decision) and ignores
    act_sig; split_act returns the payload without it."""
    key = PrivateKey.generate()
    signed = sign_act(key, "permit.decide", DECISION)
    body, sig = split_act(signed)
    assert body == DECISION and sig is not None and sig.key_id == key.key_id
    assert key.public_key.verify(act_message("permit.decide", signed), sig.value)
    assert not key.public_key.verify(act_message("permit.amend_decide", signed), sig.value)


def test_a_key_before_its_validity_signs_nothing_valid() -> None:
    """A key registered to start tomorrow: a decision signed with it today is key_not_yet_valid."""
    world = _world()
    key = PrivateKey.generate()
    assert world.ok("registry.key", {"key_id": key.key_id, "actor": "approver:jiaotong",
                                     "public_key": public_key_json(key), "valid_from": iso(world.clock + 86400),
                                     "valid_until": iso(world.clock + 2 * 86400)},
                    "admin:jiaotong", signer="jiaotong").ok
    act = {**DECISION, "department": "jiaotong"}
    assert _decide(world, sign_act(key, "permit.decide", act), "approver:jiaotong:u1").code == "key_not_yet_valid"


def test_key_ids_and_signatures_are_not_mistaken_for_personal_data() -> None:
    """A key id whose hex digits happen to read like a mobile number (13800138000…) and a signature are
    not screened as personal data (the demo's seeding once failed on one); a key id must be 16 hex digits,
    so nothing else can hide in it; a mobile number in a reason is still refused."""
    from ledger.eticket import pii
    from ledger.eticket.errors import PayloadError, PersonalData
    from ledger.eticket.schema import validate

    pii.screen({"key_id": "1380013800012ab3", "act_sig": {"key_id": "1380013800012ab3", "value": "13800138000"},
                "public_key": {"alg": "ed25519", "value": "13800138000"}})
    with pytest.raises(PersonalData):
        pii.screen({"key_id": "1380013800012ab3", "reason": "联系 13800138000"})
    with pytest.raises(PayloadError):
        validate("registry.key_revoke", {"key_id": "张三13800138000", "reason": "遗失"})


def _gps_world() -> tuple[World, str]:
    """A world whose policy wants GPS batches signed, with a departed ticket of TR-1 (terminal GPS-TR-1)."""
    world = make_world({"act_signed": ["permit.decide", "trip.positions"]})
    world.approved_permit("PM-1")
    assert world.issue("T-1").ok and world.depart("T-1").ok
    world.advance(60)
    return world, "T-1"


def test_a_gps_batch_needs_its_terminals_signature() -> None:
    """With trip.positions in act_signed, a batch relayed unsigned is act_unsigned and one signed by the
    terminal's key over other points bad_act_signature; the batch positions_payload builds, signed by the key an
    operator registered for gps:GPS-TR-1, is recorded, and another terminal's key is act_key_mismatch."""
    world, tid = _gps_world()
    world.sign_acts = False
    key = world.register_act_key("gps:GPS-TR-1")
    other = world.register_act_key("gps:GPS-TR-2")
    stamp = iso(world.clock)
    points = [position_point(iso(world.clock - 30 * i), 29.71203, 106.53031, 30.04) for i in (2, 1, 0)]
    payload = positions_payload(tid, points, stamp)
    assert world.submit("trip.positions", payload, "gps:GPS-TR-1").code == "act_unsigned"
    forged = {**payload, ACT_FIELD: act_signature(key, "trip.positions", positions_payload(tid, points[:1], stamp))}
    assert world.submit("trip.positions", forged, "gps:GPS-TR-1").code == "bad_act_signature"
    assert world.submit("trip.positions", sign_act(other, "trip.positions", payload), "gps:GPS-TR-1").code == \
        "act_key_mismatch"
    assert world.submit("trip.positions", sign_act(key, "trip.positions", payload), "gps:GPS-TR-1").ok
    assert world.machine.state.tables["ticket"][tid].points == 3


def test_positions_payload_is_the_apis_batch() -> None:
    """position_point rounds as the API does (6 decimals, 0.1 km/h); positions_payload orders the points by
    time and names the batch by their digest, so a terminal and the API build the same bytes from the same
    points in any order."""
    pts = [position_point("2026-11-23T22:10:35+08:00", 29.7091234, 106.5200449, 32.54),
           position_point("2026-11-23T22:10:05+08:00", 29.70911, 106.52004, 31.0)]
    assert pts[0] == {"t": "2026-11-23T22:10:35+08:00", "lat": 29.709123, "lon": 106.520045, "speed_kmh": 32.5}
    a = positions_payload("ET1", pts, "2026-11-23T22:11:00+08:00")
    b = positions_payload("ET1", pts[::-1], "2026-11-23T22:11:00+08:00")
    assert a == b and [p["t"] for p in a["points"]] == sorted(p["t"] for p in pts)
    assert a["batch_id"].startswith("b") and len(a["batch_id"]) == 21
    assert positions_payload("ET1", pts[:1], a["time"])["batch_id"] != a["batch_id"]


def test_the_full_policy_is_a_valid_parameter_naming_every_act_the_issue_lists() -> None:
    """FULL_ACT_SIGNED is accepted as eticket.act_signed and names permit.decide, both gate types,
    camera.sighting, trip.positions, the four violation steps and penalty.record; the default stays the
    decisions."""
    from ledger.eticket.acts import DEFAULT_ACT_SIGNED, ENFORCEMENT_ACTS, FULL_ACT_SIGNED
    from ledger.eticket.params import Params

    assert Params.from_mapping({"act_signed": list(FULL_ACT_SIGNED)}).act_signed == FULL_ACT_SIGNED
    assert {"permit.decide", "permit.amend_decide", "gate.exit", "gate.receipt", "camera.sighting",
            "trip.positions", "violation.confirm", "violation.dismiss", "violation.dispatch", "violation.resolve",
            "penalty.record"} == set(FULL_ACT_SIGNED) >= set(ENFORCEMENT_ACTS)
    assert Params().act_signed == DEFAULT_ACT_SIGNED
