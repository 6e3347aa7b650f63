"""ledger.core.card, ledger.core.genesis, ledger.core.validity: member cards, the co-signed genesis and keys
that expire, judged at a block's time (pure code: no files, no clock)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ledger.core.block import certificate_signers, sign_header
from ledger.core.builder import NullStateMachine, build_block
from ledger.core.card import MemberCard, make_card
from ledger.core.consortium import FORMAT, FORMAT_V2, Consortium
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.core.genesis import Genesis, assemble
from ledger.core.tree import CompactRange
from ledger.core.validity import Validity, expiring
from ledger.errors import CardInvalid, ConsortiumError, GenesisBadSignature, GenesisUnsigned
from ledger.store.demo_chain import make_tx
from ledger.testing import throwaway_consortium

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=CHINA_TZ)
YEAR = Validity(not_before="2026-01-01T00:00:00+08:00", not_after="2027-06-01T00:00:00+08:00")
SHORT = Validity(not_before="2026-01-01T00:00:00+08:00", not_after="2026-12-15T00:00:00+08:00")


def _founders(validity: dict[str, Validity] | None = None) -> tuple[list[MemberCard], dict[str, PrivateKey]]:
    keys: dict[str, PrivateKey] = {}
    cards = []
    for name, roles in (("chengguan", ("node", "approver")), ("zhujian", ("node", "approver")),
                        ("jiaotong", ("node",)), ("gateway", ("gateway",))):
        keys[name] = PrivateKey.generate()
        cards.append(make_card(keys[name], name=name, org=f"{name} 局", roles=roles,
                               validity=(validity or {}).get(name, YEAR)))
    return cards, keys


def _signed(validity: dict[str, Validity] | None = None) -> tuple[Genesis, dict[str, PrivateKey]]:
    cards, keys = _founders(validity)
    g = assemble(cards, name="t")
    for k in keys.values():
        g = g.sign(k)
    return g, keys


def test_a_card_is_signed_by_its_own_key_and_round_trips() -> None:
    """make_card signs the card with the member's key; its dict parses back to an equal card, and any change
    to its content (org, roles, validity, the key) breaks the self-signature."""
    key = PrivateKey.generate()
    card = make_card(key, name="zhujian", org="住房和城乡建设委员会", roles=["node", "approver"], validity=YEAR)
    d = card.to_dict()
    assert d["format"] == "muck-ledger-member-card/v1" and d["algorithm"] == "ed25519"
    assert d["key_id"] == key.key_id and d["card_signature"]["alg"] == "ed25519"
    assert MemberCard.from_dict(d) == card
    changes = (("org", "某公司"), ("roles", ["node", "regulator"]), ("not_after", "2030-01-01T00:00:00+08:00"))
    for field, value in changes:
        with pytest.raises(CardInvalid):
            MemberCard.from_dict({**d, field: value})
    other = PrivateKey.generate()
    with pytest.raises(CardInvalid):
        MemberCard.from_dict({**d, "public_key": other.public_key.to_pem(), "key_id": other.key_id})


def test_make_card_refuses_bad_names_roles_and_periods() -> None:
    """A card needs an ASCII name, known roles and a validity that ends after it starts."""
    key = PrivateKey.generate()
    with pytest.raises(ConsortiumError):
        make_card(key, name="住建", org="x", roles=["node"], validity=YEAR)
    with pytest.raises(ConsortiumError):
        make_card(key, name="zhujian", org="x", roles=["king"], validity=YEAR)
    with pytest.raises(ConsortiumError):
        Validity(not_before="2027-01-01T00:00:00+08:00", not_after="2026-01-01T00:00:00+08:00")
    with pytest.raises(ConsortiumError):
        Validity(not_before="2026-01-01", not_after="2027-01-01T00:00:00+08:00")


def test_the_genesis_is_complete_once_every_founder_signed() -> None:
    """An assembled genesis lacks every founder's signature; each sign() adds one; check() passes only when
    all signed, and the document (with its signatures) round-trips with the same genesis hash."""
    cards, keys = _founders()
    g = assemble(cards, name="t")
    assert g.consortium.format == FORMAT_V2 and g.missing() == list(keys)
    with pytest.raises(GenesisUnsigned, match="chengguan, zhujian, jiaotong, gateway"):
        g.check()
    for k in list(keys.values())[:-1]:
        g = g.sign(k)
    with pytest.raises(GenesisUnsigned, match="gateway"):
        g.check()
    g = g.sign(keys["gateway"]).sign(keys["gateway"])  # signing twice keeps one signature
    assert len(g.signatures) == 4 and g.missing() == []
    back = Genesis.from_dict(g.to_dict())
    assert back.check().genesis_hash == g.consortium.genesis_hash == Consortium.from_dict(g.to_dict()).genesis_hash
    assert "founder_signatures" not in g.consortium.to_dict()  # the hash covers the document, not the signatures


def test_a_changed_genesis_voids_the_founders_signatures() -> None:
    """A card re-signed by its own key with other roles, or a parameter changed, after the founders signed:
    their signatures no longer verify (genesis_bad_signature); a card changed without its key fails its own
    check (card_invalid)."""
    g, keys = _signed()
    d = g.to_dict()
    d2 = {**d, "parameters": {**d["parameters"], "max_block_txs": 1}}
    with pytest.raises(GenesisBadSignature):
        Genesis.from_dict(d2).check()
    m = d["members"][2]
    recarded = make_card(keys["jiaotong"], name="jiaotong", org=m["org"], roles=["node", "regulator"], validity=YEAR)
    d3 = {**d, "members": [*d["members"][:2], recarded.to_dict(), d["members"][3]]}
    with pytest.raises(GenesisBadSignature, match="chengguan, gateway, jiaotong, zhujian"):
        Genesis.from_dict(d3).check()
    d4 = {**d, "members": [*d["members"][:1], {**d["members"][1], "org": "某公司"}, *d["members"][2:]]}
    with pytest.raises(CardInvalid):
        Genesis.from_dict(d4)
    d5 = {**d, "founder_signatures": d["founder_signatures"][1:]}
    with pytest.raises(GenesisUnsigned, match="chengguan"):
        Genesis.from_dict(d5).check()


def test_an_older_genesis_is_read_as_it_is() -> None:
    """A v1 genesis (no cards) keeps its format and hash and needs no founders' signatures."""
    t = throwaway_consortium()
    g = Genesis.from_dict(t.consortium.to_dict())
    assert g.legacy and g.consortium.format == FORMAT
    assert g.check().genesis_hash == t.consortium.genesis_hash
    assert all(m.validity is None and m.key_refusal(T0) is None for m in g.consortium.members)


