"""What the views call: small Protocols, implemented later by the ledger adapter.

Views only parse, authorise by role, call a service and serialise.  The
ledger-backed implementations (consortium client + e-ticket transaction
types) plug in through configuration::

    create_app({"SERVICES": "my_package.adapter:make_services"})

where ``make_services(config, keyring) -> Services``.  Until then every
ledger endpoint answers 503 ``ledger_unavailable``.

Conventions for implementations:

* ``principal`` is the authenticated caller; services enforce *tenant* rules
  (a contractor sees only its own permits/tickets; a gate acts only for its
  own site) by raising :class:`ticket_api.errors.Forbidden` or ``NotFound``.
* What crosses the seam is typed in :mod:`ticket_api.service_data`: requests
  are the schemas' loaded data, answers the JSON objects the views serialise
  (``Json`` where the ledger defines the record).
* State-changing methods receive a :class:`Submission` and answer
  ``Changed[T]``.  When ``submission.wait`` is true they return once the
  transaction is final (the resulting object, ``T``); otherwise they may return
  :class:`Pending` and the view answers ``202 {"tx_id", "status": "submitted"}``
  (a gate's :class:`Admitted` answers 202 with its body).
* Refusals are raised as typed errors with a string ``reason`` that
  ``ticket_api.errors`` maps: :class:`ticket_api.errors.ApiError` subclasses
  (:class:`ticket_api.errors.Refused` with a gate reason code, ...) or
  ``ledger.errors.LedgerError`` subclasses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, TypeVar

from ledger.core.transaction import Transaction
from ledger.qrticket.ticket import TicketClaims
from ledger.wire import ProvenanceExport
from ticket_api.devices import DeviceRequest, Known
from ticket_api.errors import ServiceUnavailable
from ticket_api.list_data import Credit, ListQuery, Page
from ticket_api.service_data import (
    AmendmentRequest,
    AuditParams,
    ChainStatus,
    Dashboard,
    GateDisposal,
    GateExit,
    GateResult,
    History,
    Json,
    OfflineScan,
    PenaltyRecord,
    PermitApplication,
    PermitDecision,
    PermitView,
    PositionBatch,
    PositionsResult,
    Recommendation,
    RecommendParams,
    Revocation,
    ScanView,
    SiteList,
    SyncReport,
    TicketRequest,
    TicketView,
    ViolationReport,
    ViolationStep,
)
from ticket_api.tokens import Principal

__all__ = ["Admitted", "Changed", "Json", "Pending", "Result", "Services", "Submission", "Unavailable"]

T = TypeVar("T")


@dataclass(frozen=True)
class Submission:
    """How the caller wants a state change submitted; ``journal`` (a request with an ``Idempotency-Key``)
    records the signed transaction before it is submitted (see :class:`TxJournal`)."""

    wait: bool = True
    idempotency_key: str | None = None
    request_id: str | None = None
    journal: TxJournal | None = None


class TxJournal(Protocol):
    """Where a request records the transaction it is about to submit (``ticket_api.idempotency``)."""

    def adopt(self, tx: Transaction) -> Transaction:
        """The transaction to submit: ``tx`` (now recorded), or the one an earlier attempt of the same
        request recorded and perhaps submitted (a worker died before answering): that one is submitted
        again (idempotent by tx id) instead of acting twice."""
        ...


@dataclass(frozen=True)
class Pending:
    """A transaction accepted by the consortium but not final yet."""

    tx_id: str
    status: str = "submitted"


@dataclass(frozen=True)
class Admitted:
    """Decided by the API before finality (a gate that asked not to wait): 202 with ``body``."""

    body: GateResult


Changed: TypeAlias = T | Pending | Admitted
"""What a state-changing method answers: the object it changed (``T``, once final), or 202 before that."""

Result: TypeAlias = Changed[Any]
"""Any state change's answer (``ticket_api.auth.answer`` turns one into the HTTP answer)."""


class PermitService(Protocol):
    def create_permit(self, principal: Principal, data: PermitApplication, sub: Submission) -> Changed[PermitView]:
        ...

    def decide(self, principal: Principal, permit_id: str, data: PermitDecision,
               sub: Submission) -> Changed[PermitView]:
        """One department's decision (the principal's tenant is the department)."""
        ...

    def revoke(self, principal: Principal, permit_id: str, data: Revocation, sub: Submission) -> Changed[PermitView]:
        ...

    def get_permit(self, principal: Principal, permit_id: str) -> PermitView: ...


class AmendmentService(Protocol):
    """Permit amendments (``ticket_api.adapter.amendments``)."""

    def request(self, principal: Principal, permit_id: str, data: AmendmentRequest,
                sub: Submission) -> Changed[dict[str, Any]]: ...

    def decide(self, principal: Principal, amendment_id: str, data: PermitDecision,
               sub: Submission) -> Changed[dict[str, Any]]: ...

    def get(self, principal: Principal, amendment_id: str) -> dict[str, Any]: ...

    def list(self, principal: Principal, *, awaiting: str | None = None,
             permit_id: str | None = None) -> dict[str, Any]: ...


class TicketService(Protocol):
    def issue_ticket(self, principal: Principal, data: TicketRequest, sub: Submission) -> Changed[TicketView]:
        """Issue a ticket; the result carries ``qr`` (from ``qrticket.encode_ticket``)."""
        ...

    def void(self, principal: Principal, ticket_id: str, data: Revocation, sub: Submission) -> Changed[TicketView]:
        """Void an unused ticket; its volume returns to the permit's quota."""
        ...

    def get_ticket(self, principal: Principal, ticket_id: str) -> TicketView: ...

    def ticket_qr(self, principal: Principal, ticket_id: str) -> str:
        """The ``MT1:`` QR text of a ticket the principal owns."""
        ...

    def history(self, principal: Principal, ticket_id: str) -> History:
        """``{"records": [...], "checkpoint": {...}}`` with RFC 9162 proofs."""
        ...

    def provenance(self, principal: Principal, kind: str, key: str) -> ProvenanceExport:
        """The provenance export of one object (``ledger.verify.provenance``), as the nodes give it."""
        ...


