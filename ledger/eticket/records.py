"""Frozen records of the world state; integers for volumes (litres), times (epoch s), places (µdeg)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

Point = tuple[int, int]
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Org:
    """An organisation: contractor, transport, site operator, department."""

    org_id: str
    name: str
    kind: str
    credit_code: str | None = None
    suspended_until: int = 0


@dataclass(frozen=True, slots=True)
class Project:
    """A construction project (工程) of a contractor."""

    project_id: str
    name: str
    contractor_org_id: str
    lat: int
    lon: int
    planned_l: int
    address: str | None = None
    district: str | None = None
    town: str | None = None


@dataclass(frozen=True, slots=True)
class Site:
    """A disposal site (消纳场) with its load: ``load_l`` received, ``pending_l`` on open tickets."""

    site_id: str
    name: str
    kind: str
    capacity_l: int
    lat: int
    lon: int
    alarm_pct: int
    operator_org_id: str | None = None
    town: str | None = None
    load_l: int = 0
    pending_l: int = 0
    received_l: int = 0
    receipts: int = 0
    alarm: bool = False


@dataclass(frozen=True, slots=True)
class Company:
    """A transport company with its credit score and suspension."""

    company_id: str
    name: str
    org_id: str | None = None
    credit_code: str | None = None
    credit: int = 100
    suspended_until: int = 0
    #: when the suspension in force began (its first penalty's time; 0: never suspended)
    suspended_since: int = 0


@dataclass(frozen=True, slots=True)
class Truck:
    """A muck truck (渣土车)."""

    truck_id: str
    plate: str
    company_id: str
    capacity_l: int
    status: str = "active"
    terminal_id: str | None = None
    credit: int = 100
    suspended_until: int = 0
    #: when the suspension in force began (its first penalty's time; 0: never suspended)
    suspended_since: int = 0


@dataclass(frozen=True, slots=True)
class Driver:
    """A driver: only a salted hash of the personal data."""

    driver_id: str
    company_id: str
    person_hash: str
    licence_class: str | None = None
    credit: int = 100
    suspended_until: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """One department's decision on a permit."""

    department: str
    decision: str
    time: int
    actor: str
    reason: str | None = None
    key_id: str | None = None  # the department's key that signed the act (``ledger.eticket.acts``)


@dataclass(frozen=True, slots=True)
class Permit:
    """A disposal permit (核准) with its quota, scope, window and decisions."""

    permit_id: str
    project_id: str
    contractor_org_id: str
    quota_l: int
    site_ids: tuple[str, ...]
    truck_ids: tuple[str, ...]
    company_ids: tuple[str, ...]
    valid_from: int
    valid_to: int
    route: tuple[Point, ...]
    departments: tuple[str, ...]
    applied_at: int
    state: str = "pending"
    decisions: tuple[Decision, ...] = ()
    decided_at: int | None = None
    approval_s: int | None = None
    closed_reason: str | None = None
    issued_l: int = 0
    tickets: int = 0
    revoked_at: int | None = None


@dataclass(frozen=True, slots=True)
class Amendment:
    """A request to add disposal sites, trucks or companies to an approved permit, decided by the
    departments concerned; applied to the permit once every one approved."""

    amendment_id: str
    permit_id: str
    contractor_org_id: str
    site_ids: tuple[str, ...]
    truck_ids: tuple[str, ...]
    company_ids: tuple[str, ...]
    departments: tuple[str, ...]
    requested_at: int
    actor: str
    reason: str | None = None
    state: str = "pending"  # pending | applied | rejected
    decisions: tuple[Decision, ...] = ()
    decided_at: int | None = None


@dataclass(frozen=True, slots=True)
class Ticket:
    """An e-ticket (电子渣票): one truck trip from a project to a disposal site."""

    ticket_id: str
    permit_id: str
    project_id: str
    truck_id: str
    site_id: str
    volume_l: int
    issued_at: int
    valid_until: int
    expected_s: int
    driver_id: str | None = None
    state: str = "issued"
    departed_at: int | None = None
    exit_gate: str | None = None
    exit_photo: str | None = None
    received_at: int | None = None
    receipt_gate: str | None = None
    measured_l: int | None = None
    weight_kg: int | None = None
    discrepancy: bool = False
    closed_reason: str | None = None
    last_lat: int | None = None
    last_lon: int | None = None
    last_t: int | None = None
    points: int = 0
    max_speed_dkmh: int = 0
    batches: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    voided_at: int | None = None


