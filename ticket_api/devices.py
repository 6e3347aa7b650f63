"""Devices in bulk: gates, GPS terminals and cameras provisioned by an operator, many in one transaction.

A device is a bearer token of a device role (:data:`DEVICE_KINDS`) whose tenant is what the device serves
(the site of a gate, the plate of a truck's terminal, the site or road of a camera), plus a row of
:class:`Device` naming the operator (its governance centre: the tenant) that provisioned it.  The token's
secret is in the answer to the provisioning call and nowhere else: the store keeps its SHA-256 (the
tokens are 256 random bits, so one hash is enough; see :mod:`ticket_api.tokens`).

One call provisions up to :data:`MAX_BATCH` devices in one database transaction: all or nothing.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, Integer, String, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Mapped, mapped_column

from ticket_api.db import ApiToken, Base, make_sessionmaker, write_lock
from ticket_api.errors import InvalidRequest
from ticket_api.tokens import TOKEN_PREFIX, Clock, hash_token, utcnow

#: Roles a device holds, and what its id (the token's tenant) names.
DEVICE_KINDS: dict[str, str] = {
    "exit_gate": "project (construction) site id",
    "disposal_gate": "disposal site id",
    "truck_terminal": "truck plate",
    "camera": "camera id (its placement on the chain: registry.camera)",
}
MAX_BATCH = 1000
DEFAULT_TTL = timedelta(days=365)


class Device(Base):
    """Who provisioned a device token: ``owner`` is the operator's tenant (its governance centre)."""

    __tablename__ = "devices"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_id: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    owner: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str] = mapped_column(String(128), index=True)
    created_by: Mapped[str] = mapped_column(String(128))


@dataclass(frozen=True)
class DeviceRequest:
    """One device to provision: ``kind``, ``id`` (the token's tenant) and ``subject`` (which device)."""

    kind: str
    id: str
    subject: str


@dataclass(frozen=True)
class DeviceInfo:
    """A provisioned device; ``token`` only in the answer to the call that made it."""

    token_id: str
    kind: str
    id: str
    subject: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    token: str | None = None


@dataclass(frozen=True)
class Known:
    """What the registry on the chain says of one device: ``error`` (a field message) when it knows no such
    truck or site, and the terminal id a truck registered (a terminal's subject must be it)."""

    error: str | None
    terminal_id: str | None = None


def plan(raw: Sequence[DeviceRequest], known: Sequence[Known] | None,
         active: set[tuple[str, str, str]]) -> list[DeviceRequest]:
    """The devices to provision (subjects filled in), or 422 ``invalid_request`` naming every bad item by
    its index: ``{"devices": {"3": {"id": ["Unknown truck plate."]}}}``."""
    errors: dict[str, dict[str, list[str]]] = {}
    seen: set[tuple[str, str, str]] = set()
    out: list[DeviceRequest] = []
    for i, d in enumerate(raw):
        k = known[i] if known is not None else Known(None)
        subject = d.subject or k.terminal_id or f"{d.kind}-{d.id}"
        problems: dict[str, list[str]] = {}
        if k.error:
            problems["id"] = [k.error]
        elif k.terminal_id and subject != k.terminal_id:
            problems["subject"] = [f"The truck's registered terminal is {k.terminal_id}."]
        elif (d.kind, d.id, subject) in seen:
            problems["id"] = ["Listed twice."]
        elif (d.kind, d.id, subject) in active:
            problems["id"] = ["Already provisioned: revoke its token first."]
        seen.add((d.kind, d.id, subject))
        if problems:
            errors[str(i)] = problems
        out.append(DeviceRequest(d.kind, d.id, subject))
    if errors:
        raise InvalidRequest(f"{len(errors)} of {len(raw)} devices refused", fields={"devices": errors})
    return out


def _cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"d{seq}".encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("d"):
            raise ValueError(text)
        return int(text[1:], 10)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("bad cursor", fields={"cursor": ["Invalid cursor."]}) from None


