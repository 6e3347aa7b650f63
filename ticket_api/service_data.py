"""What crosses the service seam (``ticket_api.services``): the requests views hand to a service and the answers
they serialise.

Requests are the marshmallow schemas' loaded data (``ticket_api.schemas``): decimals as :class:`~decimal.Decimal`,
times as aware :class:`~datetime.datetime`; a key the schema may leave out is ``NotRequired``, one with a
``load_default`` is always there.  Answers are the JSON objects the views send; the response schemas let extra
members through, so an answer may carry more than its TypedDict names.  Records the ledger itself defines
(docs/ETICKET.md: violations, penalties, sites, statistics, a node's status) pass through as :data:`Json`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, NotRequired, TypedDict

from ledger.wire import NodeReport, ProvenanceRecord

Json = dict[str, Any]
"""A JSON object whose members the ledger defines (docs/ETICKET.md), passed through as it is."""


# ------------------------------------------------------------------ requests: permits and tickets


class PermitApplication(TypedDict):
    """``POST /api/v1/permits`` (``PermitCreateSchema``)."""

    project_id: str
    volume_m3: Decimal
    disposal_site_ids: list[str]
    truck_plates: list[str]
    company_ids: list[str]
    valid_from: datetime
    valid_to: datetime
    permit_id: NotRequired[str]
    route: NotRequired[list[dict[str, float]]]  # waypoints {lat, lon} between the project and the sites


class AmendmentRequest(TypedDict):
    """``POST /api/v1/permits/<id>/amendments`` (``AmendmentCreateSchema``)."""

    add_disposal_site_ids: list[str]
    add_truck_plates: list[str]
    add_company_ids: list[str]
    reason: str | None
    amendment_id: NotRequired[str]


class PermitDecision(TypedDict):
    """``POST /api/v1/permits/<id>/decisions`` (``DecisionCreateSchema``)."""

    decision: str  # "approve" | "reject"
    comment: str | None
    time: NotRequired[datetime]  # when the department signed (with ``act_sig``)
    act_sig: NotRequired[dict[str, str]]  # the department's own signature (``ledger.eticket.acts``)


class Revocation(TypedDict):
    """Revoking a permit or voiding a ticket (``RevokeSchema``)."""

    reason: str


class TicketRequest(TypedDict):
    """``POST /api/v1/tickets`` (``TicketCreateSchema``)."""

    permit_id: str
    truck_plate: str
    disposal_site_id: str
    volume_m3: Decimal
    ticket_id: NotRequired[str]
    driver_id: NotRequired[str]


# ------------------------------------------------------------------ requests: gates and trips


class GateExit(TypedDict):
    """``POST /api/v1/gate/exit`` (``GateExitSchema``)."""

    qr: str
    plate: str
    covered: bool
    photo_digest: NotRequired[str]
    gate_id: NotRequired[str]
    time: NotRequired[datetime]
    act_sig: NotRequired[dict[str, str]]  # the gate device's own signature (ledger.eticket.acts)


class GateDisposal(TypedDict):
    """``POST /api/v1/gate/disposal`` (``GateDisposalSchema``)."""

    qr: str
    plate: str
    volume_m3: NotRequired[Decimal]
    weight_t: NotRequired[Decimal]
    gross_t: NotRequired[Decimal]
    tare_t: NotRequired[Decimal]
    photo_digest: NotRequired[str]
    gate_id: NotRequired[str]
    time: NotRequired[datetime]
    act_sig: NotRequired[dict[str, str]]  # the gate device's own signature (ledger.eticket.acts)


class OfflineVerdict(TypedDict):
    accepted: bool
    reason: str | None


class OfflineScan(TypedDict):
    """One scan an offline gate queued (``OfflineScanSchema``)."""

    scan_id: str
    kind: str  # "exit" | "disposal"
    qr: str
    plate: str
    scanned_at: datetime
    covered: bool | None
    volume_m3: Decimal | None
    offline_verdict: OfflineVerdict
    weight_t: NotRequired[Decimal | None]
    gross_t: NotRequired[Decimal | None]
    tare_t: NotRequired[Decimal | None]
    gate_id: NotRequired[str]
    act_sig: NotRequired[dict[str, str]]


class GateSync(TypedDict):
    """``POST /api/v1/gate/sync`` (``GateSyncSchema``)."""

    scans: list[OfflineScan]
    gate_id: NotRequired[str]


class Position(TypedDict):
    """One GPS point of a truck terminal (``PositionSchema``)."""

    at: datetime
    lat: float
    lon: float
    speed_kmh: float


class PositionBatch(TypedDict):
    """``POST /api/v1/trips/<ticket_id>/positions`` (``PositionBatchSchema``); a bare list is ``positions``."""

    positions: list[Position]
    time: NotRequired[datetime]  # when the terminal signed the batch (with ``act_sig``)
    act_sig: NotRequired[dict[str, str]]  # the GPS terminal's own signature (ledger.eticket.acts)


# ------------------------------------------------------------------ requests: staff and the regulator


class AuditParams(TypedDict, total=False):
    """``GET /api/v1/audit`` (``AuditQuerySchema``)."""

    since: datetime
    until: datetime
    kept_checkpoint: str


class Location(TypedDict):
    lat: float
    lon: float


class ViolationReport(TypedDict):
    """``POST /api/v1/violations`` (``ViolationReportSchema``)."""

    type: str
    source: str
    violation_id: NotRequired[str]
    time: NotRequired[datetime]
    location: NotRequired[Location]
    evidence: NotRequired[list[str]]
    ticket_id: NotRequired[str]
    plate: NotRequired[str]
    truck_id: NotRequired[str]
    project_id: NotRequired[str]
    site_id: NotRequired[str]
    town: NotRequired[str]
    description: NotRequired[str]


class ViolationStep(TypedDict, total=False):
    """``POST /api/v1/violations/<id>/<step>`` (``ViolationStepSchema``)."""

    note: str
    centre: str
    result: str
    time: datetime
    act_sig: dict[str, str]  # the enforcement department's own signature (ledger.eticket.acts)


class Measure(TypedDict):
    kind: str  # "suspend" | "warning" | "rectify"
    days: NotRequired[int]


class PenaltyRecord(TypedDict):
    """``POST /api/v1/penalties`` (``PenaltyCreateSchema``)."""

    target_kind: str
    target_id: str
    violation_ids: list[str]
    amount_yuan: Decimal
    measures: list[Measure]
    penalty_id: NotRequired[str]
    credit_points: NotRequired[int]
    decision_no: NotRequired[str]
    time: NotRequired[datetime]
    act_sig: NotRequired[dict[str, str]]  # the enforcement department's own signature (ledger.eticket.acts)


class RecommendParams(TypedDict):
    """``GET /api/v1/sites/recommend`` (``RecommendQuerySchema``)."""

    project_id: str
    volume_m3: Decimal
    limit: int
    kinds: NotRequired[list[str]]
    exclude: NotRequired[str]


# ------------------------------------------------------------------ answers: permits and tickets


class DecisionView(TypedDict):
    department: str
    decision: str  # "pending" until the department decides
    comment: str | None
    at: str | None
    key_id: NotRequired[str | None]  # the department's key that signed it (None: unsigned)


class PermitView(TypedDict):
    """A permit as the API shows it (``PermitSchema``)."""

    id: str
    status: str
    project_id: str
    contractor_org_id: str
    volume_m3: str
    issued_m3: str
    remaining_m3: str
    tickets: int
    disposal_site_ids: list[str]
    truck_plates: list[str]
    company_ids: list[str]
    valid_from: str
    valid_to: str
    applied_at: str
    decided_at: str | None
    approval_seconds: int | None
    closed_reason: str | None
    required_approvals: list[str]
    decisions: list[DecisionView]
    route: NotRequired[list[dict[str, str]]]


class TicketView(TypedDict):
    """A ticket as the API shows it (``TicketSchema``); ``qr`` for its contractor while it can be used,
    ``tx_id`` and ``block_height`` in the answer to its issue."""

    id: str
    status: str
    permit_id: str
    project_id: str
    project_name: str
    truck_plate: str
    company_id: str
    driver_id: str | None
    disposal_site_id: str
    disposal_site_name: str
    volume_m3: str
    valid_from: str
    valid_until: str
    expected_minutes: int
    departed_at: str | None
    received_at: str | None
    measured_m3: str | None
    weight_t: str | None
    discrepancy: bool
    closed_reason: str | None
    last_position: dict[str, str] | None
    violations: list[str]
    qr: NotRequired[str]
    tx_id: NotRequired[str]
    block_height: NotRequired[int | None]
    warnings: NotRequired[list[dict[str, Any]]]


class CheckpointView(TypedDict):
    origin: str
    size: int
    root: str  # hex
    signatures: list[str]  # the names of the members who signed the note
    note: str


class History(TypedDict):
    """``GET /api/v1/tickets/<id>/history`` (``HistorySchema``)."""

    subject: dict[str, Any] | None
    records: list[ProvenanceRecord]
    checkpoint: CheckpointView


# ------------------------------------------------------------------ answers: gates and trips


class GateResult(TypedDict):
    """A gate's scan accepted (``GateResultSchema``): final with the block, or admitted before it (202)."""

    accepted: bool
    ticket_id: str
    status: str
    tx_id: str
    final: bool
    block_height: int | None
    plate: NotRequired[str]
    departed_at: NotRequired[str]
    received_at: NotRequired[str]
    expected_m3: NotRequired[str | None]
    measured_m3: NotRequired[str | None]
    weight_t: NotRequired[str | None]
    discrepancy: NotRequired[bool | None]
    violations: NotRequired[list[str]]
    site: NotRequired[dict[str, Any]]


