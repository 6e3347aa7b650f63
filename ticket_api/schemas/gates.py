"""Gate scanners and truck terminals (``views/gates``)."""

from __future__ import annotations

from marshmallow import fields, validate

from ticket_api.schemas.common import ID, AwareDateTime, OpenSchema, StrictSchema, bounded, positive


class GateExitSchema(StrictSchema):
    qr = fields.String(required=True, validate=validate.Length(1, 1000))
    plate = fields.String(required=True, validate=validate.Length(1, 16))
    covered = fields.Boolean(required=True)
    photo_digest = fields.String(validate=validate.Length(1, 100))
    gate_id = fields.String(validate=ID)
    time = AwareDateTime(metadata={"description": "event time (defaults to now)"})


class GateDisposalSchema(StrictSchema):
    qr = fields.String(required=True, validate=validate.Length(1, 1000))
    plate = fields.String(required=True, validate=validate.Length(1, 16))
    volume_m3 = fields.Decimal(required=True, as_string=True, validate=positive, places=None)
    weight_t = fields.Decimal(as_string=True, validate=positive, places=None)
    photo_digest = fields.String(validate=validate.Length(1, 100))
    gate_id = fields.String(validate=ID)
    time = AwareDateTime(metadata={"description": "event time (defaults to now)"})


class GateResultSchema(OpenSchema):
    accepted = fields.Boolean(required=True)
    ticket_id = fields.String(required=True)
    status = fields.String()
    tx_id = fields.String()
    final = fields.Boolean(metadata={"description": "false in a 202: the ledger's verdict comes later"})
    block_height = fields.Integer(allow_none=True)


class GateScanSchema(OpenSchema):
    tx_id = fields.String(required=True)
    ticket_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["exit", "disposal"]))
    gate = fields.String(required=True, metadata={"description": "role:tenant of the gate that scanned"})
    claimed_at = fields.String(required=True, metadata={"description": "ISO 8601, +08:00"})
    submitted = fields.Boolean(required=True, metadata={"description": "handed to the consortium"})
    final = fields.Boolean(required=True, metadata={"description": "the ledger's verdict is in"})
    verdict = fields.String(allow_none=True, metadata={"description": '"valid" or the reason code'})
    accepted = fields.Boolean(allow_none=True, metadata={"description": "null until final"})
    block_height = fields.Integer(allow_none=True)
    violation_id = fields.String(
        allow_none=True, metadata={"description": "reported when the ledger refused a scan the gate let through"}
    )


class OfflineVerdictSchema(StrictSchema):
    accepted = fields.Boolean(required=True)
    reason = fields.String(allow_none=True, load_default=None)


class OfflineScanSchema(StrictSchema):
    scan_id = fields.String(
        required=True, validate=ID, metadata={"description": "gate-chosen, unique per gate"}
    )
    kind = fields.String(required=True, validate=validate.OneOf(["exit", "disposal"]))
    qr = fields.String(required=True, validate=validate.Length(1, 1000))
    plate = fields.String(required=True, validate=validate.Length(1, 16))
    scanned_at = AwareDateTime(required=True)
    covered = fields.Boolean(allow_none=True, load_default=None)
    volume_m3 = fields.Decimal(as_string=True, allow_none=True, load_default=None, places=None,
                               validate=bounded)
    offline_verdict = fields.Nested(OfflineVerdictSchema, required=True)


class GateSyncSchema(StrictSchema):
    gate_id = fields.String(validate=ID)
    scans = fields.List(fields.Nested(OfflineScanSchema), required=True, validate=validate.Length(1, 500))


class SyncResultSchema(OpenSchema):
    scan_id = fields.String(required=True)
    accepted = fields.Boolean(required=True)
    ticket_id = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    message = fields.String(allow_none=True)
    duplicate = fields.Boolean(metadata={"description": "this scan_id was already synced; same result"})
    violation_id = fields.String(allow_none=True, metadata={"description": "raised for a ticket used twice"})
    tx_id = fields.String(allow_none=True)


class GateSyncResultSchema(OpenSchema):
    results = fields.List(fields.Nested(SyncResultSchema), required=True)
    accepted = fields.Integer(required=True)
    refused = fields.Integer(required=True)


class PositionSchema(StrictSchema):
    at = AwareDateTime(required=True)
    lat = fields.Float(required=True, validate=validate.Range(-90, 90))
    lon = fields.Float(required=True, validate=validate.Range(-180, 180))
    speed_kmh = fields.Float(required=True, validate=validate.Range(0, 300))


class PositionsResultSchema(OpenSchema):
    ticket_id = fields.String(required=True)
    accepted = fields.Integer(required=True)
    violations = fields.List(fields.Dict(), required=True)
