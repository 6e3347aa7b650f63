"""The mini-program's permits and tickets (``views/miniprogram``; decisions: ``views/staff``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, fields, pre_load, validate, validates_schema

from ticket_api.schemas.common import ID, PLATE, AwareDateTime, OpenSchema, StrictSchema, bounded, one_decimal, positive

WEIGHT_MAX_T = Decimal(200)  # far above any muck truck's gross weight (49 t on a Chinese road)


def tonnes(value: Decimal) -> None:
    """A weighbridge reading: more than 0 and at most :data:`WEIGHT_MAX_T` tonnes, to 3 decimals (kg)."""
    if not 0 < value <= WEIGHT_MAX_T:
        raise ValidationError(f"must be greater than 0 and at most {WEIGHT_MAX_T}")
    if value != value.quantize(Decimal("0.001")):
        raise ValidationError("at most 3 decimals")


class WaypointSchema(StrictSchema):
    lat = fields.Float(required=True, validate=validate.Range(-90, 90))
    lon = fields.Float(required=True, validate=validate.Range(-180, 180))


class PermitCreateSchema(StrictSchema):
    permit_id = fields.String(
        validate=ID, metadata={"description": "optional, chosen by the server if absent; a chosen id must start "
                                              "with the caller's tenant and a colon (ORG-001:...)"}
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
    route = fields.List(fields.Nested(WaypointSchema), validate=validate.Length(1, 48), metadata={
        "description": "waypoints from the project to the sites, in order (the project and the site are the "
                       "ends); a truck farther than corridor_m from this line is off_route (default: the "
                       "straight line)"})

    @validates_schema
    def _check(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data["valid_to"] <= data["valid_from"]:
            raise ValidationError("must be after valid_from", "valid_to")
        if not data.get("truck_plates") and not data.get("company_ids"):
            raise ValidationError("give truck_plates and/or company_ids", "truck_plates")


class ActSignatureSchema(StrictSchema):
    key_id = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{16}$"))
    alg = fields.String(required=True, validate=validate.OneOf(["ed25519"]))
    value = fields.String(required=True, validate=validate.Length(1, 200), metadata={"description": "base64"})


class DecisionCreateSchema(StrictSchema):
    decision = fields.String(required=True, validate=validate.OneOf(["approve", "reject"]))
    comment = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 500))
    time = AwareDateTime(metadata={"description": "when the department signed (with act_sig; within "
                                                  "GATE_CLOCK_LEEWAY_SECONDS of the server's clock)"})
    act_sig = fields.Nested(ActSignatureSchema, metadata={
        "description": "the department's own signature over the act (docs/ETICKET.md \"Acts signed by their "
                       "actors\"); the consortium refuses a decision without it (act_unsigned)"})

    @validates_schema
    def _check(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data["decision"] == "reject" and not data.get("comment"):
            raise ValidationError("a rejection needs a comment", "comment")


class DecisionSchema(OpenSchema):
    department = fields.String()
    decision = fields.String(allow_none=True)
    comment = fields.String(allow_none=True)
    at = fields.String(allow_none=True)
    key_id = fields.String(allow_none=True, metadata={"description": "the department's own key that signed it"})


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
    route = fields.List(fields.Dict(), metadata={"description": "the permit's waypoints {lat, lon}"})


class TicketCreateSchema(StrictSchema):
    ticket_id = fields.String(
        validate=ID, metadata={"description": "optional, chosen by the server if absent; a chosen id must start "
                                              "with the caller's tenant and a colon (ORG-001:...)"}
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


class GateExitSchema(StrictSchema):
    qr = fields.String(required=True, validate=validate.Length(1, 1000))
    plate = fields.String(required=True, validate=validate.Length(1, 16))
    covered = fields.Boolean(required=True)
    photo_digest = fields.String(validate=validate.Length(1, 100))
    gate_id = fields.String(validate=ID)
    time = AwareDateTime(metadata={"description": "event time (defaults to now); within "
                                                  "GATE_CLOCK_LEEWAY_SECONDS of the server's clock"})
    act_sig = fields.Nested(ActSignatureSchema, metadata={
        "description": "the gate device's own signature over the scan's ledger payload (docs/ETICKET.md \"Acts "
                       "signed by their actors\"; needs gate_id and time)"})


class GateDisposalSchema(StrictSchema):
    qr = fields.String(required=True, validate=validate.Length(1, 1000))
    plate = fields.String(required=True, validate=validate.Length(1, 16))
    volume_m3 = fields.Decimal(as_string=True, validate=positive, places=None, metadata={
        "description": "measured volume; or give a weight instead (weight_t, or gross_t and tare_t)"})
    weight_t = fields.Decimal(as_string=True, validate=tonnes, places=None, metadata={
        "description": "net weight (t); without a volume it converts at the consortium's density_t_per_m3"})
    gross_t = fields.Decimal(as_string=True, validate=tonnes, places=None, metadata={
        "description": "weighbridge gross weight (t), with tare_t: net = gross - tare"})
    tare_t = fields.Decimal(as_string=True, validate=tonnes, places=None, metadata={
        "description": "weighbridge tare weight (t), below gross_t"})
    photo_digest = fields.String(validate=validate.Length(1, 100))
    gate_id = fields.String(validate=ID)
    time = AwareDateTime(metadata={"description": "event time (defaults to now); within "
                                                  "GATE_CLOCK_LEEWAY_SECONDS of the server's clock"})
    act_sig = fields.Nested(ActSignatureSchema, metadata={
        "description": "the gate device's own signature over the scan's ledger payload (docs/ETICKET.md \"Acts "
                       "signed by their actors\"; needs gate_id and time)"})


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
    scanned_at = AwareDateTime(required=True, metadata={
        "description": "within the QR's validity and not after the sync (GATE_CLOCK_LEEWAY_SECONDS either way)"})
    covered = fields.Boolean(allow_none=True, load_default=None)
    volume_m3 = fields.Decimal(as_string=True, allow_none=True, load_default=None, places=None,
                               validate=bounded)
    weight_t = fields.Decimal(as_string=True, allow_none=True, places=None, validate=tonnes)
    gross_t = fields.Decimal(as_string=True, allow_none=True, places=None, validate=tonnes)
    tare_t = fields.Decimal(as_string=True, allow_none=True, places=None, validate=tonnes)
    offline_verdict = fields.Nested(OfflineVerdictSchema, required=True)
    gate_id = fields.String(validate=ID, metadata={"description": "the gate that scanned (signed scans)"})
    act_sig = fields.Nested(ActSignatureSchema, metadata={
        "description": "the gate device's own signature over the scan's ledger payload (docs/ETICKET.md \"Acts "
                       "signed by their actors\"; needs gate_id and time)"})


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
    violation_id = fields.String(allow_none=True, metadata={
        "description": "raised for a ticket used twice, voided, or whose truck, company or permit was revoked "
                       "before the offline scan (then accepted with reason revoked_before_scan: the exit is recorded)"})
    tx_id = fields.String(allow_none=True)


class GateSyncResultSchema(OpenSchema):
    results = fields.List(fields.Nested(SyncResultSchema), required=True)
    accepted = fields.Integer(required=True)
    refused = fields.Integer(required=True)


class PositionSchema(StrictSchema):
    """One GPS point; the ledger's ``trip.positions`` payload names the time ``t`` (docs/ETICKET.md)."""

    at = AwareDateTime(required=True, metadata={
        "description": "the point's time (the ledger payload's t): not before the trip's exit nor after now, "
                       "GATE_CLOCK_LEEWAY_SECONDS either way"})
    lat = fields.Float(required=True, validate=validate.Range(-90, 90))
    lon = fields.Float(required=True, validate=validate.Range(-180, 180))
    speed_kmh = fields.Float(required=True, validate=validate.Range(0, 300))


class PositionBatchSchema(StrictSchema):
    """A truck terminal's GPS batch: ``{"positions": [...]}``, or signed by the terminal's registered key
    ``{"positions", "time", "act_sig"}`` (docs/ETICKET.md "Acts signed by their actors"); a bare JSON list of
    points is read as ``{"positions": <list>}``."""

    positions = fields.List(fields.Nested(PositionSchema), required=True)
    time = AwareDateTime(metadata={"description": "when the terminal signed the batch (with act_sig; within "
                                                  "5 minutes of the server's clock)"})
    act_sig = fields.Nested(ActSignatureSchema, metadata={
        "description": "the GPS terminal's own signature over the trip.positions payload (docs/ETICKET.md)"})

    @pre_load
    def _bare_list(self, data: Any, **_kwargs: Any) -> Any:
        return {"positions": data} if isinstance(data, list) else data


class PositionsResultSchema(OpenSchema):
    ticket_id = fields.String(required=True)
    accepted = fields.Integer(required=True)
    violations = fields.List(fields.Dict(), required=True)