def test_expiring_lists_keys_ending_within_30_days() -> None:
    """expiring() lists the keys whose validity ends within 30 days of the time given (the expired too,
    days_left < 0), soonest first; the others are not listed."""
    g, _ = _signed({"gateway": SHORT})
    assert expiring(g.consortium.members, T0) == [
        {"member": "gateway", "key_id": g.consortium.by_name("gateway").key_id, "not_after": SHORT.not_after,
         "days_left": 13}]
    late = expiring(g.consortium.members, datetime(2027, 5, 20, tzinfo=CHINA_TZ))
    assert [(k["member"], k["days_left"]) for k in late] == [("gateway", -156), ("chengguan", 12),
                                                             ("jiaotong", 12), ("zhujian", 12)]


def test_a_transaction_under_an_expired_key_gets_key_expired_at_block_time() -> None:
    """The same transaction is valid in a block timed inside its signer's validity and refused with
    key_expired in one timed after it (key_not_yet_valid before it): the block's time decides."""
    g, keys = _signed({"gateway": SHORT})
    tx = make_tx(keys["gateway"], 1)

    def code_at(when: str) -> str:
        built = build_block(raw_txs=[tx.encode()], proposer="chengguan", timestamp=when, previous=None,
                            log=CompactRange(), consortium=g.consortium, machine=NullStateMachine(),
                            seen=lambda ids: set())
        return built.block.codes[0]

    assert code_at("2026-12-14T23:59:59+08:00") == "valid"
    assert code_at("2026-12-15T00:00:01+08:00") == "key_expired"
    assert code_at("2025-12-31T23:00:00+08:00") == "key_not_yet_valid"


def test_a_cosignature_under_an_expired_key_does_not_count() -> None:
    """A node's header signature counts toward a certificate only while its key is valid at the block's time."""
    g, keys = _signed({"zhujian": SHORT})
    built = build_block(raw_txs=[], proposer="chengguan", timestamp=(T0 + timedelta(days=30)).isoformat(),
                        previous=None, log=CompactRange(), consortium=g.consortium, machine=NullStateMachine(),
                        seen=lambda ids: set())
    sigs = [sign_header(built.block.header, keys[n]) for n in ("chengguan", "zhujian", "jiaotong")]
    assert certificate_signers(built.block.header, sigs, g.consortium) == ["chengguan", "jiaotong"]


def test_cosignatures_of_a_block_timed_before_the_keys_start_count() -> None:
    """Only the end of a key's validity is judged for co-signatures: the empty block of a skipped first batch
    (timed 1970, before every key's not_before) still becomes final."""
    g, keys = _signed()
    built = build_block(raw_txs=[], proposer="x", timestamp="1970-01-01T08:00:00.000+08:00", previous=None,
                        log=CompactRange(), consortium=g.consortium, machine=NullStateMachine(), seen=lambda ids: set())
    sigs = [sign_header(built.block.header, keys[n]) for n in ("chengguan", "zhujian", "jiaotong")]
    assert certificate_signers(built.block.header, sigs, g.consortium) == ["chengguan", "zhujian", "jiaotong"]
