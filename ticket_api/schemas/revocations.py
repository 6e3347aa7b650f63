"""The offline gates' signed revocation list (``GET /api/v1/gate/revocations``)."""

from __future__ import annotations

from marshmallow import fields, validate

from ticket_api.schemas.common import OpenSchema, StrictSchema


class RevocationQuerySchema(StrictSchema):
    since = fields.String(
        load_default=None,
        validate=validate.Length(1, 40),
        metadata={"description": "a delta: only entries newer than this list version (an integer) or this "
                                 "time (ISO 8601 with its offset, e.g. 2026-12-02T21:00:00+08:00)"},
    )


class RevocationListSchema(OpenSchema):
    format = fields.String(required=True, metadata={"description": "muck-eticket/revocations/v1"})
    key_id = fields.String(required=True, metadata={"description": "the QR issuer key that signed it"})
    alg = fields.String(required=True, metadata={"description": "the key's algorithm, e.g. ed25519"})
    list = fields.Dict(
        required=True,
        metadata={"description": "issued_at, version, since_version, tickets, trucks, companies, permits "
                                 "(docs/ETICKET.md, Offline gates and revocations)"},
    )
    signature = fields.String(
        required=True, metadata={"description": "base64 signature over the domain and the RFC 8785 list"}
    )
