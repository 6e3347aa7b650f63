"""Bearer tokens: issue, look up, revoke; WeChat user registry.

A token is ``mtk_`` + 43 URL-safe characters (256 random bits).  Only its
SHA-256 (hex) is stored, so a database leak does not leak usable tokens.  The
token's public ``id`` (16 hex digits) names it for listing and revocation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from ticket_api.db import ApiToken, WechatUser, make_sessionmaker
from ticket_api.errors import ApiError, Unauthenticated

TOKEN_PREFIX = "mtk_"

# Roles and what their tenant names.
ROLES: dict[str, str] = {
    "contractor": "organisation id (the contractor's company)",
    "approver": "department id (城管, 住建, 交通, ...)",
    "exit_gate": "project (construction) site id",
    "disposal_gate": "disposal site id",
    "truck_terminal": "truck plate (the on-board GPS terminal)",
    "operator": "governance centre id",
    "enforcement": "department id whose enforcement officer it is (城管 chengguan, ...: its key signs their acts)",
    "regulator": "regulator id (reads everything, changes nothing)",
    "camera": "camera id placed by registry.camera (posts sightings; provisioned by POST /api/v1/devices)",
    "company": "transport company id (its trucks, drivers and their violations, penalties, credit)",
    "driver": "truck id the transport company bound the driver's WeChat login to (its tickets and QR)",
}
STAFF_ROLES = frozenset({"approver", "operator", "enforcement", "regulator"})
GATE_ROLES = frozenset({"exit_gate", "disposal_gate"})

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def hash_token(token: str) -> str:
    """SHA-256 hex of the token text (what the store keeps)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: role, tenant and subject of a valid token."""

    token_id: str
    role: str
    tenant: str
    subject: str
    expires_at: datetime

    @property
    def key(self) -> str:
        """A stable name for per-caller records (idempotency)."""
        return f"{self.role}:{self.tenant}:{self.subject}"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    id: str
    role: str
    tenant: str
    subject: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class TokenInfo:
    """A stored token without its secret (for listing)."""

    id: str
    role: str
    tenant: str
    subject: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    source: str


class UnknownRole(ApiError):
    reason = "invalid_request"


def check_role(role: str) -> None:
    if role not in ROLES:
        raise UnknownRole(f"unknown role {role!r}; roles: {', '.join(ROLES)}", fields={"role": ["unknown"]})


class TokenStore:
    """Tokens and WeChat users in the API database."""

    def __init__(self, engine: Engine, *, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.session = make_sessionmaker(engine)
        self.clock = clock

    # tokens ------------------------------------------------------------

    def issue(
        self,
        *,
        role: str,
        tenant: str,
        subject: str,
        ttl: timedelta | None = None,
        expires_at: datetime | None = None,
        source: str = "cli",
    ) -> IssuedToken:
        """Create a token; the secret is in the result and nowhere else."""
        check_role(role)
        if not tenant or not subject:
            raise ApiError("tenant and subject are required", reason="invalid_request")
        now = self.clock()
        if expires_at is None:
            expires_at = now + (ttl if ttl is not None else timedelta(days=365))
        if expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(
            id=secrets.token_hex(8),
            token_hash=hash_token(token),
            role=role,
            tenant=tenant,
            subject=subject,
            created_at=now,
            expires_at=expires_at,
            revoked_at=None,
            source=source,
        )
        with self.session.begin() as s:
            s.add(row)
        return IssuedToken(token, row.id, role, tenant, subject, now, expires_at)

    def authenticate(self, token: str) -> Principal:
        """The principal of a valid token, else :class:`Unauthenticated` with a reason.

        Reasons: ``token_invalid`` (not one of ours), ``token_revoked``,
        ``token_expired``.
        """
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            raise Unauthenticated(reason="token_invalid")
        digest = hash_token(token)
        with self.session() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            raise Unauthenticated(reason="token_invalid")
        if row.revoked_at is not None:
            raise Unauthenticated(reason="token_revoked")
        if self.clock() >= row.expires_at:
            raise Unauthenticated(reason="token_expired")
        return Principal(row.id, row.role, row.tenant, row.subject, row.expires_at)

    def revoke(self, token_id: str) -> bool:
        """Revoke by token id; False when there is no such token (idempotent otherwise)."""
        with self.session.begin() as s:
            row = s.get(ApiToken, token_id)
            if row is None:
                return False
            if row.revoked_at is None:
                row.revoked_at = self.clock()
            return True

    def revoke_subject(self, subject: str) -> int:
        """Revoke every live token of ``subject`` (a WeChat login's ``wx:<openid>``); how many were live."""
        now = self.clock()
        with self.session.begin() as s:
            rows = s.scalars(select(ApiToken).where(ApiToken.subject == subject, ApiToken.revoked_at.is_(None))).all()
            for row in rows:
                row.revoked_at = now
            return len(rows)

    def list(self, *, include_revoked: bool = True) -> list[TokenInfo]:
        with self.session() as s:
            rows = s.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)).all()
        return [
            TokenInfo(r.id, r.role, r.tenant, r.subject, r.created_at, r.expires_at, r.revoked_at, r.source)
            for r in rows
            if include_revoked or r.revoked_at is None
        ]

    # WeChat users -----------------------------------------------------

    def bind_wechat(self, openid: str, *, role: str, tenant: str, name: str = "") -> None:
        """Register (or re-register) a WeChat openid with a role and tenant."""
        check_role(role)
        if not openid or not tenant:
            raise ApiError("openid and tenant are required", reason="invalid_request")
        with self.session.begin() as s:
            row = s.get(WechatUser, openid)
            if row is None:
                s.add(WechatUser(openid=openid, role=role, tenant=tenant, name=name, created_at=self.clock()))
            else:
                row.role, row.tenant, row.name = role, tenant, name

    def wechat_user(self, openid: str) -> WechatUser | None:
        with self.session() as s:
            return s.get(WechatUser, openid)

    def unbind_wechat(self, openid: str) -> bool:
        with self.session.begin() as s:
            row = s.get(WechatUser, openid)
            if row is None:
                return False
            s.delete(row)
            return True


__all__ = [
    "GATE_ROLES",
    "ROLES",
    "STAFF_ROLES",
    "IntegrityError",
    "IssuedToken",
    "Principal",
    "TokenInfo",
    "TokenStore",
    "hash_token",
]
