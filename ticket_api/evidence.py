"""The evidence store: camera photos by content address (SHA-256), outside the chain, in the API's database.

The chain holds only ``sha256:<hex>`` of each photo (``camera.sighting``'s ``photo_digest``, a violation's
``evidence``); the bytes are here, in table ``evidence_photos`` (PostgreSQL in production, SQLite by default),
with a size limit (``EVIDENCE_MAX_BYTES``) and a retention period (``EVIDENCE_RETENTION_DAYS``: older
photos are not served and are deleted by later writes).  Reading hashes the bytes again: a row whose bytes
do not match its digest is never served (:class:`~ticket_api.errors.EvidenceCorrupt`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Engine, Integer, LargeBinary, String, delete, select
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Mapped, mapped_column

from ticket_api.db import Base, UTCDateTime, make_sessionmaker, write_lock
from ticket_api.errors import BadPhoto, EvidenceCorrupt, EvidenceNotFound, PhotoTooLarge
from ticket_api.tokens import Clock, utcnow

log = logging.getLogger("ticket_api.evidence")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
DIGEST_RE = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")
DEFAULT_MAX_BYTES = 512 * 1024
DEFAULT_RETENTION_DAYS = 365


class EvidencePhoto(Base):
    """One photo: its digest (``sha256:<hex>``), media type, size, bytes and when it was stored."""

    __tablename__ = "evidence_photos"

    digest: Mapped[str] = mapped_column(String(71), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


@dataclass(frozen=True)
class Photo:
    digest: str
    content_type: str
    size: int


def sniff(data: bytes) -> str:
    """The media type of a JPEG or PNG image (start and end markers), else :class:`BadPhoto`."""
    if data.startswith(PNG_MAGIC) and data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82"):
        return "image/png"
    if data.startswith(JPEG_MAGIC) and data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "image/jpeg"
    raise BadPhoto("the photo is not a JPEG or PNG image")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_digest(text: str) -> str:
    """``sha256:<hex>`` from ``sha256:<hex>`` or ``<hex>``; :class:`EvidenceNotFound` for anything else."""
    m = DIGEST_RE.match(text)
    if m is None:
        raise EvidenceNotFound(f"not a sha256 digest: {text[:80]!r}")
    return "sha256:" + m.group(1)


class EvidenceStore:
    """Put and get photos by digest; ``max_bytes`` per photo, kept ``retention`` long."""

    def __init__(self, engine: Engine, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 retention: timedelta = timedelta(days=DEFAULT_RETENTION_DAYS), clock: Clock = utcnow) -> None:
        self.engine = engine
        self.session = make_sessionmaker(engine)
        self.max_bytes = max_bytes
        self.retention = retention
        self.clock = clock
        _create_table(engine)

    def put(self, data: bytes) -> Photo:
        """Check and store ``data`` (storing the same photo twice keeps one row); its :class:`Photo`."""
        if len(data) > self.max_bytes:
            raise PhotoTooLarge(f"{len(data)} bytes > {self.max_bytes}")
        photo = Photo(digest_of(data), sniff(data), len(data))
        now = self.clock()
        try:
            with write_lock(self.engine), self.session.begin() as s:
                s.execute(delete(EvidencePhoto).where(EvidencePhoto.created_at < now - self.retention))
                if s.get(EvidencePhoto, photo.digest) is None:
                    s.add(EvidencePhoto(digest=photo.digest, content_type=photo.content_type, size=photo.size,
                                        data=data, created_at=now))
        except IntegrityError:  # another worker stored the same photo at the same moment
            pass
        return photo

    def get(self, digest: str) -> tuple[bytes, str]:
        """The bytes and media type of the photo ``digest`` — only if they still hash to it."""
        key = parse_digest(digest)
        with self.session() as s:
            row = s.scalar(select(EvidencePhoto).where(EvidencePhoto.digest == key))
        if row is None or row.created_at < self.clock() - self.retention:
            raise EvidenceNotFound(f"no photo {key}")
        data = bytes(row.data)
        if digest_of(data) != key:
            log.error("evidence photo does not match its digest", extra={"digest": key})
            raise EvidenceCorrupt(f"stored bytes of {key} do not match")
        return data, sniff(data)


def _create_table(engine: Engine, attempts: int = 5) -> None:
    for attempt in range(attempts):
        try:
            EvidencePhoto.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
            return
        except (OperationalError, ProgrammingError, IntegrityError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def evidence_store() -> EvidenceStore:
    """The app's store (made on first use from ``EVIDENCE_MAX_BYTES`` and ``EVIDENCE_RETENTION_DAYS``)."""
    ext: dict[str, Any] = current_app.extensions
    store = ext.get("ticket_api_evidence")
    if store is None:
        api = ext["ticket_api"]
        cfg = api.config
        store = EvidenceStore(api.engine, max_bytes=int(cfg.get("EVIDENCE_MAX_BYTES", DEFAULT_MAX_BYTES)),
                              retention=timedelta(days=float(cfg.get("EVIDENCE_RETENTION_DAYS",
                                                                     DEFAULT_RETENTION_DAYS))))
        ext["ticket_api_evidence"] = store
    assert isinstance(store, EvidenceStore)
    return store
