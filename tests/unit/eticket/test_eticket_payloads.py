"""Admission: payload shapes, units, plates, actor kinds (stateless checks)."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.errors import LedgerError
from ledger.eticket import EticketMachine, PayloadError, Refusal, UnknownType
from ledger.eticket.schema import TYPES, validate
from ledger.eticket.testing import PERSON, PHOTO, make_world
from ledger.eticket.units import decimal_units, deg_text, is_plate, litres, m3_text

GOOD: dict[str, dict[str, Any]] = {
    "registry.org": {"org_id": "O-1", "name": "某建设公司", "kind": "contractor"},
    "registry.project": {
        "project_id": "P-9",
        "name": "x",
        "contractor_org_id": "O-1",
        "location": {"lat": 29.5, "lon": 106.5},
        "planned_volume_m3": 100,
    },
    "registry.site": {
        "site_id": "S-9",
        "name": "x",
        "kind": "landfill",
        "capacity_m3": "10",
        "location": {"lat": "29.5", "lon": "106.5"},
    },
    "registry.company": {"company_id": "C-9", "name": "x"},
    "registry.truck": {"truck_id": "TR-9", "plate": "渝A99999", "company_id": "C-9", "capacity_m3": 18},
    "registry.driver": {"driver_id": "D-9", "company_id": "C-9", "person_hash": PERSON},
    "permit.apply": {
        "permit_id": "PM-9",
        "project_id": "P-9",
        "volume_m3": 100,
        "site_ids": ["S-9"],
        "company_ids": ["C-9"],
        "valid_from": "2026-11-23T00:00:00+08:00",
        "valid_to": "2026-12-23T00:00:00+08:00",
    },
    "permit.decide": {"permit_id": "PM-9", "department": "zhujian", "decision": "approve"},
    "permit.revoke": {"permit_id": "PM-9", "reason": "整改"},
    "permit.amend": {"amendment_id": "A-9", "permit_id": "PM-9", "add_site_ids": ["S-002"]},
    "permit.amend_decide": {"amendment_id": "A-9", "department": "zhujian", "decision": "approve"},
    "ticket.issue": {
        "ticket_id": "T-9",
        "permit_id": "PM-9",
        "truck_id": "TR-9",
        "site_id": "S-9",
        "volume_m3": 15.5,
    },
    "ticket.void": {"ticket_id": "T-9", "reason": "改派"},
    "gate.exit": {
        "ticket_id": "T-9",
        "gate_id": "G",
        "plate": "渝A99999",
        "covered": True,
        "photo_digest": PHOTO,
    },
    "trip.positions": {
        "ticket_id": "T-9",
        "batch_id": "b",
        "points": [{"t": "2026-11-23T22:00:00+08:00", "lat": 29.5, "lon": 106.5, "speed_kmh": 30}],
    },
    "gate.receipt": {"ticket_id": "T-9", "gate_id": "G", "plate": "渝A99999", "weight_t": "28.4"},
    "violation.report": {
        "violation_id": "FGBY2026112322100500001",
        "type": "uncovered_load",
        "source": "camera",
    },
    "violation.confirm": {"violation_id": "FGBY2026112322100500001"},
    "violation.dismiss": {"violation_id": "FGBY2026112322100500001", "note": "误报"},
    "violation.dispatch": {"violation_id": "FGBY2026112322100500001", "centre": "巴福镇基层治理中心"},
    "violation.resolve": {"violation_id": "FGBY2026112322100500001", "result": "已处置"},
    "penalty.record": {
        "penalty_id": "PN-1",
        "target_kind": "truck",
        "target_id": "TR-9",
        "amount_yuan": "200.50",
    },
    "system.tick": {},
    "registry.camera": {"camera_id": "CAM-1", "placement": "exit", "project_id": "P-001"},
    "camera.sighting": {"sighting_id": "SG-1", "camera_id": "CAM-1", "plate": "渝A99999", "covered": True,
                        "photo_digest": "sha256:" + "ab" * 32, "time": "2026-11-23T22:00:00+08:00"},
    "registry.key": {"key_id": "0123456789abcdef", "actor": "approver:zhujian",
                     "public_key": {"alg": "ed25519", "value": "A" * 43 + "="},
                     "valid_from": "2026-11-23T00:00:00+08:00", "valid_until": "2027-11-23T00:00:00+08:00"},
    "registry.key_revoke": {"key_id": "0123456789abcdef", "reason": "密钥遗失"},
}


def test_every_type_has_a_good_example() -> None:
    """Every transaction type validates its documented minimal payload."""
    assert set(GOOD) == TYPES
    for tx_type, payload in GOOD.items():
        validate(tx_type, payload)


@pytest.mark.parametrize("tx_type", sorted(t for t in GOOD if GOOD[t]))
def test_missing_field_is_malformed(tx_type: str) -> None:
    """Dropping a required field of any type is refused as malformed."""
    payload = dict(GOOD[tx_type])
    payload.pop(next(iter(payload)))
    with pytest.raises(PayloadError) as exc:
        validate(tx_type, payload)
    assert exc.value.reason == "malformed"


@pytest.mark.parametrize("tx_type", sorted(GOOD))
def test_unknown_field_is_malformed(tx_type: str) -> None:
    """An unknown member (a typo) is refused as malformed for every type."""
    with pytest.raises(PayloadError):
        validate(tx_type, {**GOOD[tx_type], "volumn_m3": 1})


def test_personal_data_never_goes_on_chain() -> None:
    """A driver payload carrying a name, ID number or phone is refused with a pointer to person_hash."""
    for key in ("name", "id_number", "phone"):
        with pytest.raises(PayloadError, match="person_hash"):
            validate("registry.driver", {**GOOD["registry.driver"], key: "张三"})


def test_unknown_type() -> None:
    """An unknown transaction type raises UnknownType (reason unknown_type), a LedgerError."""
    with pytest.raises(UnknownType) as exc:
        validate("ticket.teleport", {})
    assert isinstance(exc.value, LedgerError) and exc.value.reason == "unknown_type"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("volume_m3", "15.5555"),
        ("volume_m3", -1),
        ("volume_m3", True),
        ("volume_m3", "1e3"),
        ("volume_m3", 0),
        ("ticket_id", "has space"),
        ("ticket_id", "x" * 65),
        ("time", "2026-11-23T22:00:00"),
        ("time", "yesterday"),
    ],
)
def test_bad_values_are_malformed(field: str, value: object) -> None:
    """Too many decimals, negative/zero/boolean volumes, bad ids and times without offset are malformed."""
    with pytest.raises(PayloadError):
        validate("ticket.issue", {**GOOD["ticket.issue"], field: value})


def test_units_are_exact_integers() -> None:
    """Volumes become litres, coordinates micro-degrees, money fen — exactly, from numbers or strings."""
    assert litres("15.5", what="v") == litres(15.5, what="v") == 15500
    assert decimal_units(29.563012, scale=6, what="lat") == 29_563_012
    assert decimal_units("200.50", scale=2, what="m") == 20050
    assert m3_text(15500) == "15.5" and m3_text(16000) == "16"
    assert deg_text(-1_500_000) == "-1.500000"
    p = validate("ticket.issue", GOOD["ticket.issue"])
    assert p["volume_m3"] == 15500


@pytest.mark.parametrize("plate", ["渝A12345", "渝AD12345", "渝A12345D", "京B0A12F", "川A1234挂", "粤BF12345"])
def test_plates_accepted(plate: str) -> None:
    """Ordinary 7-char plates and new-energy 8-char plates (D/F) are valid."""
    assert is_plate(plate)


@pytest.mark.parametrize("plate", ["渝a12345", "渝A1234", "XA12345", "渝I12345", "渝A123456", "渝AD1234X", ""])
def test_plates_refused(plate: str) -> None:
    """Lower case, short, non-province, I/O letters and malformed new-energy plates are refused."""
    assert not is_plate(plate)


def test_cross_field_rules() -> None:
    """valid_to after valid_from; a permit needs trucks or companies; rejections need a reason;
    receipts need volume or weight; suspend measures need days; empty GPS batches need a digest."""
    cases = [
        ("permit.apply", {"valid_to": GOOD["permit.apply"]["valid_from"]}),
        ("permit.apply", {"company_ids": []}),
        ("permit.decide", {"decision": "reject"}),
        ("gate.receipt", {"weight_t": None}),
        ("penalty.record", {"measures": [{"kind": "suspend"}]}),
        ("trip.positions", {"points": []}),
    ]
    for tx_type, change in cases:
        with pytest.raises(PayloadError):
            validate(tx_type, {**GOOD[tx_type], **change})


def test_points_in_time_order_and_batch_limit() -> None:
    """GPS points must be in time order and at most max_points_per_batch."""
    pt = GOOD["trip.positions"]["points"][0]
    late = {**pt, "t": "2026-11-23T21:00:00+08:00"}
    with pytest.raises(PayloadError, match="time order"):
        validate("trip.positions", {**GOOD["trip.positions"], "points": [pt, late]})
    with pytest.raises(PayloadError, match="at most"):
        validate("trip.positions", {**GOOD["trip.positions"], "points": [pt] * 3}, max_points=2)


def test_admit_checks_payload_and_actor_kind() -> None:
    """admit raises malformed for bad payloads and forbidden for an actor kind not allowed for the type."""
    world = make_world(registry=False)
    machine = EticketMachine.from_consortium(world.consortium)
    machine.admit(world.tx("registry.org", GOOD["registry.org"], "operator:u1"), world.consortium)
    with pytest.raises(PayloadError):
        machine.admit(world.tx("registry.org", {"org_id": "O"}, "operator:u1"), world.consortium)
    with pytest.raises(Refusal) as exc:
        machine.admit(world.tx("registry.org", GOOD["registry.org"], "contractor:O-1"), world.consortium)
    assert exc.value.reason == "forbidden"


def test_apply_refuses_malformed_without_raising() -> None:
    """apply never raises on bad input: a malformed payload or unknown type becomes an outcome code."""
    world = make_world(registry=False)
    before = world.machine.digest()
    assert world.submit("registry.org", {"org_id": 5}).code == "malformed"
    assert world.submit("registry.teleport", {}).code == "unknown_type"
    assert world.submit("gate.exit", GOOD["gate.exit"], "contractor:O-1").code == "forbidden"
    assert world.machine.digest() == before