def _create_table(engine: Engine, attempts: int = 5) -> None:
    """The ``devices`` table (another worker may be creating it at the same moment)."""
    for attempt in range(attempts):
        try:
            Device.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
            return
        except (OperationalError, ProgrammingError, IntegrityError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


class DeviceStore:
    """Provision, list and revoke device tokens, scoped to the owning operator's tenant."""

    def __init__(self, engine: Engine, *, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.session = make_sessionmaker(engine)
        self.clock = clock
        _create_table(engine)

    def active(self, owner: str, ids: Sequence[str]) -> set[tuple[str, str, str]]:
        """``(kind, id, subject)`` of ``owner``'s active devices with one of ``ids``."""
        now = self.clock()
        found: set[tuple[str, str, str]] = set()
        with self.session() as s:
            for chunk in _chunks(sorted(set(ids)), 500):
                rows = s.execute(
                    select(Device.kind, Device.device_id, ApiToken.subject)
                    .join(ApiToken, ApiToken.id == Device.token_id)
                    .where(Device.owner == owner, Device.device_id.in_(chunk), ApiToken.revoked_at.is_(None),
                           ApiToken.expires_at > now)
                ).all()
                found.update((str(k), str(d), str(sub)) for k, d, sub in rows)
        return found

    def provision(self, owner: str, created_by: str, devices: Sequence[DeviceRequest], *,
                  expires_at: datetime | None = None) -> list[DeviceInfo]:
        """Create every device's token in one transaction; the secrets are in the result only."""
        now = self.clock()
        expiry = expires_at or now + DEFAULT_TTL
        out: list[DeviceInfo] = []
        tokens: list[dict[str, object]] = []
        rows: list[dict[str, object]] = []
        for d in devices:
            secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
            token_id = secrets.token_hex(8)
            tokens.append({"id": token_id, "token_hash": hash_token(secret), "role": d.kind, "tenant": d.id,
                           "subject": d.subject, "created_at": now, "expires_at": expiry, "revoked_at": None,
                           "source": "api"})
            rows.append({"token_id": token_id, "owner": owner, "kind": d.kind, "device_id": d.id,
                         "created_by": created_by})
            out.append(DeviceInfo(token_id, d.kind, d.id, d.subject, now, expiry, None, secret))
        if not devices:
            return out
        with write_lock(self.engine), self.session.begin() as s:
            s.execute(insert(ApiToken), tokens)
            s.execute(insert(Device), rows)
        return out

    def page(self, owner: str, *, kind: str | None = None, device_id: str | None = None,
             active: bool | None = None, limit: int = 100,
             cursor: str | None = None) -> tuple[list[DeviceInfo], str | None]:
        """One page of ``owner``'s devices in provisioning order, and the cursor of the next (or None)."""
        q = (select(Device, ApiToken).join(ApiToken, ApiToken.id == Device.token_id)
             .where(Device.owner == owner).order_by(Device.seq).limit(limit + 1))
        if kind:
            q = q.where(Device.kind == kind)
        if device_id:
            q = q.where(Device.device_id == device_id)
        if active is True:
            q = q.where(ApiToken.revoked_at.is_(None), ApiToken.expires_at > self.clock())
        elif active is False:
            q = q.where((ApiToken.revoked_at.is_not(None)) | (ApiToken.expires_at <= self.clock()))
        if cursor:
            q = q.where(Device.seq > _uncursor(cursor))
        with self.session() as s:
            found = s.execute(q).all()
        page = found[:limit]
        items = [_info(dev, tok) for dev, tok in page]
        more = len(found) > limit
        return items, (_cursor(page[-1][0].seq) if more and page else None)

    def revoke(self, owner: str, token_ids: Sequence[str]) -> list[DeviceInfo]:
        """Revoke every one of ``token_ids`` (all or nothing: an id that is not ``owner``'s device, another
        operator's included, is named in a 422 ``invalid_request`` as unknown); revoking twice keeps the
        first time."""
        wanted = list(dict.fromkeys(token_ids))
        now = self.clock()
        with write_lock(self.engine), self.session.begin() as s:
            found = {dev.token_id: (dev, tok) for dev, tok in s.execute(
                select(Device, ApiToken).join(ApiToken, ApiToken.id == Device.token_id)
                .where(Device.owner == owner, Device.token_id.in_(wanted))).all()}
            missing = {str(i): ["Unknown device."] for i, t in enumerate(token_ids) if t not in found}
            if missing:
                raise InvalidRequest(f"{len(missing)} unknown devices", fields={"ids": missing})
            s.execute(update(ApiToken).where(ApiToken.id.in_(wanted), ApiToken.revoked_at.is_(None))
                      .values(revoked_at=now))
        return [_info(dev, tok, revoked_at=tok.revoked_at or now) for dev, tok in (found[t] for t in wanted)]


def _info(dev: Device, tok: ApiToken, *, revoked_at: datetime | None = None) -> DeviceInfo:
    return DeviceInfo(dev.token_id, dev.kind, dev.device_id, tok.subject, tok.created_at, tok.expires_at,
                      revoked_at or tok.revoked_at)


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
