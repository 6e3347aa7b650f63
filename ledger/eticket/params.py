"""Business parameters read from ``consortium.parameters["eticket"]`` (with defaults) and the rules' view of the
consortium.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ledger.core.consortium import Consortium, Member
from ledger.errors import ConsortiumError
from ledger.eticket import units, zones
from ledger.eticket.acts import DEFAULT_ACT_SIGNED, FULL_ACT_SIGNED
from ledger.eticket.errors import PayloadError, Refusal

DEFAULT_DEPARTMENTS = ("chengguan", "zhujian", "jiaotong", "shengtai")
DEFAULT_DEDUCTIONS: Mapping[str, int] = MappingProxyType(
    {
        "no_ticket": 10,
        "unapproved_disposal": 10,
        "uncovered_load": 3,
        "overloaded": 5,
        "spilling": 5,
        "speeding": 2,
        "off_route": 2,
        "suspicious_stop": 3,
        "suspected_dumping": 10,
        "other": 1,
        "outside_hours": 2,
        "forbidden_zone": 3,
    }
)
SITE_ALARM_POLICIES = ("refuse", "warn")
#: The departments concerned by a permit amendment, by what it adds (trucks: trucks or companies).
DEFAULT_AMEND_DEPARTMENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sites", ("chengguan", "shengtai")),
    ("trucks", ("chengguan", "jiaotong")),
)


@dataclass(frozen=True)
class Params:
    """The e-ticket rules' tunables, in integer units (see docs/ETICKET.md "Parameters")."""

    departments: tuple[str, ...] = DEFAULT_DEPARTMENTS
    speed_limit_dkmh: int = 600  # 0.1 km/h
    stopped_speed_dkmh: int = 50
    corridor_m: int = 1000
    stop_radius_m: int = 500
    receipt_margin_s: int = 3600
    min_trip_s: int = 1200
    avg_speed_kmh: int = 25
    volume_tolerance_pct: int = 10
    ticket_validity_s: int = 24 * 3600
    density_kg_per_m3: int = 1800
    alarm_threshold_pct: int = 85
    max_clock_skew_s: int = 600
    max_points_per_batch: int = 240
    credit_initial: int = 100
    camera_grace_s: int = 120  # a camera sighting waits this long for the gate's own scan
    camera_dedup_s: int = 7200  # repeats of one type for one plate within this window are one event
    credit_deductions: Mapping[str, int] = field(default_factory=lambda: DEFAULT_DEDUCTIONS)
    site_alarm_policy: str = "refuse"  # a site at its alarm threshold: refuse new tickets, or warn
    transport_hours: tuple[tuple[str, zones.Hours], ...] = ()  # (district or "*", window), sorted
    forbidden_zones: tuple[zones.Zone, ...] = ()
    amend_departments: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_AMEND_DEPARTMENTS
    #: transaction types whose payload must carry the actor's own signature (``ledger.eticket.acts``)
    act_signed: tuple[str, ...] = DEFAULT_ACT_SIGNED

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> Params:
        """Read the ``eticket`` parameter object; raise ConsortiumError on a bad value."""
        raw = raw or {}
        try:
            deps = tuple(str(d) for d in raw.get("departments", DEFAULT_DEPARTMENTS))
            if not deps or len(set(deps)) != len(deps):
                raise ConsortiumError("eticket.departments must be a non-empty list of distinct names")
            ded = dict(DEFAULT_DEDUCTIONS)
            ded.update({str(k): int(v) for k, v in dict(raw.get("credit_deductions", {})).items()})

            def num(key: str, default: int, scale: int = 0) -> int:
                if key not in raw:
                    return default
                return units.decimal_units(raw[key], scale=scale, what=f"eticket.{key}")

            return cls(
                departments=deps,
                speed_limit_dkmh=num("speed_limit_kmh", 600, 1),
                stopped_speed_dkmh=num("stopped_speed_kmh", 50, 1),
                corridor_m=num("corridor_m", 1000),
                stop_radius_m=num("stop_radius_m", 500),
                receipt_margin_s=num("receipt_margin_min", 60_000, 3) * 60 // 1000,
                min_trip_s=num("min_trip_minutes", 20_000, 3) * 60 // 1000,
                avg_speed_kmh=max(1, num("avg_speed_kmh", 25)),
                volume_tolerance_pct=num("volume_tolerance_pct", 10),
                ticket_validity_s=num("ticket_validity_h", 24_000, 3) * 3600 // 1000,
                density_kg_per_m3=max(1, num("density_t_per_m3", 1800, 3)),
                alarm_threshold_pct=num("alarm_threshold_pct", 85),
                max_clock_skew_s=num("max_clock_skew_s", 600),
                max_points_per_batch=num("max_points_per_batch", 240),
                credit_initial=num("credit_initial", 100),
                camera_grace_s=num("camera_grace_s", 120),
                camera_dedup_s=num("camera_dedup_min", 120_000, 3) * 60 // 1000,
                credit_deductions=MappingProxyType(ded),
                site_alarm_policy=_policy(raw.get("site_alarm_policy", "refuse")),
                transport_hours=zones.parse_hours(raw.get("transport_hours", {})),
                forbidden_zones=zones.parse_zones(raw.get("forbidden_zones", [])),
                amend_departments=_amend_departments(raw.get("amend_departments")),
                act_signed=_act_signed(raw.get("act_signed", DEFAULT_ACT_SIGNED)),
            )
        except PayloadError as exc:
            raise ConsortiumError(f"bad eticket parameter: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise ConsortiumError(f"bad eticket parameters: {exc!r}") from exc

    @classmethod
    def of(cls, consortium: Consortium) -> Params:
        """The parameters of ``consortium`` (defaults where missing)."""
        raw = consortium.parameters.get("eticket")
        if raw is not None and not isinstance(raw, Mapping):
            raise ConsortiumError("consortium parameter 'eticket' must be an object")
        return cls.from_mapping(raw)


def default_parameters() -> dict[str, Any]:
    """The ``eticket`` parameter object that spells out every default (what a new consortium's genesis holds).

    ``Params.from_mapping(default_parameters())`` is ``Params()`` but for ``act_signed``: a new consortium wants
    every act of its departments, devices and enforcement officers signed by its actor (``FULL_ACT_SIGNED``),
    while one whose genesis names no ``act_signed`` (made before) keeps the decisions only
    (``DEFAULT_ACT_SIGNED``), so its chain replays as it was written.
    """
    return {
        "departments": list(DEFAULT_DEPARTMENTS),
        "speed_limit_kmh": 60,
        "stopped_speed_kmh": 5,
        "corridor_m": 1000,
        "stop_radius_m": 500,
        "receipt_margin_min": 60,
        "min_trip_minutes": 20,
        "avg_speed_kmh": 25,
        "volume_tolerance_pct": 10,
        "ticket_validity_h": 24,
        "density_t_per_m3": "1.8",
        "alarm_threshold_pct": 85,
        "max_clock_skew_s": 600,
        "max_points_per_batch": 240,
        "credit_initial": 100,
        "camera_grace_s": 120,
        "camera_dedup_min": 120,
        "credit_deductions": dict(DEFAULT_DEDUCTIONS),
        "site_alarm_policy": "refuse",
        "transport_hours": {},
        "forbidden_zones": [],
        "amend_departments": {k: list(v) for k, v in DEFAULT_AMEND_DEPARTMENTS},
        "act_signed": list(FULL_ACT_SIGNED),
    }


def _act_signed(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list | tuple) or not all(isinstance(t, str) and t in ACTOR_KINDS for t in raw):
        raise PayloadError("eticket.act_signed must be a list of e-ticket transaction types")
    return tuple(sorted(set(raw)))


def _amend_departments(raw: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if raw is None:
        return DEFAULT_AMEND_DEPARTMENTS
    if not isinstance(raw, Mapping) or not set(raw) <= {"sites", "trucks"}:
        raise PayloadError("eticket.amend_departments must be {sites: [...], trucks: [...]}")
    out = dict(DEFAULT_AMEND_DEPARTMENTS)
    for key, names in raw.items():
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise PayloadError(f"eticket.amend_departments.{key} must be a list of department names")
        out[key] = tuple(names)
    return tuple(sorted(out.items()))


def _policy(raw: object) -> str:
    if raw not in SITE_ALARM_POLICIES:
        raise PayloadError(f"eticket.site_alarm_policy must be one of {', '.join(SITE_ALARM_POLICIES)}")
    return str(raw)


Event = dict[str, Any]

#: Actor kinds (the part of ``tx.actor`` before the first colon) allowed per transaction type.
ACTOR_KINDS: Mapping[str, frozenset[str]] = {
    "registry.org": frozenset({"operator", "admin"}),
    "registry.project": frozenset({"operator", "admin", "contractor"}),
    "registry.site": frozenset({"operator", "admin"}),
    "registry.company": frozenset({"operator", "admin"}),
    "registry.truck": frozenset({"operator", "admin", "company"}),
    "registry.driver": frozenset({"operator", "admin", "company"}),
    "permit.apply": frozenset({"contractor", "operator"}),
    "permit.decide": frozenset({"approver"}),
    "permit.revoke": frozenset({"operator", "approver", "enforcement", "admin"}),
    "permit.amend": frozenset({"contractor", "operator"}),
    "permit.amend_decide": frozenset({"approver"}),
    "ticket.issue": frozenset({"contractor", "operator"}),
    "ticket.void": frozenset({"contractor", "operator"}),
    "gate.exit": frozenset({"gate", "operator"}),
    "trip.positions": frozenset({"gps", "operator", "system"}),
    "gate.receipt": frozenset({"gate", "operator"}),
    "violation.report": frozenset({"camera", "gate", "operator", "enforcement", "system"}),
    "violation.confirm": frozenset({"operator", "enforcement"}),
    "violation.dismiss": frozenset({"operator", "enforcement"}),
    "violation.dispatch": frozenset({"operator", "enforcement"}),
    "violation.resolve": frozenset({"operator", "enforcement", "centre"}),
    "penalty.record": frozenset({"enforcement"}),
    "system.tick": frozenset({"system", "operator", "admin"}),
    "registry.camera": frozenset({"operator", "admin"}),
    "camera.sighting": frozenset({"camera", "operator"}),
    "registry.key": frozenset({"operator", "admin"}),
    "registry.key_revoke": frozenset({"operator", "admin"}),
}


@dataclass(frozen=True, slots=True)
class Env:
    """The environment of one transaction; ``time`` is the event time, ``now`` the block time."""

    params: Params
    actor: str
    actor_kind: str
    actor_parts: tuple[str, ...]
    signer: Member
    time: int
    now: int
    tx_id: str

    def actor_arg(self, index: int) -> str | None:
        """The ``index``-th colon-separated part after the kind (``gate:exit:P-1`` → 0: exit, 1: P-1)."""
        return self.actor_parts[index] if len(self.actor_parts) > index else None

    def require_own(self, kind: str, owner: str, what: str) -> None:
        """Refuse with ``forbidden`` when the actor is of ``kind`` and names another owner."""
        if self.actor_kind == kind and self.actor_arg(0) != owner:
            raise Refusal("forbidden", f"actor={self.actor} {what}={owner}")


def need(record: Any, code: str, detail: str) -> Any:
    """Return ``record`` or refuse with ``code`` when it is None."""
    if record is None:
        raise Refusal(code, detail)
    return record


def parse_actor(actor: str) -> tuple[str, tuple[str, ...]]:
    """Split ``kind:a:b`` into ("kind", ("a", "b"))."""
    kind, _, rest = actor.partition(":")
    return kind, tuple(rest.split(":")) if rest else ()
