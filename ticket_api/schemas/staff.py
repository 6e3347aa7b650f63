"""Departments, operators and enforcement: registry, violations, penalties, sites, statistics, chain status
(``views/staff``)."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from ticket_api.schemas.common import ID, PLATE, AwareDateTime, OpenSchema, StrictSchema, amount, positive
from ticket_api.schemas.miniprogram import ActSignatureSchema

#: what a signed enforcement act's ``act_sig`` is (docs/ETICKET.md "Acts signed by their actors")
OFFICER_SIG = ("the enforcement department's own signature over the act (docs/ETICKET.md \"Acts signed by their "
               "actors\"); needs time")


class LocationSchema(StrictSchema):
    lat = fields.Float(required=True, validate=validate.Range(-90, 90))
    lon = fields.Float(required=True, validate=validate.Range(-180, 180))


VIOLATION_TYPES = ["no_ticket", "unapproved_disposal", "uncovered_load", "overloaded", "spilling", "speeding",
                   "off_route", "suspicious_stop", "suspected_dumping", "other", "outside_hours", "forbidden_zone"]


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
    time = AwareDateTime(metadata={"description": "when it was signed (with act_sig: within 5 minutes of the "
                                                  "server's clock)"})
    act_sig = fields.Nested(ActSignatureSchema, metadata={"description": OFFICER_SIG})


class ViolationSchema(OpenSchema):
    violation_id = fields.String(required=True)
    type = fields.String(required=True)
    state = fields.String(required=True)
    evidence_urls = fields.Method("_evidence_urls", dump_only=True,
                                  metadata={"description": "GET these for the photos (staff)"})

    def _evidence_urls(self, obj: Any) -> list[str]:
        evidence = obj.get("evidence") if isinstance(obj, dict) else None
        return [f"/api/v1/evidence/{d}" for d in evidence or ()]


class MeasureSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(["suspend", "warning", "rectify"]))
    days = fields.Integer(validate=validate.Range(1, 3650))


class PenaltyCreateSchema(StrictSchema):
    penalty_id = fields.String(validate=ID)
    target_kind = fields.String(required=True, validate=validate.OneOf(["contractor", "company", "truck", "driver"]))
    target_id = fields.String(required=True, validate=ID)
    violation_ids = fields.List(fields.String(validate=validate.Length(1, 40)), load_default=list,
                                validate=validate.Length(0, 50))
    amount_yuan = fields.Decimal(required=True, as_string=True, places=None, validate=amount,
                                 metadata={"description": "0 to 1000000000 yuan"})
    measures = fields.List(fields.Nested(MeasureSchema), load_default=list, validate=validate.Length(0, 5))
    credit_points = fields.Integer(validate=validate.Range(0, 100))
    decision_no = fields.String(validate=validate.Length(1, 100))
    time = AwareDateTime(metadata={"description": "when it was signed (with act_sig: within 5 minutes of the "
                                                  "server's clock)"})
    act_sig = fields.Nested(ActSignatureSchema, metadata={"description": OFFICER_SIG + " and penalty_id"})


class RecommendQuerySchema(StrictSchema):
    project_id = fields.String(required=True, validate=ID)
    volume_m3 = fields.Decimal(required=True, as_string=True, validate=positive, places=None)
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
    keys_expiring = fields.List(fields.Dict(), metadata={
        "description": "member keys expiring within 30 days or expired: [{member, key_id, not_after, days_left}]"})


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
    object = fields.Dict(metadata={"description": "v2: the object's record count and chain head with its proof "
                                                  "in the checkpoint's object map (docs/PROVENANCE.md)"})
    governance = fields.List(fields.Dict(), metadata={
        "description": "on a chain whose membership changed by vote: each change applied up to the checkpoint "
                       "with its signed proposal and votes and their proofs (docs/PROVENANCE.md \"Membership "
                       "changes\")"})


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
    keys_expiring = fields.List(fields.Dict(), metadata={
        "description": "member keys expiring within 30 days or expired: [{member, key_id, not_after, days_left}]"})


class DashboardSchema(OpenSchema):
    """The governance centre's screen (``GET /api/v1/dashboard``)."""

    generated_at = fields.String(required=True, metadata={"description": "ISO 8601, +08:00"})
    counters = fields.Dict(required=True, metadata={
        "description": "tickets_today, trucks_on_the_road, open_violations, sites_in_alarm, utilisation_rate_pct"})
    sites = fields.List(fields.Dict(), required=True, metadata={
        "description": "every disposal site: load_rate_pct, threshold_pct, alarm, alternatives (when in alarm)"})
    alarms = fields.List(fields.Dict(), required=True)
    violations = fields.List(fields.Dict(), required=True, metadata={
        "description": "newest 100, with age_seconds and evidence_urls (GET them for the photos)"})
    on_the_road = fields.List(fields.Dict(), required=True, metadata={
        "description": "departed tickets: plate, site, last_position, last_position_at"})
    projects = fields.List(fields.Dict(), required=True)
    reconciliation = fields.List(fields.Dict(), metadata={
        "description": "reconciliation alarms of yesterday and today: per exit or site and day, tickets_issued, "
                       "scans, sightings, trips, gap, unscanned, reasons (trips_over_tickets, seen_not_scanned), "
                       "place_name (the project's or the site's name)"})
    chain = fields.Nested(ChainHealthSchema, required=True, metadata={
        "description": "every node's height, head, last certificate and divergence; agree, diverged_nodes, "
                       "unreachable"})
