"""Stateless payload validation: every transaction type's fields, parsed to integer units."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ledger.eticket import acts, units
from ledger.eticket.errors import PayloadError, UnknownType

Parser = Callable[[object, str], Any]

VIOLATION_TYPES: Mapping[str, str] = {
    "no_ticket": "WPYS",
    "unapproved_disposal": "LZZTC",
    "uncovered_load": "FGBY",
    "overloaded": "CZYS",
    "spilling": "SLWR",
    "speeding": "CSXS",
    "off_route": "PLXS",
    "suspicious_stop": "YCTK",
    "suspected_dumping": "YSTD",
    "other": "QTSJ",
    "outside_hours": "FSDYS",  # 非规定时段运输
    "forbidden_zone": "JXQY",  # 驶入禁行区域
}
SITE_KINDS = ("landfill", "recycling", "backfill")
CAMERA_PLACEMENTS = ("exit", "disposal", "road")
ORG_KINDS = ("contractor", "transport", "site_operator", "department", "other")
PERSONAL_FIELDS = frozenset(
    {
        "name",
        "full_name",
        "id_number",
        "id_card",
        "idcard",
        "phone",
        "mobile",
        "telephone",
        "address",
        "licence_no",
    }
)
_VIOLATION_ID_RE = re.compile(r"^[A-Z]{2,6}[0-9]{14,24}$")


@dataclass(frozen=True)
class Field:
    """One payload member: its parser and whether it must be present (and not null)."""

    parse: Parser
    required: bool = True


def opt(parser: Parser) -> Field:
    """An optional field (absent or null means "not given")."""
    return Field(parser, required=False)


# -- parsers --------------------------------------------------------------
def p_id(v: object, what: str) -> str:
    if not units.is_id(v):
        raise PayloadError(f"{what} must be an id matching {units.ID_RE.pattern}")
    return str(v)


def p_violation_id(v: object, what: str) -> str:
    if not isinstance(v, str) or not _VIOLATION_ID_RE.match(v):
        raise PayloadError(f"{what} must look like LZZTC2026112322103100042")
    return v


def text(max_len: int, min_len: int = 1) -> Parser:
    def parse(v: object, what: str) -> str:
        if not isinstance(v, str) or not min_len <= len(v.strip()) <= max_len:
            raise PayloadError(f"{what} must be a text of {min_len} to {max_len} characters")
        return v

    return parse


def enum(*choices: str) -> Parser:
    def parse(v: object, what: str) -> str:
        if v not in choices:
            raise PayloadError(f"{what} must be one of {', '.join(choices)}")
        return str(v)

    return parse


def volume(minimum: int = 0) -> Parser:
    def parse(v: object, what: str) -> int:
        return units.litres(v, what=what, minimum=minimum)

    return parse


def integer(lo: int, hi: int) -> Parser:
    def parse(v: object, what: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise PayloadError(f"{what} must be an integer from {lo} to {hi}")
        return v

    return parse


def p_time(v: object, what: str) -> int:
    return units.epoch(v, what=what)


def p_bool(v: object, what: str) -> bool:
    if not isinstance(v, bool):
        raise PayloadError(f"{what} must be true or false")
    return v


def p_true(v: object, what: str) -> bool:
    if v is not True:
        raise PayloadError(f"{what} may only be true")
    return True


def p_digest(v: object, what: str) -> str:
    if not units.is_digest(v):
        raise PayloadError(f"{what} must be 'sha256:<64 lower-case hex>'")
    return str(v)


def p_plate(v: object, what: str) -> str:
    if not units.is_plate(v):
        raise PayloadError(f"{what} is not a Chinese vehicle plate (e.g. 渝A12345, 渝AD12345)")
    return str(v)


def p_credit_code(v: object, what: str) -> str:
    if not units.is_credit_code(v):
        raise PayloadError(f"{what} must be an 18-character unified social credit code")
    return str(v)


def p_location(v: object, what: str) -> tuple[int, int]:
    if not isinstance(v, Mapping) or set(v) != {"lat", "lon"}:
        raise PayloadError(f"{what} must be {{lat, lon}}")
    return (
        units.micro_degrees(v["lat"], what=f"{what}.lat", limit=90),
        units.micro_degrees(v["lon"], what=f"{what}.lon", limit=180),
    )


def p_money(v: object, what: str) -> int:
    return units.decimal_units(v, scale=2, what=what, minimum=0, maximum=10**11)


def p_speed(v: object, what: str) -> int:
    return units.decimal_units(v, scale=1, what=what, minimum=0, maximum=5000)


def p_weight(v: object, what: str) -> int:
    return units.decimal_units(v, scale=3, what=what, minimum=1, maximum=10**9)


def items(item: Parser, lo: int, hi: int, *, unique: bool = True) -> Parser:
    def parse(v: object, what: str) -> tuple[Any, ...]:
        if not isinstance(v, list | tuple) or not lo <= len(v) <= hi:
            raise PayloadError(f"{what} must be a list of {lo} to {hi} items")
        try:
            out = tuple([item(x, what) for x in v])
        except PayloadError:
            for i, x in enumerate(v):  # find the culprit for a precise message
                item(x, f"{what}[{i}]")
            raise
        if unique and len(set(out)) != len(out):
            raise PayloadError(f"{what} has duplicates")
        return out

    return parse


_POINT_KEYS = frozenset({"t", "lat", "lon", "speed_kmh"})


def p_point(v: object, what: str) -> dict[str, Any]:
    """A GPS point ``{t, lat, lon, speed_kmh}`` (a hand-written fast path: batches hold hundreds)."""
    if type(v) is not dict or v.keys() != _POINT_KEYS:
        raise PayloadError(f"{what} must be {{t, lat, lon, speed_kmh}}")
    du = units.decimal_units
    return {
        "t": units.epoch(v["t"], what="point.t"),
        "lat": du(v["lat"], scale=6, what="point.lat", minimum=-90_000_000, maximum=90_000_000),
        "lon": du(v["lon"], scale=6, what="point.lon", minimum=-180_000_000, maximum=180_000_000),
        "speed_kmh": du(v["speed_kmh"], scale=1, what="point.speed_kmh", maximum=5000),
    }


def obj(spec: Mapping[str, Field]) -> Parser:
    def parse(v: object, what: str) -> dict[str, Any]:
        if not isinstance(v, Mapping):
            raise PayloadError(f"{what} must be an object")
        return parse_fields(v, spec, what)

    return parse


def parse_fields(raw: Mapping[str, Any], spec: Mapping[str, Field], what: str) -> dict[str, Any]:
    """Check ``raw`` against ``spec``: no unknown members, required ones present; return parsed values."""
    if not raw.keys() <= spec.keys():
        extra = sorted(k for k in raw if k not in spec)
        personal = [k for k in extra if k.lower() in PERSONAL_FIELDS]
        if personal:
            raise PayloadError(f"{what}: personal data {personal} must not go on the chain; submit a person_hash")
        raise PayloadError(f"{what} has unknown fields {extra}")
    out: dict[str, Any] = {}
    for name, field in spec.items():
        value = raw.get(name)
        if value is None:
            if field.required:
                raise PayloadError(f"{what} lacks {name!r}")
            out[name] = None
            continue
        out[name] = field.parse(value, f"{what}.{name}" if what != "payload" else name)
    return out


# -- the transaction types -----------------------------------------------
ID = Field(p_id)
KEY_ID = Field(acts.key_id_field)
TIME = opt(p_time)
REASON = Field(text(500))
UPDATE = opt(p_true)
_OFFCHAIN = obj(
    {
        "sha256": Field(lambda v, w: p_digest(f"sha256:{v}" if isinstance(v, str) else v, w)),
        "count": Field(integer(0, 100_000)),
        "uri": opt(text(500)),
    }
)
_MEASURE = obj({"kind": Field(enum("suspend", "warning", "rectify")), "days": opt(integer(1, 3650))})
_VIOLATION_STEP = {"violation_id": Field(p_violation_id), "note": opt(text(500)), "time": TIME}

SPECS: Mapping[str, Mapping[str, Field]] = {
    "registry.org": {
        "org_id": ID,
        "name": Field(text(200)),
        "kind": Field(enum(*ORG_KINDS)),
        "credit_code": opt(p_credit_code),
        "update": UPDATE,
        "time": TIME,
    },
    "registry.project": {
        "project_id": ID,
        "name": Field(text(200)),
        "contractor_org_id": ID,
        "location": Field(p_location),
        "address": opt(text(300)),
        "district": opt(text(100)),
        "town": opt(text(100)),
        "planned_volume_m3": Field(volume()),
        "update": UPDATE,
        "time": TIME,
    },
    "registry.site": {
        "site_id": ID,
        "name": Field(text(200)),
        "kind": Field(enum(*SITE_KINDS)),
        "capacity_m3": Field(volume(1)),
        "location": Field(p_location),
        "alarm_threshold_pct": opt(integer(1, 100)),
        "operator_org_id": opt(p_id),
        "initial_load_m3": opt(volume()),
        "town": opt(text(100)),
        "update": UPDATE,
        "time": TIME,
    },
    "registry.company": {
        "company_id": ID,
        "name": Field(text(200)),
        "org_id": opt(p_id),
        "credit_code": opt(p_credit_code),
        "update": UPDATE,
        "time": TIME,
    },
    "registry.truck": {
        "truck_id": ID,
        "plate": Field(p_plate),
        "company_id": ID,
        "capacity_m3": Field(volume(1)),
        "status": opt(enum("active", "retired")),
        "terminal_id": opt(p_id),
        "update": UPDATE,
        "time": TIME,
    },
    "registry.driver": {
        "driver_id": ID,
        "company_id": ID,
        "person_hash": Field(p_digest),
        "licence_class": opt(text(8)),
        "update": UPDATE,
        "time": TIME,
    },
    "permit.apply": {
        "permit_id": ID,
        "project_id": ID,
        "volume_m3": Field(volume(1)),
        "site_ids": Field(items(p_id, 1, 50)),
        "truck_ids": opt(items(p_id, 0, 2000)),
        "company_ids": opt(items(p_id, 0, 200)),
        "valid_from": Field(p_time),
        "valid_to": Field(p_time),
        "route": opt(items(p_location, 1, 50, unique=False)),
        "time": TIME,
    },
    "permit.decide": {
        "permit_id": ID,
        "department": ID,
        "decision": Field(enum("approve", "reject")),
        "reason": opt(text(500)),
        "time": TIME,
    },
    "permit.revoke": {"permit_id": ID, "reason": REASON, "time": TIME},
    "permit.amend": {
        "amendment_id": ID,
        "permit_id": ID,
        "add_site_ids": opt(items(p_id, 0, 50)),
        "add_truck_ids": opt(items(p_id, 0, 2000)),
        "add_company_ids": opt(items(p_id, 0, 200)),
        "reason": opt(text(500)),
        "time": TIME,
    },
    "permit.amend_decide": {
        "amendment_id": ID,
        "department": ID,
        "decision": Field(enum("approve", "reject")),
        "reason": opt(text(500)),
        "time": TIME,
    },
    "ticket.issue": {
        "ticket_id": ID,
        "permit_id": ID,
        "truck_id": ID,
        "site_id": ID,
        "volume_m3": Field(volume(1)),
        "driver_id": opt(p_id),
        "expected_minutes": opt(integer(1, 1440)),
        "time": TIME,
    },
    "ticket.void": {"ticket_id": ID, "reason": REASON, "time": TIME},
    "gate.exit": {
        "ticket_id": ID,
        "gate_id": ID,
        "plate": Field(p_plate),
        "covered": Field(p_bool),
        "photo_digest": opt(p_digest),  # the exit camera's photo; a gate without one still records the exit
        "offline": opt(p_true),  # a scan an offline gate let through, synced later (rules_revoked)
        "time": TIME,
    },
    "trip.positions": {
        "ticket_id": ID,
        "batch_id": ID,
        "points": Field(items(p_point, 0, 100_000, unique=False)),
        "offchain": opt(_OFFCHAIN),
        "time": TIME,
    },
    "gate.receipt": {
        "ticket_id": ID,
        "gate_id": ID,
        "site_id": opt(p_id),
        "plate": Field(p_plate),
        "volume_m3": opt(volume(1)),
        "weight_t": opt(p_weight),
        "gross_t": opt(p_weight),  # weighbridge: gross and tare (net = gross - tare)
        "tare_t": opt(p_weight),
        "photo_digest": opt(p_digest),
        "time": TIME,
    },
    "violation.report": {
        "violation_id": Field(p_violation_id),
        "type": Field(enum(*VIOLATION_TYPES)),
        "source": Field(enum("camera", "gate", "patrol", "public")),
        "location": opt(p_location),
        "evidence": opt(items(p_digest, 0, 20)),
        "ticket_id": opt(p_id),
        "plate": opt(p_plate),
        "truck_id": opt(p_id),
        "project_id": opt(p_id),
        "site_id": opt(p_id),
        "town": opt(text(100)),
        "description": opt(text(500)),
        "time": TIME,
    },
    "violation.confirm": _VIOLATION_STEP,
    "violation.dismiss": {"violation_id": Field(p_violation_id), "note": Field(text(500)), "time": TIME},
    "violation.dispatch": {"violation_id": Field(p_violation_id), "centre": Field(text(100)), "time": TIME},
    "violation.resolve": {"violation_id": Field(p_violation_id), "result": Field(text(500)), "time": TIME},
    "penalty.record": {
        "penalty_id": ID,
        "target_kind": Field(enum("contractor", "company", "truck", "driver")),
        "target_id": ID,
        "violation_ids": opt(items(p_violation_id, 0, 50)),
        "amount_yuan": Field(p_money),
        "measures": opt(items(_MEASURE, 0, 5, unique=False)),
        "credit_points": opt(integer(0, 100)),
        "decision_no": opt(text(100)),
        "time": TIME,
    },
    "registry.camera": {
        "camera_id": ID,
        "placement": Field(enum(*CAMERA_PLACEMENTS)),
        "project_id": opt(p_id),
        "site_id": opt(p_id),
        "location": opt(p_location),
        "town": opt(text(100)),
        "update": UPDATE,
        "time": TIME,
    },
    "registry.key": {"key_id": KEY_ID, "actor": Field(text(200)), "public_key": Field(acts.public_key_field),
                     "valid_from": Field(p_time), "valid_until": Field(p_time), "time": TIME},
    "registry.key_revoke": {"key_id": KEY_ID, "reason": REASON, "time": TIME},
    "camera.sighting": {
        "sighting_id": ID,
        "camera_id": ID,
        "plate": Field(p_plate),
        "covered": Field(p_bool),
        "photo_digest": Field(p_digest),
        "time": Field(p_time),
    },
    "system.tick": {},
}

TYPES: frozenset[str] = frozenset(SPECS)


def validate(tx_type: str, payload: Mapping[str, Any], *, max_points: int = 240) -> dict[str, Any]:
    """Parse ``payload`` of ``tx_type`` into integer units; raise PayloadError/UnknownType on anything off.
    ``act_sig`` (the actor's own signature, :mod:`.acts`) is parsed into ``p["act_sig"]`` (None if absent)."""
    spec = SPECS.get(tx_type)
    if spec is None:
        raise UnknownType(f"{tx_type!r} is not an e-ticket transaction type")
    if not isinstance(payload, Mapping):
        raise PayloadError("payload must be a JSON object")
    body, act = acts.split_act(payload)
    p = parse_fields(body, spec, "payload")
    _cross_checks(tx_type, p, max_points)
    p[acts.ACT_FIELD] = act
    return p


def _weighing(p: dict[str, Any]) -> None:
    """A receipt's measure: volume, net weight, or gross and tare (tare below gross; a net weight given with
    them must be gross - tare).  Sets ``weight_t`` to the net weight when gross and tare are given."""
    gross, tare = p["gross_t"], p["tare_t"]
    if (gross is None) != (tare is None):
        raise PayloadError("a weighing needs both gross_t and tare_t")
    if gross is not None:
        if tare >= gross:
            raise PayloadError("tare_t must be below gross_t")
        if p["weight_t"] is not None and p["weight_t"] != gross - tare:
            raise PayloadError("weight_t must be gross_t - tare_t")
        p["weight_t"] = gross - tare
    if p["volume_m3"] is None and p["weight_t"] is None:
        raise PayloadError("a receipt needs volume_m3, weight_t or gross_t and tare_t")


def _cross_checks(tx_type: str, p: dict[str, Any], max_points: int) -> None:
    if tx_type == "permit.apply":
        if p["valid_to"] <= p["valid_from"]:
            raise PayloadError("valid_to must be after valid_from")
        if not (p["truck_ids"] or p["company_ids"]):
            raise PayloadError("a permit needs truck_ids or company_ids")
    elif tx_type in ("permit.decide", "permit.amend_decide"):
        if p["decision"] == "reject" and not p["reason"]:
            raise PayloadError("a rejection needs a reason")
    elif tx_type == "permit.amend":
        if not (p["add_site_ids"] or p["add_truck_ids"] or p["add_company_ids"]):
            raise PayloadError("an amendment adds add_site_ids, add_truck_ids or add_company_ids")
    elif tx_type == "trip.positions":
        pts = p["points"]
        if len(pts) > max_points:
            raise PayloadError(f"at most {max_points} points per batch")
        if not pts and p["offchain"] is None:
            raise PayloadError("an empty batch needs its offchain digest")
        if any(a["t"] > b["t"] for a, b in itertools.pairwise(pts)):
            raise PayloadError("points must be in time order")
    elif tx_type == "gate.receipt":
        _weighing(p)
    elif tx_type == "registry.camera":
        need = {"exit": "project_id", "disposal": "site_id", "road": "location"}[p["placement"]]
        if p[need] is None:
            raise PayloadError(f"a camera placed at {p['placement']} needs {need}")
    elif tx_type == "penalty.record":
        for m in p["measures"] or ():
            if m["kind"] == "suspend" and m["days"] is None:
                raise PayloadError("a suspend measure needs days")
