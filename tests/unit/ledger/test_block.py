"""ledger.core.block: headers, flags digests, certificates and chain links."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from ledger.core import merkle
from ledger.core.block import (
    HEADER_CONTEXT,
    VALID,
    Block,
    BlockHeader,
    HeaderSignature,
    certificate_signers,
    check_link,
    flags_digest,
    is_final,
    make_header,
    node_signature_verifies,
    node_signer,
    sign_header,
)
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import canonical
from ledger.core.tree import CompactRange
from ledger.errors import InvalidBlock, MalformedTransaction, WrongPreviousHash
from ledger.testing import Throwaway, make_tx, next_block


def chain(t: Throwaway, n: int = 3, txs: int = 4) -> list[Block]:
    out: list[Block] = []
    log = CompactRange()
    prev = None
    for b in range(n):
        block, log = next_block(previous=prev, log=log, t=t, txs=[make_tx(t.gateway, b * txs + i) for i in range(txs)])
        out.append(block)
        prev = block.header
    return out


def test_header_fields_are_recomputable(t: Throwaway) -> None:
    """tx_root is the RFC 9162 root of the encoded transactions, log_root the root of all so far,
    flags_digest the SHA-256 of the canonical code list, and block 0 links to the genesis hash."""
    b0, b1, _ = chain(t)
    assert b0.header.previous_hash == t.consortium.genesis_hash
    assert b1.header.previous_hash == b0.header.hash
    assert b0.header.tx_root == merkle.root(b0.leaves()).hex()
    assert b1.header.log_root == merkle.root(b0.leaves() + b1.leaves()).hex()
    assert b1.header.log_size == 8
    assert b0.header.flags_digest == hashlib.sha256(canonical([VALID] * 4)).hexdigest()
    assert flags_digest(["valid", "bad_signature"]) != flags_digest(["bad_signature", "valid"])


def test_header_hash_and_signing_message(t: Throwaway) -> None:
    """hash is SHA-256 of the canonical header; nodes sign HEADER_CONTEXT || raw hash."""
    h = chain(t, 1)[0].header
    assert h.hash == hashlib.sha256(canonical(h.to_dict())).hexdigest()
    assert h.signing_message == HEADER_CONTEXT + bytes.fromhex(h.hash)
    assert BlockHeader.from_dict(h.to_dict()) == h
    assert replace(h, timestamp="2026-11-23T22:00:09.000+08:00").hash != h.hash


def test_block_dict_round_trip(t: Throwaway) -> None:
    """Block.to_dict/from_dict round trip, including codes and signatures."""
    b = chain(t, 1)[0]
    back = Block.from_dict(b.to_dict())
    assert back == b
    assert b.to_dict()["hash"] == b.header.hash


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("height"), lambda d: d.update(height="x"), lambda d: d.update(timestamp="yesterday"),
])
def test_malformed_headers(t: Throwaway, mutate) -> None:
    """Missing or ill-typed header fields raise InvalidBlock; a bad time raises MalformedTransaction."""
    d = chain(t, 1)[0].header.to_dict()
    mutate(d)
    with pytest.raises((InvalidBlock, MalformedTransaction)):
        BlockHeader.from_dict(d)


def test_malformed_block_and_signature_dicts(t: Throwaway) -> None:
    """Block and header-signature dicts with missing parts raise InvalidBlock."""
    with pytest.raises(InvalidBlock):
        Block.from_dict({"header": chain(t, 1)[0].header.to_dict()})
    with pytest.raises(InvalidBlock):
        HeaderSignature.from_dict({"key_id": "k", "alg": "ed25519", "value": "!!"})


def test_certificate_quorum(t: Throwaway) -> None:
    """With 4 nodes the quorum is 3; unknown keys, non-node members, duplicate signers and
    signatures over another header do not count."""
    assert t.consortium.quorum == 3
    b0, b1 = chain(t, 2)
    h = b0.header
    nodes = t.node_keys()
    sigs = [sign_header(h, k) for k in nodes[:2]]
    assert not is_final(h, sigs, t.consortium)
    assert is_final(h, [*sigs, sign_header(h, nodes[2])], t.consortium)
    noise = [
        sigs[0],  # duplicate
        sign_header(h, PrivateKey.generate()),  # stranger
        sign_header(h, t.gateway),  # member, but not a node
        sign_header(b1.header, nodes[3]),  # another header
        HeaderSignature(nodes[3].key_id, "sm2", sign_header(h, nodes[3]).value),  # wrong alg
    ]
    assert certificate_signers(h, [*sigs, *noise], t.consortium) == [
        t.consortium.nodes[0].name, t.consortium.nodes[1].name]


def test_one_node_signature_check_for_every_caller(t: Throwaway, tmp_path) -> None:
    """node_signer is the one check of a header signature (the certificate, the store and the node use it):
    a node member's signature in its key's algorithm over the message; a wrong algorithm id, a non-node
    member, a stranger or another message fail — and the store keeps no wrong-algorithm signature."""
    from ledger.store.ledger_store import LedgerStore

    b0 = chain(t, 1)[0]
    h = b0.header
    node = t.node_keys()[0]
    good = sign_header(h, node)
    member = t.consortium.member(node.key_id)
    assert node_signer(good, h.signing_message, t.consortium) == member
    assert node_signature_verifies(member, good, h.signing_message)
    wrong_alg = HeaderSignature(node.key_id, "sm2", good.value)
    assert not node_signature_verifies(member, wrong_alg, h.signing_message)
    assert node_signer(wrong_alg, h.signing_message, t.consortium) is None
    assert node_signer(sign_header(h, t.gateway), h.signing_message, t.consortium) is None
    assert node_signer(sign_header(h, PrivateKey.generate()), h.signing_message, t.consortium) is None
    assert node_signer(good, HEADER_CONTEXT + b"\x00" * 32, t.consortium) is None
    store = LedgerStore.open(f"sqlite:///{tmp_path / 'l.db'}", consortium=t.consortium)
    try:
        store.append(Block(h, b0.transactions, b0.codes), t.consortium, check_signatures=False)
        others = t.node_keys()[1:]
        wrong = [HeaderSignature(k.key_id, "sm2", sign_header(h, k).value) for k in others]
        assert store.add_signatures(0, wrong, t.consortium) == 0
        assert store.add_signatures(0, [sign_header(h, k) for k in others], t.consortium) == 3
    finally:
        store.close()


def test_with_signatures_merges_by_key(t: Throwaway) -> None:
    """Adding signatures keeps one per key id."""
    b = chain(t, 1)[0]
    again = b.with_signatures([sign_header(b.header, k) for k in t.node_keys()])
    assert len(again.signatures) == len(t.node_keys())


def test_make_header_checks_codes_and_keeps_log(t: Throwaway) -> None:
    """One code per transaction is required; the input compact range is not changed."""
    log = CompactRange()
    txs = [make_tx(t.gateway, i) for i in range(3)]
    with pytest.raises(InvalidBlock):
        make_header(previous=None, genesis_hash=t.consortium.genesis_hash, transactions=txs, codes=[VALID],
                    log=log, timestamp="2026-11-23T22:00:00+08:00", proposer="x")
    _, after = make_header(previous=None, genesis_hash=t.consortium.genesis_hash, transactions=txs,
                           codes=[VALID] * 3, log=log, timestamp="2026-11-23T22:00:00+08:00", proposer="x")
    assert log.size == 0 and after.size == 3


def test_check_link(t: Throwaway) -> None:
    """Wrong height or previous hash raise WrongPreviousHash; going back in time raises InvalidBlock."""
    b0, b1, b2 = chain(t)
    check_link(b0.header, None, t.consortium.genesis_hash)
    check_link(b1.header, b0.header, t.consortium.genesis_hash)
    with pytest.raises(WrongPreviousHash, match="does not follow"):
        check_link(b2.header, b0.header, t.consortium.genesis_hash)
    with pytest.raises(WrongPreviousHash, match="links to"):
        check_link(replace(b1.header, previous_hash="00" * 32), b0.header, t.consortium.genesis_hash)
    with pytest.raises(WrongPreviousHash):
        check_link(b0.header, None, "11" * 32)
    with pytest.raises(InvalidBlock, match="timed before"):
        check_link(replace(b1.header, timestamp="2020-01-01T00:00:00+08:00"), b0.header, t.consortium.genesis_hash)
