"""The regulator's history, audit and provenance export (``views/regulator``)."""

from __future__ import annotations

from marshmallow import fields, validate

from ticket_api.schemas.common import AwareDateTime, OpenSchema, StrictSchema


class HistorySchema(OpenSchema):
    records = fields.List(fields.Dict(), required=True)
    checkpoint = fields.Dict(required=True)


class AuditQuerySchema(StrictSchema):
    since = AwareDateTime()
    until = AwareDateTime()
    kept_checkpoint = fields.String(
        # ~110 characters per member (4 members: ~500, ~600 URL-encoded): 2000 is ~17 members, and keeps the
        # request line under gunicorn's limit (4094 bytes) for real notes.
        validate=validate.Length(1, 2000),
        metadata={"description": "the C2SP checkpoint note kept from the last audit: proves the log only grew"},
    )


class AuditSchema(OpenSchema):
    ok = fields.Boolean(required=True)


class ProvenanceSchema(OpenSchema):
    format = fields.String(required=True)
    checkpoint = fields.String(required=True)
    records = fields.List(fields.Dict(), required=True)
