"""The checkpoint's membership line (ledger.core.membership_line, docs/PROVENANCE.md "The membership line"): the
exact bytes of an era, the chain of eras, the line's text, and scripts/verify-export computing the same bytes with
its own code (Python and ``cryptography`` only)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ledger.core import membership_line as ml
from ledger.core.card import make_card
from ledger.core.consortium import Consortium
from ledger.core.crypto import PrivateKey
from ledger.core.validity import Validity
from ledger.errors import CheckpointError
from ledger.testing import throwaway_consortium
from tests.unit.ledger.test_provenance_governance import VE

YEAR = Validity(not_before="2026-01-01T00:00:00+08:00", not_after="2027-06-01T00:00:00+08:00")


def _carded() -> Consortium:
    """A genesis of member cards (validity periods): two nodes and a gateway, listed not in name order."""
    keys = {n: PrivateKey.generate() for n in ("zhujian", "chengguan", "gateway")}
    roles = {"zhujian": ("node", "approver"), "chengguan": ("node", "approver"), "gateway": ("gateway",)}
    members = tuple(make_card(k, name=n, org=n, roles=roles[n], validity=YEAR).member for n, k in keys.items())
    return Consortium(name="c", origin="example/c", members=members)


def test_an_era_is_its_context_start_version_quorum_rule_and_members_sorted_by_name() -> None:
    """The bytes spelt out in docs/PROVENANCE.md: context, log index, version, governance_quorum (two_thirds when
    unset), then per member, by name: hex of the name, key id, hex of the raw key, sorted roles, validity."""
    c = _carded()
    by = {m.name: m for m in c.members}
    lines = [f"{n.encode().hex()} {by[n].key_id} {by[n].public_key.raw.hex()} {r} 2026-01-01T00:00:00+08:00 "
             "2027-06-01T00:00:00+08:00\n" for n, r in (("chengguan", "approver,node"), ("gateway", "gateway"),
                                                        ("zhujian", "approver,node"))]
    expected = "muck-ledger/membership/v1\n7\n2\ngovernance_quorum two_thirds\n" + "".join(lines)
    assert ml.era_data(7, 2, c) == expected.encode()
    majority = c.amended(parameters={"governance_quorum": "majority"})
    assert b"\ngovernance_quorum majority\n" in ml.era_data(7, 2, majority)


def test_a_member_without_a_validity_period_has_dashes() -> None:
    """A genesis of the older format (no member cards): ``-`` for not_before and not_after."""
    t = throwaway_consortium(nodes=1)
    gateway = t.consortium.by_name("gateway")
    assert (f"{b'gateway'.hex()} {gateway.key_id} {gateway.public_key.raw.hex()} gateway - -\n".encode()
            in ml.era_data(0, 0, t.consortium))


def test_the_digest_chains_every_era_so_a_left_out_or_moved_one_changes_it() -> None:
    """h_0 = SHA-256(era_0), h_k = SHA-256(h_{k-1} || era_k): leaving out an era, swapping two, moving one's log
    index or changing its version all give another digest."""
    t = throwaway_consortium(nodes=4)
    genesis = t.consortium
    retired = genesis.amended(members=[m for m in genesis.members if m.name != "shengtai"])
    quorum = retired.amended(parameters={"governance_quorum": "all"})
    eras: list[ml.Era] = [(0, 0, genesis), (5, 1, retired), (9, 2, quorum)]
    h0 = hashlib.sha256(ml.era_data(0, 0, genesis)).digest()
    h1 = hashlib.sha256(h0 + ml.era_data(5, 1, retired)).digest()
    assert ml.history_digest(eras) == hashlib.sha256(h1 + ml.era_data(9, 2, quorum)).digest()
    others = [eras[:2], [eras[0], eras[2]], [eras[0], eras[2], eras[1]], [eras[0], (6, 1, retired), eras[2]],
              [eras[0], (5, 2, retired), eras[2]]]
    assert len({ml.history_digest(e) for e in [eras, *others]}) == 6
    with pytest.raises(CheckpointError):
        ml.history_digest([(3, 0, genesis)])


def test_the_line_parses_back_and_a_malformed_one_is_refused() -> None:
    """``muck-ledger/membership/v1 <height> <version> <base64 digest>``: found among other lines, absent gives
    None, a malformed one CheckpointError."""
    t = throwaway_consortium(nodes=4)
    line = ml.extension_line(12, [(0, 0, t.consortium)])
    digest = ml.history_digest([(0, 0, t.consortium)])
    assert line == f"muck-ledger/membership/v1 12 0 {base64.b64encode(digest).decode()}"
    assert ml.parse_line(["muck-ledger/objects/v1 12 3 x", line]) == (12, 0, digest)
    assert ml.parse_line(["muck-ledger/objects/v1 12 3 x"]) is None
    for bad in ("muck-ledger/membership/v1 12 0", "muck-ledger/membership/v1 012 0 " + line.split(" ")[3],
                "muck-ledger/membership/v1 12 0 AAAA"):
        with pytest.raises(CheckpointError):
            ml.parse_line([bad])


@pytest.mark.parametrize("carded", [True, False])
def test_verify_export_computes_the_same_bytes_with_its_own_code(carded: bool) -> None:
    """scripts/verify-export's era_data (its own parsing of the genesis document) equals the core's, for a genesis
    of member cards and one of plain members."""
    c = _carded() if carded else throwaway_consortium(nodes=4).consortium
    doc = c.to_dict()
    ms = VE.membership([VE.member_entry(m) for m in doc["members"]], doc["parameters"], doc["policy"])
    ms["version"] = 3
    assert VE.era_data(11, ms, carded) == ml.era_data(11, 3, c)