class SyncResult(TypedDict):
    """One offline scan's result (``SyncResultSchema``)."""

    scan_id: str
    accepted: bool
    ticket_id: str | None
    reason: str | None
    message: str | None
    violation_id: str | None
    tx_id: str | None
    duplicate: NotRequired[bool]


class SyncReport(TypedDict):
    """``POST /api/v1/gate/sync`` (``GateSyncResultSchema``)."""

    results: list[SyncResult]
    accepted: int
    refused: int


class ScanView(TypedDict):
    """``GET /api/v1/gate/scans/<tx_id>`` (``GateScanSchema``)."""

    tx_id: str
    ticket_id: str
    kind: str
    gate: str
    claimed_at: str
    submitted: bool
    final: bool
    verdict: str | None
    accepted: bool | None
    block_height: int | None
    violation_id: str | None


class PositionsResult(TypedDict):
    """``POST /api/v1/trips/<ticket_id>/positions`` (``PositionsResultSchema``)."""

    ticket_id: str
    accepted: int
    violations: list[Json]
    tx_id: str


# ------------------------------------------------------------------ answers: staff and the regulator


class SiteList(TypedDict):
    sites: list[Json]


class Recommendation(TypedDict):
    """``GET /api/v1/sites/recommend`` (``RecommendSchema``)."""

    project_id: str
    volume_m3: str
    sites: list[Json]


