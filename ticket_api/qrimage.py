"""Render a ticket's QR text as PNG or SVG (alphanumeric mode, error correction Q)."""

from __future__ import annotations

import io

import qrcode
import qrcode.constants
import qrcode.image.pure
import qrcode.image.svg
import qrcode.util

from ledger.qrticket.base45 import ALPHABET

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
