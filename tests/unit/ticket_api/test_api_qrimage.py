"""QR rendering: zbar reads our PNGs back to exactly the ticket text; the bad assets are refused."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pyzbar.pyzbar import ZBarSymbol
from pyzbar.pyzbar import decode as zbar_decode

from ledger.qrticket.ticket import PROVINCES, TicketError, encode_ticket, verify_ticket
from ticket_api.issuer import qr_version, render_png, render_svg
from ticket_api.testing import issuer_key, sample_claims

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "qr"
KEY = issuer_key()


def zbar_read(png: bytes) -> str:
    symbols = zbar_decode(Image.open(io.BytesIO(png)), symbols=[ZBarSymbol.QRCODE])
    assert len(symbols) == 1
    return symbols[0].data.decode("ascii")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ticket_id=st.from_regex(r"\AET20[0-9]{10,16}\Z"),
    permit_id=st.from_regex(r"\APM-20[0-9]{2}-[0-9]{4,6}\Z"),
    plate=st.builds(
        lambda p, r: p + r, st.sampled_from(PROVINCES[:31]), st.from_regex(r"\A[A-Z][A-Z0-9]{5,6}\Z")
    ),
    volume=st.integers(10, 300),
)
def test_zbar_decodes_png_to_exact_text(ticket_id: str, permit_id: str, plate: str, volume: int) -> None:
    """For random realistic tickets zbar decodes the PNG to exactly the qr text (version <= 10)."""
    text = encode_ticket(
        sample_claims(ticket_id=ticket_id, permit_id=permit_id, plate=plate, volume_m3=volume / 10), KEY
    )
    assert qr_version(text) <= 10
    assert zbar_read(render_png(text)) == text


def test_svg_is_a_standalone_svg_document() -> None:
    """The SVG rendering parses as XML with an <svg> root and one path."""
    root = ET.fromstring(render_svg(encode_ticket(sample_claims(), KEY)))
    assert root.tag.endswith("svg")
    assert any(el.tag.endswith("path") for el in root.iter())


def test_render_refuses_non_alphanumeric_text() -> None:
    """Only QR alphanumeric-mode text is rendered (a lower-case letter is refused)."""
    with pytest.raises(ValueError):
        render_png("MT1:abc")


@pytest.mark.skipif(shutil.which("zbarimg") is None, reason="zbarimg not installed")
def test_zbarimg_cli_reads_the_same_text(tmp_path: Path) -> None:
    """Debian's zbarimg (the standard decoder) prints exactly the text."""
    text = encode_ticket(sample_claims(), KEY)
    png = tmp_path / "t.png"
    png.write_bytes(render_png(text))
    out = subprocess.run(
        ["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert out.rstrip("\n") == text


def test_bad_assets_are_refused_with_their_reasons() -> None:
    """Each asset PNG decodes to its .txt and verify_ticket gives the manifest's reason."""
    manifest = json.loads((ASSETS / "manifest.json").read_text(encoding="utf-8"))
    at = datetime.fromisoformat(manifest["check_at"])
    keys = {KEY.key_id: KEY.public_key}
    assert {"forged_signature", "altered_field", "expired", "garbage", "wrong_prefix"} <= set(
        manifest["assets"]
    )
    for name, entry in manifest["assets"].items():
        text = (ASSETS / f"{name}.txt").read_text(encoding="ascii").rstrip("\n")
        assert zbar_read((ASSETS / f"{name}.png").read_bytes()) == text, name
        try:
            verify_ticket(text, keys, at=at)
            reason = None
        except TicketError as exc:
            reason = exc.reason
        assert reason == entry["reason"], name


def test_assets_are_reproducible(tmp_path: Path) -> None:
    """make_qr_assets.py regenerates byte-identical files from fixed seeds."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_qr_assets", ASSETS.parent / "make_qr_assets.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, (text, _reason, _note) in module.build().items():
        assert (ASSETS / f"{name}.txt").read_text(encoding="ascii").rstrip("\n") == text
        assert (ASSETS / f"{name}.png").read_bytes() == render_png(text)
