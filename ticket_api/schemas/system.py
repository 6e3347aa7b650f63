"""System health, sign-in and the published QR keys (``views/system``, ``views/auth``, ``views/keys``)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ticket_api.schemas.common import StrictSchema


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})
    version = fields.String(required=True)
    time = fields.String(required=True)
    database = fields.String(required=True)
    ledger = fields.String(required=True, metadata={"description": "configured | unavailable"})


class WechatLoginSchema(StrictSchema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=256))


class LoginResultSchema(Schema):
    token = fields.String(required=True, metadata={"description": "bearer token, shown once"})
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    role = fields.String(required=True)
    tenant = fields.String(required=True)
    subject = fields.String(required=True)
    expires_at = fields.String(required=True)


class PrincipalSchema(Schema):
    token_id = fields.String(required=True)
    role = fields.String(required=True)
    tenant = fields.String(required=True)
    subject = fields.String(required=True)
    expires_at = fields.String(required=True)


class KeySchema(Schema):
    key_id = fields.String(required=True)
    alg = fields.String(required=True, metadata={"example": "ed25519"})
    public_key_pem = fields.String(required=True)
    public_key_hex = fields.String(required=True)
    valid_from = fields.String(allow_none=True)
    valid_until = fields.String(allow_none=True)
    current = fields.Boolean(required=True)


class KeysSchema(Schema):
    keys = fields.List(fields.Nested(KeySchema), required=True)
    current_key_id = fields.String(allow_none=True)
    qr_prefix = fields.String(required=True, metadata={"example": "MT1:"})
    qr_format = fields.String(required=True)