@dataclass(frozen=True, slots=True)
class Violation:
    """A violation event (事件) and the times of its handling steps."""

    violation_id: str
    type: str
    source: str
    reported_at: int
    lat: int | None = None
    lon: int | None = None
    evidence: tuple[str, ...] = ()
    ticket_id: str | None = None
    truck_id: str | None = None
    plate: str | None = None
    company_id: str | None = None
    driver_id: str | None = None
    project_id: str | None = None
    site_id: str | None = None
    town: str | None = None
    description: str | None = None
    state: str = "reported"
    confirmed_at: int | None = None
    dismissed_at: int | None = None
    dispatched_at: int | None = None
    centre: str | None = None
    resolved_at: int | None = None
    result: str | None = None
    note: str | None = None
    penalty_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Penalty:
    """A penalty (处罚) against a contractor, company, truck or driver."""

    penalty_id: str
    target_kind: str
    target_id: str
    violation_ids: tuple[str, ...]
    amount_fen: int
    measures: tuple[tuple[str, int], ...]
    time: int
    suspended_until: int | None = None
    credit_points: int = 0
    decision_no: str | None = None


@dataclass(frozen=True, slots=True)
class Camera:
    """A camera placed at a project's exit, a disposal site's gate or a road point (its own coordinates)."""

    camera_id: str
    placement: str  # exit | disposal | road
    lat: int
    lon: int
    project_id: str | None = None
    site_id: str | None = None
    town: str | None = None


@dataclass(frozen=True, slots=True)
class ActorKey:
    """A key an actor signs its acts with (``ledger.eticket.acts``): a department's approver or a device."""

    key_id: str
    actor: str  # approver:<department> | gate:exit:<project> | gate:disposal:<site> | camera:<id> | gps:<id>
    alg: str
    public_key: str  # base64 of the raw public key
    valid_from: int
    valid_until: int
    registered_by: str  # the registering transaction's signer (member name)
    registered_at: int
    revoked_at: int | None = None
    revoked_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Sighting:
    """A plate a camera saw; ``state`` pending (waits ``due`` for the gate's own scan), checked or cleared."""

    sighting_id: str
    camera_id: str
    plate: str
    covered: bool
    time: int
    photo_digest: str
    truck_id: str | None = None
    due: int | None = None
    state: str = "checked"
    ticket_id: str | None = None
    violations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Counters:
    """Machine-wide serials (rule-raised violation numbers)."""

    violation_serial: int = 0


Record = (
    Org | Project | Site | Company | Truck | Driver | Permit | Amendment | Ticket | Violation | Penalty | Counters
    | Camera | Sighting
)

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """The declared field names of a record class (cached)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = tuple(f.name for f in fields(cls))
        _FIELD_NAMES[cls] = names
    return names


def evolve(record: R, **changes: Any) -> R:
    """A copy of a frozen record with some fields changed (a faster ``dataclasses.replace``)."""
    cls = type(record)
    return cls(*[changes[n] if n in changes else getattr(record, n) for n in field_names(cls)])


def values(record: Any) -> list[Any]:
    """The record's field values in declaration order, nested records as value lists (for hashing)."""
    out: list[Any] = []
    for name in field_names(type(record)):
        v = getattr(record, name)
        if isinstance(v, tuple) and v and isinstance(v[0], Decision):
            v = [values(d) for d in v]
        out.append(v)
    return out


def as_dict(record: Any) -> dict[str, Any]:
    """The record as a plain dict (nested records as dicts, tuples as lists)."""
    out: dict[str, Any] = {}
    for name in field_names(type(record)):
        v = getattr(record, name)
        if isinstance(v, tuple):
            v = [as_dict(x) if isinstance(x, Decision) else (list(x) if isinstance(x, tuple) else x) for x in v]
        out[name] = v
    return out
