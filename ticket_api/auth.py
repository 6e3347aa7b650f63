"""Authentication (``Authorization: Bearer``), authorisation by role and tenant, and the request context.

``require(*roles)`` is the one door of every protected view::

    @blp.route("/audit")
    @require("regulator")
    def audit(): ...

It answers 401 (``unauthenticated``, ``token_invalid``, ``token_expired``,
``token_revoked``) or 403 ``forbidden``, and leaves the caller in
``g.principal`` (also :func:`current_principal`).  Tenant rules live in the
helpers below and in the services.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import requests
from flask import current_app, g, request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ticket_api.errors import Forbidden, Unauthenticated
from ticket_api.issuer import Keyring
from ticket_api.services import Result, Services, Submission
from ticket_api.tokens import ROLES, STAFF_ROLES, Principal, TokenStore

F = TypeVar("F", bound=Callable[..., Any])

SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthenticated(reason="unauthenticated")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(reason="token_invalid")
    return token.strip()


def authenticate() -> Principal:
    """The caller of this request (cached in ``g.principal``)."""
    principal: Principal | None = getattr(g, "principal", None)
    if principal is None:
        tokens: TokenStore = current_app.extensions["ticket_api"].tokens
        principal = tokens.authenticate(bearer_token())
        g.principal = principal
    return principal


def current_principal() -> Principal:
    return authenticate()


def require(*roles: str) -> Callable[[F], F]:
    """Authenticate, then allow only ``roles`` (none given: any valid token)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    allowed = frozenset(roles)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate()
            if allowed and principal.role not in allowed:
                raise Forbidden(f"role {principal.role} may not call this endpoint")
            return view(*args, **kwargs)

        apidoc = dict(getattr(wrapper, "_apidoc", {}))
        manual = dict(apidoc.get("manual_doc", {}))
        manual["security"] = SECURITY
        apidoc["manual_doc"] = manual
        wrapper._apidoc = apidoc  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorator


# tenant helpers ----------------------------------------------------------


def is_staff(principal: Principal) -> bool:
    return principal.role in STAFF_ROLES


def require_tenant(principal: Principal, tenant: str, *, roles: Iterable[str] = ()) -> None:
    """Forbid unless the principal's tenant is ``tenant`` (or its role is in ``roles``)."""
    if principal.role in set(roles):
        return
    if principal.tenant != tenant:
        raise Forbidden(f"{principal.role} of {principal.tenant} acts only for its own tenant")


def require_owner_or_staff(principal: Principal, owner_org: str) -> None:
    """A contractor sees only its own objects; staff (incl. regulator) see all."""
    if is_staff(principal):
        return
    if principal.role == "contractor" and principal.tenant == owner_org:
        return
    raise Forbidden("not the owner")


def forbid_regulator_writes(principal: Principal) -> None:
    """The regulator reads everything and changes nothing."""
    if principal.role == "regulator":
        raise Forbidden("the regulator cannot change anything")


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
        journal=getattr(g, "idempotency_journal", None),
    )


def answer(result: Result, status: int = 200) -> tuple[Any, int]:
    """A service result as (body, status): ``Pending`` becomes 202 with the tx id, ``Admitted`` 202 with its body."""
    from ticket_api.services import Admitted, Pending

    if isinstance(result, Pending):
        return {"tx_id": result.tx_id, "status": result.status}, 202
    if isinstance(result, Admitted):
        return result.body, 202
    return result, status
