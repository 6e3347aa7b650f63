"""Work lists (``views/lists``): the query of each list (filters, ``limit``, ``cursor``, period ``from``/``to``)
and its page ``{"items": [...], "next": cursor | null}``."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate, validates_schema

from ticket_api.errors import ApiError
from ticket_api.schemas.common import ID, PLATE, AwareDateTime, OpenSchema, StrictSchema
from ticket_api.schemas.miniprogram import PermitSchema, TicketSchema
from ticket_api.schemas.staff import VIOLATION_TYPES, ViolationSchema

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
PERMIT_STATES = ["pending", "approved", "rejected", "revoked", "expired"]
TICKET_STATES = ["issued", "departed", "received", "expired", "voided"]
VIOLATION_STATES = ["reported", "confirmed", "dismissed", "dispatched", "resolved"]
TRUCK_STATES = ["active", "retired"]


class BadPeriod(ApiError):
    reason = "bad_period"


class PageQuerySchema(StrictSchema):
    """What every list takes: the page size and the cursor of the page before."""

    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(1, MAX_LIMIT),
                           metadata={"description": f"items per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"})
    cursor = fields.String(validate=validate.Length(1, 512),
                           metadata={"description": "the `next` of the page before (opaque); same filters"})


class PeriodMixin(StrictSchema):
    since = AwareDateTime(data_key="from", metadata={"description": "from (inclusive), ISO 8601 with offset"})
    until = AwareDateTime(data_key="to", metadata={"description": "to (exclusive), ISO 8601 with offset"})

    @validates_schema
    def _period(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("since") is not None and data.get("until") is not None and data["since"] > data["until"]:
            raise BadPeriod("from after to", fields={"from": ["after to"]})


def _awaiting(description: str) -> fields.String:
    return fields.String(validate=validate.OneOf(["me"]), metadata={"description": description})


class PermitListQuerySchema(PageQuerySchema, PeriodMixin):
    awaiting = _awaiting("`me`: an approver's queue, the permits its department has not decided, oldest first")
    status = fields.String(validate=validate.OneOf(PERMIT_STATES))
    project_id = fields.String(validate=ID)
    plate = fields.String(validate=PLATE, metadata={"description": "permits naming this truck"})
    truck_id = fields.String(validate=ID)
    company_id = fields.String(validate=ID)


class TicketListQuerySchema(PageQuerySchema, PeriodMixin):
    status = fields.String(validate=validate.OneOf(TICKET_STATES))
    project_id = fields.String(validate=ID)
    permit_id = fields.String(validate=validate.Length(1, 100))
    plate = fields.String(validate=PLATE)
    truck_id = fields.String(validate=ID)
    company_id = fields.String(validate=ID)
    site_id = fields.String(validate=ID, metadata={"description": "the disposal site"})


class ProjectListQuerySchema(PageQuerySchema):
    town = fields.String(validate=validate.Length(1, 100))
    district = fields.String(validate=validate.Length(1, 100))


class TruckListQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(TRUCK_STATES))
    company_id = fields.String(validate=ID)
    plate = fields.String(validate=PLATE)
    truck_id = fields.String(validate=ID)


class ViolationListQuerySchema(PageQuerySchema, PeriodMixin):
    awaiting = _awaiting("`me`: an operator's queue (reported: confirm or dismiss; confirmed: dispatch) or "
                         "enforcement's (confirmed and dispatched: dispatch, resolve), oldest first, with age")
    status = fields.String(validate=validate.OneOf(VIOLATION_STATES))
    type = fields.String(validate=validate.OneOf(VIOLATION_TYPES))
    project_id = fields.String(validate=ID)
    ticket_id = fields.String(validate=validate.Length(1, 100))
    plate = fields.String(validate=PLATE)
    truck_id = fields.String(validate=ID)
    company_id = fields.String(validate=ID)
    site_id = fields.String(validate=ID)
    town = fields.String(validate=validate.Length(1, 100))


class PenaltyListQuerySchema(PageQuerySchema, PeriodMixin):
    target_kind = fields.String(validate=validate.OneOf(["contractor", "company", "truck", "driver"]))
    target_id = fields.String(validate=ID)
    violation_id = fields.String(validate=validate.Length(1, 40))
    project_id = fields.String(validate=ID, metadata={"description": "penalties for violations of the project"})
    plate = fields.String(validate=PLATE, metadata={"description": "the truck's penalties or its violations'"})
    truck_id = fields.String(validate=ID)
    company_id = fields.String(validate=ID)


def _next() -> fields.String:
    return fields.String(allow_none=True, required=True, metadata={
        "description": "cursor of the next page (pass as `cursor`), null on the last page"})


class PermitListItemSchema(PermitSchema):
    """A permit as ``GET /permits/{id}`` answers it, with what a department needs to decide it."""

    project = fields.Dict(allow_none=True, metadata={
        "description": "project_id, name, location {lat, lon}, address, district, town"})
    sites = fields.List(fields.Dict(), metadata={"description": "site_id, name, kind, load_rate_pct, alarm"})
    age_seconds = fields.Integer(metadata={"description": "since the application (awaiting=me)"})


class PermitPageSchema(OpenSchema):
    items = fields.List(fields.Nested(PermitListItemSchema), required=True)
    next = _next()


class TicketPageSchema(OpenSchema):
    items = fields.List(fields.Nested(TicketSchema), required=True, metadata={
        "description": "tickets as GET /tickets/{id} answers them, without the QR"})
    next = _next()


class ProjectItemSchema(OpenSchema):
    project_id = fields.String(required=True)
    name = fields.String()
    contractor_org_id = fields.String()


class ProjectPageSchema(OpenSchema):
    items = fields.List(fields.Nested(ProjectItemSchema), required=True, metadata={
        "description": "project_id, name, contractor_org_id, location, address, district, town, "
                       "planned_volume_m3, permits, tickets, received_m3"})
    next = _next()


class TruckItemSchema(OpenSchema):
    truck_id = fields.String(required=True)
    plate = fields.String(required=True)
    company_id = fields.String()
    credit = fields.Integer(metadata={"description": "the truck's credit score (100 at registration)"})
    company_credit = fields.Integer(allow_none=True, metadata={"description": "its company's credit score"})


class TruckPageSchema(OpenSchema):
    items = fields.List(fields.Nested(TruckItemSchema), required=True, metadata={
        "description": "truck_id, plate, company_id, capacity_m3, status, credit, company_credit, suspended, "
                       "suspended_until, open_ticket, tickets"})
    next = _next()


class ViolationItemSchema(ViolationSchema):
    age_seconds = fields.Integer(metadata={"description": "since it was reported (queues: awaiting=me)"})


class ViolationPageSchema(OpenSchema):
    items = fields.List(fields.Nested(ViolationItemSchema), required=True)
    next = _next()


class PenaltyItemSchema(OpenSchema):
    penalty_id = fields.String(required=True)
    target_kind = fields.String(required=True)
    target_id = fields.String(required=True)


class PenaltyPageSchema(OpenSchema):
    items = fields.List(fields.Nested(PenaltyItemSchema), required=True, metadata={
        "description": "penalty_id, target_kind, target_id, violation_ids, amount_yuan, measures, time, "
                       "suspended_until, credit_points, decision_no"})
    next = _next()


class CreditSchema(OpenSchema):
    kind = fields.String(required=True, metadata={"description": "company | truck | driver"})
    id = fields.String(required=True)
    credit = fields.Integer(required=True, metadata={"description": "credit score: 100 at registration, "
                                                                    "points deducted by confirmed violations "
                                                                    "and penalties"})
    suspended_until = fields.String(allow_none=True)
    company_id = fields.String(allow_none=True)



class DriverBindSchema(StrictSchema):
    """``POST /api/v1/drivers/bind``: a transport company binds a driver's WeChat login to one of its trucks."""

    openid = fields.String(required=True, validate=validate.Length(1, 128),
                           metadata={"description": "the driver's openid in the mini-program"})
    truck_plate = fields.String(required=True, validate=PLATE)
    name = fields.String(validate=validate.Length(1, 50), metadata={"description": "how the company calls the "
                                                                               "driver (kept off the ledger)"})


class DriverUnbindSchema(StrictSchema):
    """``POST /api/v1/drivers/unbind``: a transport company removes a driver's WeChat login (the driver left)."""

    openid = fields.String(required=True, validate=validate.Length(1, 128))


class DriverUnboundSchema(OpenSchema):
    unbound = fields.Boolean(required=True)
    tokens_revoked = fields.Integer(required=True, metadata={"description": "the driver's live logins, revoked"})


class DriverBindingSchema(OpenSchema):
    role = fields.String(required=True, metadata={"example": "driver"})
    truck_id = fields.String(required=True)
    truck_plate = fields.String(required=True)
