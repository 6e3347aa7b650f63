"""Every reason code is exercised by a test; the gate's bad_signature comes from core admission."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from ledger.core.transaction import Signature
from ledger.errors import BadSignature
from ledger.eticket import CODES
from ledger.eticket.testing import make_world

HERE = Path(__file__).resolve().parent


def test_bad_signature_refused_at_admission() -> None:
    """A gate transaction whose signature does not verify is refused by the ledger core with
    bad_signature before it can reach the state machine."""
    world = make_world()
    tx = world.tx("system.tick", {}, "system:scheduler")
    forged = replace(tx, signature=Signature(tx.signature.alg, bytes(64)))
    with pytest.raises(BadSignature) as exc:
        forged.check(world.consortium)
    assert exc.value.reason == "bad_signature"
    tx.check(world.consortium)


def test_every_code_is_tested() -> None:
    """Each reason code of the catalogue appears as an asserted literal in the e-ticket tests."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in HERE.glob("test_eticket_*.py"))
    literals = set(re.findall(r'"([a-z_]+)"', text)) | set(re.findall(r"reason == \"([a-z_]+)\"", text))
    missing = sorted(code for code in CODES if code not in literals)
    assert missing == []


def test_accepted_transaction_has_code_valid() -> None:
    """An accepted transaction's outcome carries the code "valid" and changes the state digest;
    a refused one carries its reason and leaves the digest as it was."""
    world = make_world()
    before = world.machine.digest()
    out = world.submit("registry.org", {"org_id": "ORG-NEW", "name": "新单位", "kind": "other"}, "operator:u1")
    assert out.code == "valid"
    after = world.machine.digest()
    assert after != before
    again = world.submit("registry.org", {"org_id": "ORG-NEW", "name": "新单位", "kind": "other"}, "operator:u1")
    assert again.code == "duplicate_id"
    assert world.machine.digest() == after
