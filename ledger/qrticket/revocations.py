"""The signed revocation list of the offline gates (pure: no I/O, no clock).

Signed by the API's QR issuer key (the key that signs ``MT1:`` tickets, published at ``/api/v1/keys``), so a
gate that can verify tickets offline can verify the list with the same cached keys.  The document::

    {"format": "muck-eticket/revocations/v1",
     "key_id": "<16 hex>", "alg": "ed25519",
     "list": {"issued_at": "2026-12-02T21:00:00+08:00", "version": 812, "since_version": null,
              "tickets": [{"ticket_id", "voided_at", "version"}],
              "trucks": [{"truck_id", "plate", "until", "version"}],
              "companies": [{"company_id", "plates", "until", "version"}],
              "permits": [{"permit_id", "version"}]},
     "signature": "<standard base64 of the signature over DOMAIN || RFC 8785 canonical JSON of list>"}

``version`` is the ledger height the list reflects; ``since_version`` is set on a delta (only entries that
changed after that version).  ``alg`` repeats the key's own algorithm: a list whose ``alg`` is not its key's
is refused, as a ticket naming an unknown key is.  Errors: :class:`MalformedRevocationList`
(``bad_revocation_list``) and :class:`BadRevocationSignature` (``bad_revocation_signature``, an unknown key
id included).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ledger.core.crypto import PrivateKey, PublicKey
from ledger.core.encoding import CHINA_TZ, b64, canonical, unb64
from ledger.errors import LedgerError
from ledger.qrticket.errors import QrTicketError
from ledger.qrticket.gatecheck import normalise_plate

FORMAT = "muck-eticket/revocations/v1"
DOMAIN = b"muck-eticket/revocations/v1\x00"
_KINDS = ("tickets", "trucks", "companies", "permits")


class RevocationListError(QrTicketError):
    """Base of the revocation list's errors."""

    reason = "bad_revocation_list"


class MalformedRevocationList(RevocationListError):
    """Not a version-1 revocation list document."""

    reason = "bad_revocation_list"


class BadRevocationSignature(RevocationListError):
    """The signature does not verify with the named issuer key, or the key is not published."""

    reason = "bad_revocation_signature"


def _time(text: Any) -> datetime:
    try:
        t = datetime.fromisoformat(str(text))
    except ValueError:
        raise MalformedRevocationList(f"not an ISO 8601 time: {text!r}") from None
    return t.replace(tzinfo=CHINA_TZ) if t.tzinfo is None else t


def sign_list(body: Mapping[str, Any], key: PrivateKey, *, issued_at: datetime) -> dict[str, Any]:
    """The signed document of ``body`` (the ledger's entries) issued at ``issued_at``."""
    listed = {k: list(body.get(k) or []) for k in _KINDS}
    inner: dict[str, Any] = {
        "issued_at": issued_at.astimezone(CHINA_TZ).isoformat(timespec="seconds"),
        "version": int(body.get("version") or 0),
        "since_version": body.get("since_version"),
        **listed,
    }
    signature = key.sign(DOMAIN + canonical(inner))

    return {"format": FORMAT, "key_id": key.key_id, "alg": key.public_key.alg, "list": inner,
            "signature": b64(signature)}


@dataclass(frozen=True)
class RevocationList:
    """A verified list: what a gate refuses, and when the API issued it."""

    issued_at: datetime
    version: int
    since_version: int | None = None
    tickets: frozenset[str] = frozenset()
    trucks: Mapping[str, datetime] = field(default_factory=dict)  # plate -> suspended until
    companies: Mapping[str, datetime] = field(default_factory=dict)  # plate -> its company suspended until
    permits: frozenset[str] = frozenset()
    document: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def merged(self, delta: RevocationList) -> RevocationList:
        """This list with a newer delta added (the delta's issue time and version)."""
        return replace(
            self,
            issued_at=max(self.issued_at, delta.issued_at),
            version=max(self.version, delta.version),
            tickets=self.tickets | delta.tickets,
            trucks={**self.trucks, **delta.trucks},
            companies={**self.companies, **delta.companies},
            permits=self.permits | delta.permits,
        )

    def refusal(self, *, ticket_id: str, permit_id: str, plate: str, at: datetime) -> str | None:
        """The reason code a gate refuses this scan with (``voided``, ``permit_not_approved``,
        ``truck_suspended``), or None."""
        if ticket_id in self.tickets:
            return "voided"
        if permit_id in self.permits:
            return "permit_not_approved"
        p = normalise_plate(plate)
        for until in (self.trucks.get(p), self.companies.get(p)):
            if until is not None and until > at:
                return "truck_suspended"
        return None

    def age(self, now: datetime) -> float:
        """Seconds since the list was issued (negative when ``now`` is behind the API's clock)."""
        return (now - self.issued_at).total_seconds()


def _entries(inner: Mapping[str, Any], kind: str) -> Iterable[Mapping[str, Any]]:
    v = inner.get(kind)
    if not isinstance(v, list) or not all(isinstance(e, dict) for e in v):
        raise MalformedRevocationList(f"{kind} must be a list of objects")
    return v


def verify_list(doc: Any, keys: Mapping[str, PublicKey]) -> RevocationList:
    """Verify a signed document with the published keys and return its entries."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("list"), dict):
        raise MalformedRevocationList(f"not a {FORMAT} document")
    inner: dict[str, Any] = doc["list"]
    key = keys.get(str(doc.get("key_id")))
    if key is None:
        raise BadRevocationSignature(f"the list's key {doc.get('key_id')!r} is not a published key")
    if doc.get("alg") != key.alg:
        raise BadRevocationSignature(f"the list says alg {doc.get('alg')!r}, its key is {key.alg}")
    try:

        signature = unb64(str(doc.get("signature")), what="signature")
        signed = DOMAIN + canonical(inner)
    except LedgerError as exc:
        raise MalformedRevocationList(str(exc)) from None
    if not key.verify(signed, signature):
        raise BadRevocationSignature("the revocation list's signature does not verify")
    try:
        version = int(inner["version"])
        since = inner.get("since_version")
        trucks = {normalise_plate(str(e["plate"])): _time(e["until"]) for e in _entries(inner, "trucks")}
        companies: dict[str, datetime] = {}
        for e in _entries(inner, "companies"):
            for plate in e.get("plates") or []:
                companies[normalise_plate(str(plate))] = _time(e["until"])
        return RevocationList(
            issued_at=_time(inner["issued_at"]),
            version=version,
            since_version=None if since is None else int(since),
            tickets=frozenset(str(e["ticket_id"]) for e in _entries(inner, "tickets")),
            trucks=trucks,
            companies=companies,
            permits=frozenset(str(e["permit_id"]) for e in _entries(inner, "permits")),
            document=doc,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedRevocationList(f"revocation list entry is invalid: {exc}") from None
