"""``GET /api/v1/keys``: the published QR ticket issuer keys (for offline gates)."""

from __future__ import annotations

from typing import Any

from ledger.qrticket.ticket import PREFIX
from ticket_api.auth import ctx
from ticket_api.jsonbody import Blueprint
from ticket_api.schemas import KeysSchema

blp = Blueprint("keys", __name__, url_prefix="/api/v1", description="Published QR issuer keys")


@blp.route("/keys")
@blp.response(200, KeysSchema)
def keys() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Every issuer key a valid ticket may name, by key id; ``current`` signs new tickets.

    Gates cache this list and verify tickets offline; after a rotation the
    old key stays listed (with ``valid_until``) until its tickets have expired.
    """
    ring = ctx().keyring
    published = ring.published()
    current = next((k.key_id for k in published if k.current), None)
    body = {
        "keys": [k.to_json() for k in published],
        "current_key_id": current,
        "qr_prefix": PREFIX,
        "qr_format": "MT1: + Base45(body || Ed25519 signature), see ledger/qrticket/ticket.py",
    }
    return body, 200, {"Cache-Control": "public, max-age=300"}
