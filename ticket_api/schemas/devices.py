"""Devices in bulk (``/api/v1/devices``): the operator's provisioning, listing and revocation bodies."""

from __future__ import annotations

from marshmallow import fields, validate

from ticket_api.devices import DEVICE_KINDS, MAX_BATCH
from ticket_api.schemas.common import ID, AwareDateTime, OpenSchema, StrictSchema

#: A device id: a site or road id, or a plate (``渝A12345``): no spaces or control characters.
DEVICE_ID = validate.Regexp(r"^[^\s\x00-\x1f\x7f]{1,64}$", error="1-64 characters, no spaces")


class DeviceItemSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(sorted(DEVICE_KINDS)))
    id = fields.String(required=True, validate=DEVICE_ID,
                       metadata={"description": "what the device serves: site id, plate (truck_terminal), road id"})
    subject = fields.String(validate=ID, metadata={
        "description": "which device (gate-1, the GPS terminal's id); a truck terminal defaults to the terminal "
                       "id its truck registered, any other device to its kind and id"})


class DeviceBatchSchema(StrictSchema):
    devices = fields.List(fields.Nested(DeviceItemSchema), required=True,
                          validate=validate.Length(min=1, max=MAX_BATCH))
    expires_at = AwareDateTime(metadata={"description": "every token's expiry (default: in 365 days)"})


class DeviceSchema(OpenSchema):
    token_id = fields.String(required=True)
    kind = fields.String(required=True)
    id = fields.String(required=True)
    subject = fields.String(required=True)
    created_at = fields.String(required=True)
    expires_at = fields.String(required=True)
    revoked_at = fields.String(allow_none=True)
    active = fields.Boolean(required=True)
    token = fields.String(metadata={"description": "the bearer token: in the provisioning answer only, once"})


class DeviceListSchema(OpenSchema):
    items = fields.List(fields.Nested(DeviceSchema), required=True)
    next = fields.String(allow_none=True, required=True)


class DeviceQuerySchema(StrictSchema):
    kind = fields.String(validate=validate.OneOf(sorted(DEVICE_KINDS)))
    id = fields.String(validate=DEVICE_ID)
    active = fields.Boolean()
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    cursor = fields.String(validate=validate.Length(1, 100))


class DeviceRevokeSchema(StrictSchema):
    ids = fields.List(fields.String(validate=validate.Length(1, 32)), required=True,
                      validate=validate.Length(min=1, max=MAX_BATCH),
                      metadata={"description": "token ids (token_id of the listing)"})
