#!/usr/bin/env python3
"""Regenerate the QR test assets in tests/assets/qr/ (deterministic: fixed seeds, no clock).

    .venv/bin/python tests/assets/make_qr_assets.py

Each asset is ``<name>.png`` (the QR image) and ``<name>.txt`` (its exact text);
``manifest.json`` lists, per asset, the reason ``verify_ticket`` gives with the
issuer key ``issuer_key("issuer-1")`` at ``check_at`` (``null`` = accepted).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ledger.core.encoding import CHINA_TZ  # noqa: E402
from ledger.qrticket.base45 import b45decode, b45encode  # noqa: E402
from ledger.qrticket.ticket import PREFIX, encode_ticket, signed_bytes  # noqa: E402
from ticket_api.issuer import qr_version, render_png  # noqa: E402
from ticket_api.testing import issuer_key, sample_claims  # noqa: E402

OUT = Path(__file__).resolve().parent / "qr"
CHECK_AT = datetime(2026, 11, 24, 1, 30, tzinfo=CHINA_TZ)


def build() -> dict[str, tuple[str, str | None, str]]:
    key = issuer_key("issuer-1")
    forger = issuer_key("forger")
    good = encode_ticket(sample_claims(), key)
    raw = b45decode(good[len(PREFIX) :])
    body, sig = raw[:-64], raw[-64:]
    altered = body.replace(bytes([160, 1]), bytes([200, 1]))  # volume 16.0 -> 20.0 m3
    assert altered != body
    expired_claims = sample_claims(
        ticket_id="ET202401010001",
        valid_from=datetime(2024, 1, 1, 22, 0, tzinfo=CHINA_TZ),
        valid_until=datetime(2024, 1, 1, 22, 0, tzinfo=CHINA_TZ) + timedelta(hours=24),
    )
    return {
        "valid": (good, None, "a valid ticket (issuer-1) for 渝A12345, P-001 -> S-003"),
        "forged_signature": (
            PREFIX + b45encode(body + forger.sign(signed_bytes(body))),
            "bad_signature",
            "body of 'valid' signed by another key under issuer-1's key id",
        ),
        "altered_field": (PREFIX + b45encode(altered + sig), "bad_signature", "volume changed after signing"),
        "unknown_key": (
            encode_ticket(sample_claims(), issuer_key("retired")),
            "bad_signature",
            "unpublished key",
        ),
        "expired": (encode_ticket(expired_claims, key), "expired", "valid on 2024-01-01/02 only"),
        "garbage": ("HELLO WORLD 12345", "malformed", "not a ticket at all"),
        "wrong_prefix": ("HC1:" + good[len(PREFIX) :], "malformed", "an EU DCC prefix on our payload"),
    }


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {
        "issuer_key": "ticket_api.testing.issuer_key('issuer-1')",
        "check_at": CHECK_AT.isoformat(),
        "assets": {},
    }
    for name, (text, reason, note) in build().items():
        (OUT / f"{name}.txt").write_text(text + "\n", encoding="ascii")
        (OUT / f"{name}.png").write_bytes(render_png(text))
        manifest["assets"][name] = {"reason": reason, "note": note, "qr_version": qr_version(text)}
    (OUT / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"wrote {len(manifest['assets'])} assets to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
