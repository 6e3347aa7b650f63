"""The checks a gate makes on a scanned QR without the ledger (pure).

Used by the API's gate endpoints before they submit to the ledger, and by the
offline gate library in ``miniprogram_stub.gate``: both refuse with the same
reason codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from ledger.core.crypto import PublicKey
from ledger.qrticket.errors import QrTicketError
from ledger.qrticket.ticket import TicketClaims, TicketError, verify_ticket

EXIT = "exit"
DISPOSAL = "disposal"
_PLATE_NOISE = str.maketrans("", "", " ·•.-_\t")


class GateRefusal(QrTicketError):
    """A scan a gate must refuse; ``reason`` is a gate reason code, ``message`` the detail (or the reason)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason, reason=reason)


def normalise_plate(plate: str) -> str:
    """``渝a·12345`` -> ``渝A12345`` (cameras and people add dots and spaces)."""
    return plate.translate(_PLATE_NOISE).upper()


def check_scan(
    qr: str,
    keys: Mapping[str, PublicKey],
    *,
    kind: str,
    plate: str,
    site_id: str,
    at: datetime,
    leeway: timedelta = timedelta(0),
) -> TicketClaims:
    """Verify the QR and check the truck and the site; raise :class:`GateRefusal`.

    Reasons: ``malformed``, ``bad_signature`` (unknown issuer key included),
    ``expired``, ``not_yet_valid``, ``wrong_truck``, ``wrong_project`` (an exit
    gate of another project, as the ledger's ``gate.exit`` says) and
    ``wrong_site`` (a disposal gate of another site).
    """
    try:
        claims = verify_ticket(qr, keys, at=at, leeway=leeway)
    except TicketError as exc:
        raise GateRefusal(exc.reason, exc.message) from None
    if normalise_plate(plate) != normalise_plate(claims.plate):
        raise GateRefusal("wrong_truck", "the plate read at the gate is not the ticket's")
    if kind not in (EXIT, DISPOSAL):
        raise ValueError(f"gate kind must be {EXIT!r} or {DISPOSAL!r}")
    expected = claims.project_id if kind == EXIT else claims.disposal_site_id
    if expected != site_id:
        reason = "wrong_project" if kind == EXIT else "wrong_site"
        raise GateRefusal(reason, f"the ticket is for {expected}, this gate is at {site_id}")
    return claims
