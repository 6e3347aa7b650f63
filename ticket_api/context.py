"""The per-app objects views reach through ``ctx()``: config, database, tokens, keys, services."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from flask import current_app, g, request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ticket_api.issuer import Keyring
from ticket_api.services import Result, Services, Submission
from ticket_api.tokens import TokenStore


@dataclass
class ApiContext:
    config: dict[str, Any]
    engine: Engine
    sessionmaker: sessionmaker[Session]
    tokens: TokenStore
    keyring: Keyring
    services: Services
    services_configured: bool
    http: requests.Session = field(default_factory=requests.Session)

    def now(self) -> datetime:
        return datetime.now(UTC)

    @property
    def gate_leeway(self) -> timedelta:
        return timedelta(seconds=float(self.config.get("GATE_CLOCK_LEEWAY_SECONDS", 0)))


def ctx() -> ApiContext:
    ext: ApiContext = current_app.extensions["ticket_api"]
    return ext


def submission() -> Submission:
    """``Prefer: respond-async`` (RFC 7240) asks not to wait for finality."""
    prefer = request.headers.get("Prefer", "").lower()
    wait = "respond-async" not in [p.strip() for p in prefer.split(",")]
    return Submission(
        wait=wait,
        idempotency_key=getattr(g, "idempotency_key", None),
        request_id=getattr(g, "request_id", None),
    )


def answer(result: Result, status: int = 200) -> tuple[Any, int]:
    """A service result as (body, status): ``Pending`` becomes 202 with the tx id, ``Admitted`` 202 with its body."""
    from ticket_api.services import Admitted, Pending

    if isinstance(result, Pending):
        return {"tx_id": result.tx_id, "status": result.status}, 202
    if isinstance(result, Admitted):
        return result.body, 202
    return result, status
