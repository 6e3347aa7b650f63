"""The governance centre's screen (``views/dashboard``)."""

from __future__ import annotations

from marshmallow import fields

from ticket_api.schemas.common import OpenSchema


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
