"""Marshmallow schemas of every request and response (the OpenAPI document is made from them), by audience.

* :mod:`~ticket_api.schemas.common` — request/response bases (``StrictSchema`` refuses unknown fields,
  ``OpenSchema`` lets extra members through), shared validators, the error and 202 bodies;
* :mod:`~ticket_api.schemas.system` — health, sign-in, the published QR keys;
* :mod:`~ticket_api.schemas.miniprogram` — contractors' permits and tickets;
* :mod:`~ticket_api.schemas.gates` — gate scanners (online, offline sync) and truck terminals;
* :mod:`~ticket_api.schemas.staff` — departments, operators, enforcement: violations, penalties, sites;
* :mod:`~ticket_api.schemas.regulator` — history, audit, provenance export;
* :mod:`~ticket_api.schemas.dashboard` — the governance centre's screen.

Every schema is importable from here too (``from ticket_api.schemas import TicketSchema``); the OpenAPI document
names each by its class (``TicketSchema`` -> ``Ticket``), so a schema may move between modules but not be renamed.
"""

from __future__ import annotations

from ticket_api.schemas.common import (
    DECIMAL_MAX,
    ID,
    PLATE,
    URI_TOO_LONG,
    AwareDateTime,
    ErrorBodySchema,
    ErrorSchema,
    GateRefusalSchema,
    OpenSchema,
    PendingSchema,
    RevokeSchema,
    StrictSchema,
    amount,
    bounded,
    one_decimal,
    positive,
)
from ticket_api.schemas.dashboard import (
    CertificateSchema,
    ChainHealthSchema,
    DashboardSchema,
    NodeHealthSchema,
)
from ticket_api.schemas.gates import (
    GateDisposalSchema,
    GateExitSchema,
    GateResultSchema,
    GateScanSchema,
    GateSyncResultSchema,
    GateSyncSchema,
    OfflineScanSchema,
    OfflineVerdictSchema,
    PositionSchema,
    PositionsResultSchema,
    SyncResultSchema,
)
from ticket_api.schemas.miniprogram import (
    DecisionCreateSchema,
    DecisionSchema,
    PermitCreateSchema,
    PermitSchema,
    TicketCreateSchema,
    TicketSchema,
)
from ticket_api.schemas.regulator import (
    AuditQuerySchema,
    AuditSchema,
    HistorySchema,
    ProvenanceSchema,
)
from ticket_api.schemas.staff import (
    VIOLATION_TYPES,
    ChainStatusSchema,
    LocationSchema,
    MeasureSchema,
    ObjectSchema,
    PenaltyCreateSchema,
    PenaltyListSchema,
    PenaltyQuerySchema,
    RecommendQuerySchema,
    RecommendSchema,
    SiteListSchema,
    SiteSchema,
    ViolationListSchema,
    ViolationQuerySchema,
    ViolationReportSchema,
    ViolationSchema,
    ViolationStepSchema,
)
from ticket_api.schemas.system import (
    HealthSchema,
    KeySchema,
    KeysSchema,
    LoginResultSchema,
    PrincipalSchema,
    WechatLoginSchema,
)

__all__ = [
    "DECIMAL_MAX",
    "ID",
    "PLATE",
    "URI_TOO_LONG",
    "VIOLATION_TYPES",
    "AuditQuerySchema",
    "AuditSchema",
    "AwareDateTime",
    "CertificateSchema",
    "ChainHealthSchema",
    "ChainStatusSchema",
    "DashboardSchema",
    "DecisionCreateSchema",
    "DecisionSchema",
    "ErrorBodySchema",
    "ErrorSchema",
    "GateDisposalSchema",
    "GateExitSchema",
    "GateRefusalSchema",
    "GateResultSchema",
    "GateScanSchema",
    "GateSyncResultSchema",
    "GateSyncSchema",
    "HealthSchema",
    "HistorySchema",
    "KeySchema",
    "KeysSchema",
    "LocationSchema",
    "LoginResultSchema",
    "MeasureSchema",
    "NodeHealthSchema",
    "ObjectSchema",
    "OfflineScanSchema",
    "OfflineVerdictSchema",
    "OpenSchema",
    "PenaltyCreateSchema",
    "PenaltyListSchema",
    "PenaltyQuerySchema",
    "PendingSchema",
    "PermitCreateSchema",
    "PermitSchema",
    "PositionSchema",
    "PositionsResultSchema",
    "PrincipalSchema",
    "ProvenanceSchema",
    "RecommendQuerySchema",
    "RecommendSchema",
    "RevokeSchema",
    "SiteListSchema",
    "SiteSchema",
    "StrictSchema",
    "SyncResultSchema",
    "TicketCreateSchema",
    "TicketSchema",
    "ViolationListSchema",
    "ViolationQuerySchema",
    "ViolationReportSchema",
    "ViolationSchema",
    "ViolationStepSchema",
    "WechatLoginSchema",
    "amount",
    "bounded",
    "one_decimal",
    "positive",
]