class Agreement(TypedDict):
    """Whether the reachable nodes agree on the newest block they all have (a node with a fault or not ready
    does not: ``faults`` by node, ``not_ready``)."""

    agree: bool
    diverged_nodes: list[str]
    unreachable: list[str]
    faults: dict[str, str]
    not_ready: list[str]
    height: int


class ChainStatus(Agreement):
    """``GET /api/v1/chain/status`` (``ChainStatusSchema``): every node's ``GET /status`` and the agreement;
    ``keys_expiring``: the member keys the nodes report expiring within 30 days (or expired), once each."""

    nodes: list[NodeReport]
    keys_expiring: list[Json]


class CertificateView(TypedDict):
    """The newest final block's certificate a node holds (``ledger.wire.Certificate``; members it lacks: null)."""

    height: int | None
    header_hash: str | None
    signers: list[str]
    quorum: int | None
    nodes: int | None


class NodeHealth(TypedDict):
    """One node on the dashboard (``NodeHealthSchema``); an unreachable one has only node, url and error."""

    node: str | None  # the member name (the URL when unreachable)
    url: str | None
    reachable: bool
    error: NotRequired[str | None]
    height: NotRequired[int | None]
    head: NotRequired[str | None]
    final_height: NotRequired[int | None]
    certificate: NotRequired[CertificateView | None]
    transactions: NotRequired[int | None]
    pool: NotRequired[int | None]
    ordering: NotRequired[str | None]
    ready: NotRequired[bool | None]
    fault: NotRequired[str | None]
    diverged: NotRequired[bool]
    divergences: NotRequired[int]


class ChainHealth(Agreement):
    """The dashboard's chain panel (``ChainHealthSchema``)."""

    nodes: list[NodeHealth]
    keys_expiring: list[Json]


class DashboardCounters(TypedDict):
    tickets_today: int
    tickets_issued: int | None
    trucks_on_the_road: int
    open_violations: int
    open_violations_by_state: dict[str, int]
    sites_in_alarm: int
    utilisation_rate_pct: str | None
    ledger_time: str | None
    reconciliation_alarms: int


class Alarm(TypedDict):
    """A disposal site over its alarm threshold and the alternatives offered for a truckload."""

    site_id: str
    name: str
    load_rate_pct: Any
    threshold_pct: Any
    alternatives: list[Json]


class Dashboard(TypedDict):
    """``GET /api/v1/dashboard`` (``DashboardSchema``): the governance centre's screen in one answer."""

    generated_at: str
    today: str
    counters: DashboardCounters
    statistics: Json
    sites: list[Json]
    alarms: list[Alarm]
    violations: list[Json]
    on_the_road: list[Json]
    projects: list[Json]
    chain: ChainHealth
    reconciliation: list[Json]
