"""Marshmallow schemas of every request and response (the OpenAPI document is made from them)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, post_dump, validate, validates_schema

ID = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", error="1-64 of A-Z a-z 0-9 _ . : - (first alphanumeric)"
)
PLATE = validate.Length(min=7, max=12)


class StrictSchema(Schema):
    """Requests: unknown fields are refused (typos are caught)."""

    class Meta:
        unknown = RAISE


class OpenSchema(Schema):
    """Responses: declared fields are documented; extra members from the service pass through.

    ``unknown = INCLUDE`` makes the OpenAPI document say so (``additionalProperties: true``).
    """

    class Meta:
        unknown = INCLUDE

    @post_dump(pass_original=True)
    def _keep_extra(self, data: dict[str, Any], original: Any, **_kwargs: Any) -> dict[str, Any]:
        if isinstance(original, dict):
            for key, value in original.items():
                if key not in self.fields and key not in data:
                    data[key] = value
        return data


class AwareDateTime(fields.AwareDateTime):
    """ISO 8601 with an offset (``2026-11-23T22:15:00+08:00``); naive times are refused."""


DECIMAL_MAX = Decimal(10**9)  # volumes (m³), weights (t): far above any real load, far below float trouble


def _one_decimal(value: Decimal) -> None:
    try:
        if value != value.quantize(Decimal("0.1")):
            raise ValidationError("at most one decimal")
    except InvalidOperation:  # too many digits to quantize (e.g. 1e300): not one decimal either
        raise ValidationError("at most one decimal") from None


def _bounded(value: Decimal) -> None:
    if abs(value) > DECIMAL_MAX:
        raise ValidationError(f"must be at most {DECIMAL_MAX}")


def _amount(value: Decimal) -> None:
    # not validate.Range: apispec would document its bounds as strings ("minimum": "0"), which is invalid
    if not 0 <= value <= DECIMAL_MAX:
        raise ValidationError(f"must be between 0 and {DECIMAL_MAX}")


def _positive(value: Decimal) -> None:
    if value <= 0:
        raise ValidationError("must be greater than 0")
    _bounded(value)


# ------------------------------------------------------------------ errors


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "the reason code"})
    message = fields.String(required=True, metadata={"description": "localised (Accept-Language: zh, en)"})
    # the member is named "fields"; marshmallow takes declared fields off the class, so Schema.fields is intact
    fields = fields.Dict(metadata={"description": "per-field problems of invalid requests"})  # type: ignore[assignment]


# gunicorn answers a request line over 4094 bytes itself, before the app: 414 in HTML.
URI_TOO_LONG = {"description": "request line over 4094 bytes (answered by gunicorn in HTML)",
                "content": {"text/html": {"schema": {"type": "string"}}}}


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)
    reason = fields.String(required=True)


class GateRefusalSchema(Schema):
    accepted = fields.Boolean(required=True, metadata={"example": False})
    reason = fields.String(required=True)
    message = fields.String(required=True)
    # the member is named "fields"; marshmallow takes declared fields off the class, so Schema.fields is intact
    fields = fields.Dict(metadata={"description": "per-field problems of invalid requests"})  # type: ignore[assignment]


class PendingSchema(Schema):
    tx_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"example": "submitted"})


# ------------------------------------------------------------------ system, auth, keys


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


# ------------------------------------------------------------------ permits


class PermitCreateSchema(StrictSchema):
    permit_id = fields.String(
        validate=ID, metadata={"description": "optional; chosen by the server if absent"}
    )
    project_id = fields.String(required=True, validate=ID)
    volume_m3 = fields.Decimal(required=True, as_string=True, validate=_positive, places=None)
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


# ------------------------------------------------------------------ tickets


class TicketCreateSchema(StrictSchema):
    ticket_id = fields.String(
        validate=ID, metadata={"description": "optional; chosen by the server if absent"}
    )
    permit_id = fields.String(required=True, validate=ID)
    truck_plate = fields.String(required=True, validate=PLATE)
    disposal_site_id = fields.String(required=True, validate=ID)
    volume_m3 = fields.Decimal(required=True, as_string=True, validate=[_positive, _one_decimal], places=None)
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


# ------------------------------------------------------------------ gates and trips


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
    volume_m3 = fields.Decimal(required=True, as_string=True, validate=_positive, places=None)
    weight_t = fields.Decimal(as_string=True, validate=_positive, places=None)
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
                               validate=_bounded)
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


# ------------------------------------------------------------------ staff: registry, violations, penalties, sites


class LocationSchema(StrictSchema):
    lat = fields.Float(required=True, validate=validate.Range(-90, 90))
    lon = fields.Float(required=True, validate=validate.Range(-180, 180))


VIOLATION_TYPES = ["no_ticket", "unapproved_disposal", "uncovered_load", "overloaded", "spilling", "speeding",
                   "off_route", "suspicious_stop", "suspected_dumping", "other"]


class ViolationReportSchema(StrictSchema):
    violation_id = fields.String(validate=validate.Regexp(r"^[A-Z]{2,6}[0-9]{14,24}$"))
    type = fields.String(required=True, validate=validate.OneOf(VIOLATION_TYPES))
    source = fields.String(required=True, validate=validate.OneOf(["camera", "gate", "patrol", "public"]))
    time = AwareDateTime()
    location = fields.Nested(LocationSchema)
    evidence = fields.List(fields.String(validate=validate.Length(1, 100)), validate=validate.Length(0, 20))
    ticket_id = fields.String(validate=ID)
    plate = fields.String(validate=PLATE)
    truck_id = fields.String(validate=ID)
    project_id = fields.String(validate=ID)
    site_id = fields.String(validate=ID)
    town = fields.String(validate=validate.Length(1, 100))
    description = fields.String(validate=validate.Length(1, 500))


class ViolationStepSchema(StrictSchema):
    note = fields.String(validate=validate.Length(1, 500), metadata={"description": "confirm (opt), dismiss"})
    centre = fields.String(validate=validate.Length(1, 100), metadata={"description": "dispatch: the centre"})
    result = fields.String(validate=validate.Length(1, 500), metadata={"description": "resolve: what was done"})
    time = AwareDateTime()


class ViolationQuerySchema(StrictSchema):
    type = fields.String(validate=validate.OneOf(VIOLATION_TYPES))
    state = fields.String(validate=validate.OneOf(["reported", "confirmed", "dismissed", "dispatched", "resolved"]))
    ticket_id = fields.String(validate=ID)
    plate = fields.String(validate=PLATE)
    project_id = fields.String(validate=ID)
    site_id = fields.String(validate=ID)
    company_id = fields.String(validate=ID)
    town = fields.String(validate=validate.Length(1, 100))
    since = AwareDateTime()
    until = AwareDateTime()
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 10**7))


class ViolationSchema(OpenSchema):
    violation_id = fields.String(required=True)
    type = fields.String(required=True)
    state = fields.String(required=True)


class ViolationListSchema(OpenSchema):
    violations = fields.List(fields.Nested(ViolationSchema), required=True)


class MeasureSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(["suspend", "warning", "rectify"]))
    days = fields.Integer(validate=validate.Range(1, 3650))


class PenaltyCreateSchema(StrictSchema):
    penalty_id = fields.String(validate=ID)
    target_kind = fields.String(required=True, validate=validate.OneOf(["contractor", "company", "truck", "driver"]))
    target_id = fields.String(required=True, validate=ID)
    violation_ids = fields.List(fields.String(validate=validate.Length(1, 40)), load_default=list,
                                validate=validate.Length(0, 50))
    amount_yuan = fields.Decimal(required=True, as_string=True, places=None, validate=_amount,
                                 metadata={"description": "0 to 1000000000 yuan"})
    measures = fields.List(fields.Nested(MeasureSchema), load_default=list, validate=validate.Length(0, 5))
    credit_points = fields.Integer(validate=validate.Range(0, 100))
    decision_no = fields.String(validate=validate.Length(1, 100))
    time = AwareDateTime()


class PenaltyQuerySchema(StrictSchema):
    target_kind = fields.String(validate=validate.OneOf(["contractor", "company", "truck", "driver"]))
    target_id = fields.String(validate=ID)
    violation_id = fields.String(validate=validate.Length(1, 40))


class PenaltyListSchema(OpenSchema):
    penalties = fields.List(fields.Dict(), required=True)


class RevokeSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class RecommendQuerySchema(StrictSchema):
    project_id = fields.String(required=True, validate=ID)
    volume_m3 = fields.Decimal(required=True, as_string=True, validate=_positive, places=None)
    kinds = fields.List(fields.String(validate=validate.OneOf(["landfill", "recycling", "backfill"])))
    exclude = fields.String(validate=ID)  # type: ignore[assignment]  # a declared field, not Schema.exclude
    limit = fields.Integer(load_default=5, validate=validate.Range(1, 50))


class SiteSchema(OpenSchema):
    site_id = fields.String(required=True)
    load_rate_pct = fields.Raw()
    alarm = fields.Boolean()


class SiteListSchema(OpenSchema):
    sites = fields.List(fields.Nested(SiteSchema), required=True)


class RecommendSchema(OpenSchema):
    project_id = fields.String(required=True)
    sites = fields.List(fields.Dict(), required=True)


class ObjectSchema(OpenSchema):
    """A JSON object (the ledger's own record format, docs/ETICKET.md)."""


class ChainStatusSchema(OpenSchema):
    nodes = fields.List(fields.Dict(), required=True, metadata={
        "description": "each node's GET /status (url, reachable; height, head, final_height, certificate of the "
                       "newest final block {height, header_hash, signers, quorum, nodes}, diverged, fault ...)"})
    agree = fields.Boolean(required=True)


class CertificateSchema(OpenSchema):
    """The certificate of a node's newest final block, as that node holds it."""

    height = fields.Integer(required=True)
    header_hash = fields.String(required=True)
    signers = fields.List(fields.String(), required=True, metadata={
        "description": "the node members whose signatures over the header it holds, in consortium order"})
    quorum = fields.Integer(required=True, metadata={"description": "signatures a block needs to be final"})
    nodes = fields.Integer(required=True, metadata={"description": "node members in the consortium"})


class NodeHealthSchema(OpenSchema):
    """One node on the dashboard: reachable or not; if it is, its height, head, certificate and divergence."""

    node = fields.String(required=True, metadata={"description": "member name (the URL when unreachable)"})
    url = fields.String(required=True)
    reachable = fields.Boolean(required=True)
    height = fields.Integer(allow_none=True)
    head = fields.String(allow_none=True)
    final_height = fields.Integer(allow_none=True, metadata={"description": "newest block with a quorum certificate"})
    certificate = fields.Nested(CertificateSchema, allow_none=True, metadata={
        "description": "the newest final block's certificate (null before the first)"})
    transactions = fields.Integer(allow_none=True)
    pool = fields.Integer(allow_none=True)
    ordering = fields.String(allow_none=True)
    ready = fields.Boolean(allow_none=True)
    fault = fields.String(allow_none=True)
    diverged = fields.Boolean()
    divergences = fields.Integer()
    error = fields.String(allow_none=True, metadata={"description": "why it is unreachable"})


class ChainHealthSchema(OpenSchema):
    nodes = fields.List(fields.Nested(NodeHealthSchema), required=True)
    agree = fields.Boolean(required=True, metadata={"description": "every node reachable and none diverged"})
    diverged_nodes = fields.List(fields.String(), required=True)
    unreachable = fields.List(fields.String(), required=True, metadata={"description": "their URLs"})
    height = fields.Integer(required=True, metadata={"description": "the lowest height of the reachable nodes"})


class ProvenanceSchema(OpenSchema):
    format = fields.String(required=True)
    checkpoint = fields.String(required=True)
    records = fields.List(fields.Dict(), required=True)


class DashboardSchema(OpenSchema):
    """The governance centre's screen (``GET /api/v1/dashboard``)."""

    generated_at = fields.String(required=True, metadata={"description": "ISO 8601, +08:00"})
    counters = fields.Dict(required=True, metadata={
        "description": "tickets_today, trucks_on_the_road, open_violations, sites_in_alarm, utilisation_rate_pct"})
    sites = fields.List(fields.Dict(), required=True, metadata={
        "description": "every disposal site: load_rate_pct, threshold_pct, alarm, alternatives (when in alarm)"})
    alarms = fields.List(fields.Dict(), required=True)
    violations = fields.List(fields.Dict(), required=True, metadata={"description": "newest 20, with age_seconds"})
    on_the_road = fields.List(fields.Dict(), required=True, metadata={
        "description": "departed tickets: plate, site, last_position, last_position_at"})
    projects = fields.List(fields.Dict(), required=True)
    chain = fields.Nested(ChainHealthSchema, required=True, metadata={
        "description": "every node's height, head, last certificate and divergence; agree, diverged_nodes, "
                       "unreachable"})
