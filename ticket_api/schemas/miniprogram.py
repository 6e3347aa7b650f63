"""The mini-program's permits and tickets (``views/miniprogram``; decisions: ``views/staff``)."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from ticket_api.schemas.common import ID, PLATE, AwareDateTime, OpenSchema, StrictSchema, one_decimal, positive


class PermitCreateSchema(StrictSchema):
    permit_id = fields.String(
        validate=ID, metadata={"description": "optional; chosen by the server if absent"}
    )
    project_id = fields.String(required=True, validate=ID)
    volume_m3 = fields.Decimal(required=True, as_string=True, validate=positive, places=None)
    disposal_site_ids = fields.List(
        fields.String(validate=ID), required=True, validate=validate.Length(1, 50)
    )
    truck_plates = fields.List(
        fields.String(validate=PLATE), load_default=list, validate=validate.Length(0, 500)
    )
    company_ids = fields.List(fields.String(validate=ID), load_default=list, validate=validate.Length(0, 50))
    valid_from = AwareDateTime(required=True)
    valid_to = AwareDateTime(required=True)

    @validates_schema
    def _check(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data["valid_to"] <= data["valid_from"]:
            raise ValidationError("must be after valid_from", "valid_to")
        if not data.get("truck_plates") and not data.get("company_ids"):
            raise ValidationError("give truck_plates and/or company_ids", "truck_plates")


class DecisionCreateSchema(StrictSchema):
    decision = fields.String(required=True, validate=validate.OneOf(["approve", "reject"]))
    comment = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 500))

    @validates_schema
    def _check(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data["decision"] == "reject" and not data.get("comment"):
            raise ValidationError("a rejection needs a comment", "comment")


class DecisionSchema(OpenSchema):
    department = fields.String()
    decision = fields.String(allow_none=True)
    comment = fields.String(allow_none=True)
    at = fields.String(allow_none=True)


class PermitSchema(OpenSchema):
    id = fields.String(required=True)
    status = fields.String(
        required=True, metadata={"description": "pending | approved | rejected | revoked | expired"}
    )
    project_id = fields.String()
    volume_m3 = fields.Raw()
    disposal_site_ids = fields.List(fields.String())
    truck_plates = fields.List(fields.String())
    valid_from = fields.String()
    valid_to = fields.String()
    required_approvals = fields.List(fields.String())
    decisions = fields.List(fields.Nested(DecisionSchema))


class TicketCreateSchema(StrictSchema):
    ticket_id = fields.String(
        validate=ID, metadata={"description": "optional; chosen by the server if absent"}
    )
    permit_id = fields.String(required=True, validate=ID)
    truck_plate = fields.String(required=True, validate=PLATE)
    disposal_site_id = fields.String(required=True, validate=ID)
    volume_m3 = fields.Decimal(required=True, as_string=True, validate=[positive, one_decimal], places=None)
    driver_id = fields.String(validate=ID)


class TicketSchema(OpenSchema):
    id = fields.String(required=True)
    status = fields.String(
        required=True, metadata={"description": "issued | departed | received | expired | voided"}
    )
    permit_id = fields.String()
    project_id = fields.String()
    truck_plate = fields.String()
    disposal_site_id = fields.String()
    volume_m3 = fields.Raw()
    valid_from = fields.String()
    valid_until = fields.String()
    qr = fields.String(metadata={"description": "the signed QR text (MT1:...)"})