class GateService(Protocol):
    def record_exit(
        self, principal: Principal, claims: TicketClaims, data: GateExit, sub: Submission
    ) -> Changed[GateResult]:
        """Record a departure; the QR is already verified and plate/site checked."""
        ...

    def record_disposal(
        self, principal: Principal, claims: TicketClaims, data: GateDisposal, sub: Submission
    ) -> Changed[GateResult]: ...

    def sync(self, principal: Principal, scans: Sequence[OfflineScan], sub: Submission) -> SyncReport:
        """Offline scans uploaded late: see ``views/gates.py`` for the contract."""
        ...

    def scan(self, principal: Principal, tx_id: str) -> ScanView:
        """An online scan's claim and the ledger's verdict on it (``adapter.outbox``)."""
        ...

    def revocations(self, principal: Principal, since: str | None) -> dict[str, Any]:
        """The signed revocation list (``since``: a delta after a version or a time)."""
        ...


class TripService(Protocol):
    def report_positions(
        self, principal: Principal, ticket_id: str, batch: PositionBatch, sub: Submission
    ) -> Changed[PositionsResult]: ...


class AuditService(Protocol):
    def audit(self, principal: Principal, params: AuditParams) -> Json: ...


class StaffService(Protocol):
    """Registry, violations, penalties, site load, statistics and chain health (``adapter.staff``)."""

    def register(self, principal: Principal, kind: str, data: Mapping[str, Any], sub: Submission) -> Changed[Json]:
        """``data`` is the ledger's own registry payload (docs/ETICKET.md "Registry")."""
        ...

    def violation(self, principal: Principal, violation_id: str) -> Json: ...

    def report_violation(self, principal: Principal, data: ViolationReport, sub: Submission) -> Changed[Json]: ...

    def violation_step(
        self, principal: Principal, violation_id: str, step: str, data: ViolationStep, sub: Submission
    ) -> Changed[Json]: ...

    def record_penalty(self, principal: Principal, data: PenaltyRecord, sub: Submission) -> Changed[Json]: ...

    def sites(self, principal: Principal) -> SiteList: ...

    def site(self, principal: Principal, site_id: str) -> Json: ...

    def recommend(self, principal: Principal, params: RecommendParams) -> Recommendation: ...

    def statistics(self, principal: Principal) -> Json: ...

    def chain_status(self, principal: Principal) -> ChainStatus: ...

    def dashboard(self, principal: Principal) -> Dashboard:
        """The governance centre's screen in one answer (see ``views/dashboard.py``)."""
        ...


class DeviceRegistry(Protocol):
    """The registry on the chain as device provisioning sees it (``adapter.devices``)."""

    def check(self, devices: Sequence[DeviceRequest]) -> list[Known]:
        """One :class:`ticket_api.devices.Known` per device, in order (unknown plates and sites named)."""
        ...


class ListService(Protocol):
    """Every role's work lists, one page at a time, tenant-scoped (``adapter.lists``, ``views/lists``)."""

    def permits(self, principal: Principal, query: ListQuery) -> Page: ...

    def tickets(self, principal: Principal, query: ListQuery) -> Page: ...

    def projects(self, principal: Principal, query: ListQuery) -> Page: ...

    def trucks(self, principal: Principal, query: ListQuery) -> Page: ...

    def violations(self, principal: Principal, query: ListQuery) -> Page: ...

    def penalties(self, principal: Principal, query: ListQuery) -> Page: ...

    def credit(self, principal: Principal, kind: str, key: str) -> Credit: ...

    def company_truck(self, principal: Principal, plate: str) -> str:
        """The id of the caller's (a transport company's) truck with ``plate``; another company's truck
        answers ``unknown_truck`` like an unregistered plate."""
        ...


class CameraService(Protocol):
    def sight(self, principal: Principal, data: Mapping[str, Any], photo_digest: str,
              sub: Submission) -> Changed[Json]:
        """A camera's sighting (``data``: plate, covered, time) as ``camera.sighting``; the sighting with the
        violations known at once (``ledger.eticket.queries.sighting``)."""
        ...

    def sighting(self, principal: Principal, sighting_id: str) -> Json:
        """One sighting as the rules left it (``pending`` until its grace window ended), else NotFound."""
        ...


class Unavailable:
    """Stands in for every service until the ledger adapter is configured."""

    def __getattr__(self, name: str) -> Any:
        def unavailable(*_args: Any, **_kwargs: Any) -> Any:
            raise ServiceUnavailable(f"no ledger service is configured for {name}")

        return unavailable


@dataclass
class Services:
    """The bundle the app holds in ``app.extensions["ticket_api"].services``."""

    permits: PermitService
    tickets: TicketService
    gates: GateService
    trips: TripService
    audit: AuditService
    staff: StaffService = field(default_factory=lambda: Unavailable())
    #: None: no registry to check device ids against (the ledger is not configured)
    devices: DeviceRegistry | None = None
    lists: ListService = field(default_factory=lambda: Unavailable())
    cameras: CameraService = field(default_factory=lambda: Unavailable())
    amendments: AmendmentService = field(default_factory=lambda: Unavailable())

    @classmethod
    def unavailable(cls) -> Services:
        u: Any = Unavailable()
        return cls(permits=u, tickets=u, gates=u, trips=u, audit=u, staff=u, lists=u, cameras=u)
