"""The QR ticket issuer keys (the published list, with rotation; the signing key) and the QR images."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import qrcode
import qrcode.constants
import qrcode.image.pure
import qrcode.image.svg
import qrcode.util

from ledger.core.crypto import PrivateKey, PublicKey
from ledger.core.encoding import CHINA_TZ
from ledger.qrticket.base45 import ALPHABET
from ledger.store.keyfiles import read_private_key


@dataclass(frozen=True)
class IssuerKey:
    """A published ticket issuer key and the period in which it signs tickets.

    Gates keep accepting a retired key's tickets until they expire; the
    ``valid_until`` is when the key stopped (or stops) *issuing*.
    """

    public_key: PublicKey
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    current: bool = False

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "alg": self.public_key.alg,
            "public_key_pem": self.public_key.to_pem(),
            "public_key_hex": self.public_key.raw.hex(),
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "current": self.current,
        }


def _time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return t.replace(tzinfo=CHINA_TZ) if t.tzinfo is None else t


class Keyring:
    """Issuer keys by id; at most one is ``current`` (the one that signs)."""

    def __init__(self, keys: Sequence[IssuerKey], signing_key: PrivateKey | None = None) -> None:
        self.keys = list(keys)
        self.signing_key = signing_key
        if signing_key is not None and signing_key.key_id not in {k.key_id for k in self.keys}:
            self.keys = [IssuerKey(k.public_key, k.valid_from, k.valid_until, False) for k in self.keys]
            self.keys.append(IssuerKey(signing_key.public_key, current=True))
        if sum(1 for k in self.keys if k.current) > 1:
            raise ValueError("more than one current QR issuer key")

    def published(self) -> list[IssuerKey]:
        return list(self.keys)

    def mapping(self) -> dict[str, PublicKey]:
        """Key id -> public key, the argument of ``verify_ticket``."""
        return {k.key_id: k.public_key for k in self.keys}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Keyring:
        entries: list[Any] = list(cfg.get("QR_KEYS") or [])
        if cfg.get("QR_KEYS_FILE"):
            entries += json.loads(Path(cfg["QR_KEYS_FILE"]).read_text(encoding="utf-8"))
        keys = []
        for entry in entries:
            if isinstance(entry, IssuerKey):
                keys.append(entry)
                continue
            pem = entry.get("pem") or Path(entry["public_key_file"]).read_text(encoding="ascii")
            keys.append(
                IssuerKey(
                    PublicKey.from_pem(pem),
                    _time(entry.get("valid_from")),
                    _time(entry.get("valid_until")),
                    bool(entry.get("current", False)),
                )
            )
        signing = cfg.get("QR_SIGNING_KEY")
        if signing is None and cfg.get("QR_SIGNING_KEY_FILE"):
            signing = read_private_key(cfg["QR_SIGNING_KEY_FILE"])
        return cls(keys, signing)


ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_Q
_ALNUM = frozenset(ALPHABET)


def _build(text: str) -> qrcode.QRCode:
    if not text or not set(text) <= _ALNUM:
        raise ValueError("QR text must be non-empty and use only alphanumeric-mode characters")
    qr = qrcode.QRCode(error_correction=ERROR_CORRECTION, border=4, box_size=8)
    qr.add_data(qrcode.util.QRData(text.encode("ascii"), mode=qrcode.util.MODE_ALPHA_NUM))
    qr.make(fit=True)
    return qr


def qr_version(text: str) -> int:
    """The QR version (1..40) the text needs at error-correction level Q."""
    return int(_build(text).version)


def render_png(text: str, *, box_size: int = 8) -> bytes:
    """PNG bytes of the QR symbol (pure-Python encoder, quiet zone of 4 modules)."""
    qr = _build(text)
    qr.box_size = box_size
    img = qr.make_image(image_factory=qrcode.image.pure.PyPNGImage)
    buf = io.BytesIO()
    img.save(buf)
    return buf.getvalue()


def render_svg(text: str) -> bytes:
    """A standalone SVG document of the QR symbol (one path, sizes in mm)."""
    qr = _build(text)
    img = qr.make_image(image_factory=qrcode.image.svg.SvgPathImage)
    buf = io.BytesIO()
    img.save(buf)
    return buf.getvalue()
