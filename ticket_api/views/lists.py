"""Work lists for every role: ``{"items": [...], "next": cursor | null}``, newest first unless a queue.

Pagination is by an opaque ``cursor`` (the ``next`` of the page before, with the same filters) and ``limit``
(1 to 200, default 50): an item that exists when the first page is read is on exactly one page, however many
arrive meanwhile.  Periods are ``from`` (inclusive) and ``to`` (exclusive), ISO 8601 with an offset.  Every
list is scoped to the caller's tenant: a contractor sees its own projects and what happens on them, a
transport company (``company``) its trucks and drivers, staff everything; a filter naming another tenant's
object finds nothing, as an unknown one.  A bad cursor is ``400 bad_cursor``, ``from`` after ``to`` ``422
bad_period``, ``awaiting=me`` for a role without that queue ``422 no_queue``.
"""

from __future__ import annotations

from ticket_api.auth import authenticate, ctx, require
from ticket_api.jsonbody import Blueprint
from ticket_api.list_data import Credit, ListQuery, Page
from ticket_api.schemas.common import URI_TOO_LONG
from ticket_api.schemas.lists import (
    CreditSchema,
    PenaltyListQuerySchema,
    PenaltyPageSchema,
    PermitListQuerySchema,
    PermitPageSchema,
    ProjectListQuerySchema,
    ProjectPageSchema,
    TicketListQuerySchema,
    TicketPageSchema,
    TruckListQuerySchema,
    TruckPageSchema,
    ViolationListQuerySchema,
    ViolationPageSchema,
)
from ticket_api.services import ListService
from ticket_api.tokens import STAFF_ROLES

blp = Blueprint("lists", __name__, url_prefix="/api/v1", description="Work lists of every role (paged)")
STAFF = tuple(sorted(STAFF_ROLES))
DOC = {"responses": {414: URI_TOO_LONG}}


def _lists() -> ListService:
    return ctx().services.lists


@blp.route("/permits")
@require("contractor", *STAFF)
@blp.arguments(PermitListQuerySchema, location="query")
@blp.doc(**DOC)
@blp.response(200, PermitPageSchema)
def list_permits(query: ListQuery) -> Page:
    """Permits, newest application first: a contractor's own, every one for staff.

    ``awaiting=me`` (approvers): the permits the caller's department has not decided yet, oldest application
    first, each with its project (name, location), volume, sites (name, load), trucks, application time and
    ``age_seconds``."""
    return _lists().permits(authenticate(), query)


@blp.route("/tickets")
@require("contractor", "company", "driver", *STAFF)
@blp.arguments(TicketListQuerySchema, location="query")
@blp.doc(**DOC)
@blp.response(200, TicketPageSchema)
def list_tickets(query: ListQuery) -> Page:
    """Tickets, newest first: a contractor's projects', a company's trucks', a driver's truck's, every one for
    staff (without the QR: ``GET /tickets/{id}`` or ``/qr.png`` has it)."""
    return _lists().tickets(authenticate(), query)


@blp.route("/projects")
@require("contractor", *STAFF)
@blp.arguments(ProjectListQuerySchema, location="query")
@blp.doc(**DOC)
@blp.response(200, ProjectPageSchema)
def list_projects(query: ListQuery) -> Page:
    """Projects in id order with their permits and ticket totals: a contractor's own, every one for staff."""
    return _lists().projects(authenticate(), query)


@blp.route("/trucks")
@require("contractor", "company", *STAFF)
@blp.arguments(TruckListQuerySchema, location="query")
@blp.doc(**DOC)
@blp.response(200, TruckPageSchema)
def list_trucks(query: ListQuery) -> Page:
    """Trucks in id order with their credit score and their company's: a company's own, the trucks on a
    contractor's permits (named, or of a company named), every one for staff."""
    return _lists().trucks(authenticate(), query)


@blp.route("/violations")
@require("contractor", "company", *STAFF)
@blp.arguments(ViolationListQuerySchema, location="query")
@blp.doc(**DOC)
@blp.response(200, ViolationPageSchema)
def list_violations(query: ListQuery) -> Page:
    """Violations, newest first, each with ``age_seconds``: a contractor's projects', a company's trucks',
    every one for staff.

    ``awaiting=me``: the caller's queue, oldest first — an operator's ``reported`` (to confirm or dismiss)
    and ``confirmed`` (to dispatch), enforcement's ``confirmed`` and ``dispatched`` (to resolve)."""
    return _lists().violations(authenticate(), query)


@blp.route("/penalties")
@require("contractor", "company", *STAFF)
@blp.arguments(PenaltyListQuerySchema, location="query")
@blp.doc(**DOC)
@blp.response(200, PenaltyPageSchema)
def list_penalties(query: ListQuery) -> Page:
    """Penalties, newest first: against a contractor or for its projects' violations; against a company, its
    trucks or drivers or for their violations; every one for staff."""
    return _lists().penalties(authenticate(), query)


@blp.route("/credit/<any(company, truck, driver):kind>/<key>")
@require("contractor", "company", *STAFF)
@blp.response(200, CreditSchema)
def get_credit(kind: str, key: str) -> Credit:
    """A company's, truck's or driver's credit score (信用分): staff any; a company its own and its trucks'
    and drivers'; a contractor those of the trucks and companies on its permits; others answer 404 as unknown."""
    return _lists().credit(authenticate(), kind, key)
