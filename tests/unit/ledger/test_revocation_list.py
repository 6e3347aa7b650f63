"""The signed revocation list of the offline gates (ledger.qrticket.revocations)."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

import pytest

from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.qrticket.revocations import (
    BadRevocationSignature,
    MalformedRevocationList,
    sign_list,
    verify_list,
)

KEY = PrivateKey.generate()
OTHER = PrivateKey.generate()
NOW = datetime(2026, 12, 2, 21, 0, tzinfo=CHINA_TZ)
BODY: dict[str, Any] = {
    "version": 40,
    "since_version": None,
    "tickets": [{"ticket_id": "ET1", "voided_at": "2026-12-02T20:59:00+08:00", "version": 39}],
    "trucks": [{"truck_id": "TR-1", "plate": "渝A12345", "until": "2026-12-05T21:00:00+08:00", "version": 30}],
    "companies": [{"company_id": "C-02", "plates": ["渝BD12345"], "until": "2026-12-03T21:00:00+08:00",
                   "version": 31}],
    "permits": [{"permit_id": "PM-2", "version": 33}],
}


def test_a_signed_list_verifies_and_names_what_to_refuse() -> None:
    """A list signed by the issuer key verifies with the published keys; it carries its issue time in +08:00
    and its version, and refuses the voided ticket (voided), the revoked permit (permit_not_approved), the
    suspended truck and a suspended company's truck (truck_suspended, until their end), nothing else."""
    doc = sign_list(BODY, KEY, issued_at=NOW)
    assert doc["alg"] == "ed25519" and doc["key_id"] == KEY.key_id
    assert doc["list"]["issued_at"] == "2026-12-02T21:00:00+08:00"
    rl = verify_list(doc, {KEY.key_id: KEY.public_key})
    assert (rl.version, rl.issued_at) == (40, NOW)
    check = dict(ticket_id="ET9", permit_id="PM-1", plate="渝A99999", at=NOW)
    assert rl.refusal(**check) is None
    assert rl.refusal(**{**check, "ticket_id": "ET1"}) == "voided"
    assert rl.refusal(**{**check, "permit_id": "PM-2"}) == "permit_not_approved"
    assert rl.refusal(**{**check, "plate": "渝a·12345"}) == "truck_suspended"
    assert rl.refusal(**{**check, "plate": "渝BD12345"}) == "truck_suspended"
    assert rl.refusal(**{**check, "plate": "渝BD12345", "at": NOW + timedelta(days=2)}) is None
    assert rl.age(NOW + timedelta(minutes=5)) == 300


def test_a_changed_or_foreign_list_is_refused() -> None:
    """One changed entry, a signature by another key, an unpublished key id or an alg that is not the key's:
    bad_revocation_signature; a document of another shape: bad_revocation_list."""
    keys = {KEY.key_id: KEY.public_key}
    doc = sign_list(BODY, KEY, issued_at=NOW)
    changed = copy.deepcopy(doc)
    changed["list"]["tickets"] = []
    with pytest.raises(BadRevocationSignature):
        verify_list(changed, keys)
    forged = sign_list(BODY, OTHER, issued_at=NOW) | {"key_id": KEY.key_id}
    with pytest.raises(BadRevocationSignature):
        verify_list(forged, keys)
    with pytest.raises(BadRevocationSignature) as unknown:
        verify_list(sign_list(BODY, OTHER, issued_at=NOW), keys)
    assert unknown.value.reason == "bad_revocation_signature"
    with pytest.raises(BadRevocationSignature):
        verify_list(doc | {"alg": "ed448"}, keys)
    for bad in (None, [], {"format": "x"}, doc | {"signature": "!!"}):
        with pytest.raises(MalformedRevocationList) as exc:
            verify_list(bad, keys)
        assert exc.value.reason == "bad_revocation_list"


def test_a_delta_merges_into_the_list() -> None:
    """A delta adds its entries to the cached list and moves its version and issue time forward."""
    keys = {KEY.key_id: KEY.public_key}
    full = verify_list(sign_list(BODY, KEY, issued_at=NOW), keys)
    later = NOW + timedelta(minutes=10)
    delta = verify_list(sign_list({"version": 45, "since_version": 40,
                                   "tickets": [{"ticket_id": "ET2", "voided_at": None, "version": 44}]},
                                  KEY, issued_at=later), keys)
    assert delta.since_version == 40
    merged = full.merged(delta)
    assert (merged.version, merged.issued_at) == (45, later)
    assert merged.tickets == {"ET1", "ET2"} and merged.permits == {"PM-2"}
