"""The evidence store (ticket_api/evidence.py): only JPEG/PNG, a size limit, content addressing, a retention
period, and bytes that no longer match their digest never served."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from miniprogram_stub.photos import tiny_png
from ticket_api.db import make_engine
from ticket_api.errors import BadPhoto, EvidenceCorrupt, EvidenceNotFound, PhotoTooLarge
from ticket_api.evidence import EvidencePhoto, EvidenceStore, sniff

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + b"\x00" * 32 + b"\xff\xd9"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _store(tmp_path: Path, clock: Clock, *, max_bytes: int = 512 * 1024,
           retention: timedelta = timedelta(days=365)) -> EvidenceStore:
    return EvidenceStore(make_engine(f"sqlite:///{tmp_path}/api.sqlite"), clock=clock, max_bytes=max_bytes,
                         retention=retention)


def test_only_jpeg_and_png_by_their_markers() -> None:
    """PNG (signature, IHDR, IEND) and JPEG (SOI, EOI) are recognised; a GIF, a PNG signature on junk and a
    truncated JPEG are BadPhoto (reason bad_photo)."""
    assert sniff(tiny_png(3)) == "image/png" and sniff(JPEG) == "image/jpeg"
    for bad in (b"GIF89a....", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, JPEG[:-2], b""):
        with pytest.raises(BadPhoto) as exc:
            sniff(bad)
        assert exc.value.reason == "bad_photo"


def test_put_get_by_digest_size_limit_and_retention(tmp_path: Path) -> None:
    """A photo is filed under its SHA-256 (twice: one row) and served with its media type; over the limit is
    PhotoTooLarge (413); past the retention period it is not served (evidence_not_found)."""
    clock = Clock()
    store = _store(tmp_path, clock, max_bytes=1000, retention=timedelta(days=30))
    png = tiny_png(7)
    photo = store.put(png)
    assert photo.digest == "sha256:" + hashlib.sha256(png).hexdigest() and store.put(png) == photo
    assert store.get(photo.digest) == (png, "image/png")
    assert store.get(photo.digest.removeprefix("sha256:"))[0] == png
    with pytest.raises(PhotoTooLarge) as big:
        store.put(JPEG + b"\0" * 1000)
    assert big.value.http_status == 413
    clock.now += timedelta(days=31)
    with pytest.raises(EvidenceNotFound):
        store.get(photo.digest)
    with pytest.raises(EvidenceNotFound):
        store.get("../../etc/passwd")


def test_tampered_bytes_are_never_served(tmp_path: Path) -> None:
    """Bytes changed in the database under a digest raise EvidenceCorrupt (evidence_corrupt) instead."""
    store = _store(tmp_path, Clock())
    photo = store.put(tiny_png(8))
    with store.session.begin() as s:
        s.execute(update(EvidencePhoto).where(EvidencePhoto.digest == photo.digest).values(data=tiny_png(9)))
    with pytest.raises(EvidenceCorrupt) as exc:
        store.get(photo.digest)
    assert exc.value.reason == "evidence_corrupt" and exc.value.http_status == 500
