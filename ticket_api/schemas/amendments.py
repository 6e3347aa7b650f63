"""Permit amendments (``views/amendments``): a contractor adds disposal sites or trucks; departments decide."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from ticket_api.schemas.common import ID, PLATE, OpenSchema, StrictSchema


class AmendmentCreateSchema(StrictSchema):
    amendment_id = fields.String(
        validate=ID, metadata={"description": "optional, chosen by the server if absent; a chosen id must start "
                                              "with the caller's tenant and a colon (ORG-001:...)"}
    )
    add_disposal_site_ids = fields.List(fields.String(validate=ID), load_default=list,
                                        validate=validate.Length(0, 50))
    add_truck_plates = fields.List(fields.String(validate=PLATE), load_default=list, validate=validate.Length(0, 500))
    add_company_ids = fields.List(fields.String(validate=ID), load_default=list, validate=validate.Length(0, 50))
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 500))

    @validates_schema
    def _check(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not (data.get("add_disposal_site_ids") or data.get("add_truck_plates") or data.get("add_company_ids")):
            raise ValidationError("give add_disposal_site_ids, add_truck_plates and/or add_company_ids",
                                  "add_disposal_site_ids")


class AmendmentListQuerySchema(StrictSchema):
    awaiting = fields.String(validate=validate.OneOf(["me"]), metadata={
        "description": "me: an approver's queue (amendments still pending its department's decision)"})
    permit_id = fields.String(validate=ID)


class AmendmentSchema(OpenSchema):
    id = fields.String(required=True)
    permit_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "pending | applied | rejected"})
    add_disposal_site_ids = fields.List(fields.String())
    add_truck_ids = fields.List(fields.String())
    add_company_ids = fields.List(fields.String())
    required_approvals = fields.List(fields.String())
    decisions = fields.List(fields.Dict())


class AmendmentListSchema(OpenSchema):
    items = fields.List(fields.Nested(AmendmentSchema), required=True)
