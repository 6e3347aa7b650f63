"""The offline gates' revocation list: the ledger's entries signed with the QR issuer key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ledger.qrticket.revocations import sign_list
from ticket_api.adapter.gateway import Gateway
from ticket_api.errors import BadRequest, ServiceUnavailable
from ticket_api.issuer import Keyring


def parse_since(since: str | None) -> dict[str, int]:
    """``?since=``: a list version (digits) or an aware ISO 8601 time, as the node query's arguments."""
    if since is None:
        return {}
    if since.isascii() and since.isdigit():
        return {"since_version": int(since)}
    try:
        t = datetime.fromisoformat(since.replace(" ", "+"))  # a "+" not percent-encoded arrives as a space
    except ValueError:
        raise BadRequest(f"since={since!r}", reason="bad_since") from None
    if t.tzinfo is None:
        raise BadRequest(f"since={since!r} has no offset", reason="bad_since")
    return {"since_time": int(t.timestamp())}


def signed_revocations(gw: Gateway, keyring: Keyring, now: datetime, since: str | None) -> dict[str, Any]:
    """The signed list (or delta) as of the ledger's latest state, issued ``now``."""
    key = keyring.signing_key
    if key is None:
        raise ServiceUnavailable("no QR signing key is configured", reason="ledger_unavailable")
    body = gw.query("revocations", **parse_since(since))
    return sign_list(body, key, issued_at=now)
