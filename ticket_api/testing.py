"""Deterministic keys, claims and apps for tests, assets, benchmarks and demos."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ledger.core.crypto import ED25519, PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.qrticket.ticket import TicketClaims


def issuer_key(name: str = "issuer-1") -> PrivateKey:
    """A fixed Ed25519 key derived from ``name`` (never use outside tests)."""
    return PrivateKey(alg=ED25519, seed=hashlib.sha256(b"ticket_api test key " + name.encode()).digest())


NIGHT = datetime(2026, 11, 23, 22, 0, tzinfo=CHINA_TZ)


def sample_claims(**overrides: Any) -> TicketClaims:
    """A realistic ticket (ids in docs/ETICKET.md's style), valid 22:00 to 22:00 the next day."""
    values: dict[str, Any] = {
        "ticket_id": "ET202611230001",
        "permit_id": "PM-2026-0001",
        "project_id": "P-001",
        "plate": "渝A12345",
        "disposal_site_id": "S-003",
        "volume_m3": 16.0,
        "valid_from": NIGHT,
        "valid_until": NIGHT + timedelta(hours=24),
    }
    values.update(overrides)
    return TicketClaims(**values)


def app_config(database_url: str, **extra: Any) -> Mapping[str, Any]:
    """A create_app config with a test issuer key and quiet logs."""
    cfg: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "QR_SIGNING_KEY": issuer_key(),
        "LOG_LEVEL": "WARNING",
        "WECHAT_APPID": "wx-test-appid",
        "WECHAT_SECRET": "wx-test-secret",
    }
    cfg.update(extra)
    return cfg
