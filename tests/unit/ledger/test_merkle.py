"""ledger.core.merkle: the RFC 9162 contract, against the RFC 6962 / certificate-transparency test data
and a naive recursive reference implementation."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import merkle
from ledger.errors import ProofError

# certificate-transparency merkle_tree_test.cc: the eight test leaves and the roots of their prefixes.
LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
)]
EMPTY_ROOT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (0-based leaf index, tree size, audit path)
INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
# (old size, new size, consistency proof)
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]


# -- a naive reference, straight from RFC 9162 section 2.1 ----------------------

def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    return [] if m in (0, len(d)) else ref_subproof(m, d, True)


def hx(hs: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hs]


def flip(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# -- known answers ------------------------------------------------------------

def test_empty_root() -> None:
    """MTH of no leaves is SHA-256 of the empty string."""
    assert merkle.root([]).hex() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_rfc6962_roots(size: int) -> None:
    """The roots of the first 1..8 CT test leaves are the published ones."""
    assert merkle.root(LEAVES[:size]).hex() == ROOTS[size - 1]


def test_leaf_hash() -> None:
    """leaf_hash is SHA-256(0x00 || data); the CT empty leaf hashes to 6e34…"""
    assert merkle.leaf_hash(b"").hex() == ROOTS[0]
    assert merkle.leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_known_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    """inclusion_proof reproduces the CT audit paths, and they verify against the known roots."""
    proof = merkle.inclusion_proof(LEAVES[:size], index)
    assert proof == hx(path)
    assert merkle.verify_inclusion(LEAVES[index], index, size, proof, bytes.fromhex(ROOTS[size - 1]))


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_known_consistency_proofs(old: int, new: int, path: list[str]) -> None:
    """consistency_proof reproduces the CT proofs, and they verify between the known roots."""
    proof = merkle.consistency_proof(LEAVES[:new], old)
    assert proof == hx(path)
    assert merkle.verify_consistency(old, new, bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1]), proof)


def test_consistency_from_empty_and_to_same_size() -> None:
    """From size 0 and to the same size the proof is empty; verification checks the roots."""
    assert merkle.consistency_proof(LEAVES, 0) == []
    assert merkle.verify_consistency(0, 8, bytes.fromhex(EMPTY_ROOT), bytes.fromhex(ROOTS[7]), [])
    assert not merkle.verify_consistency(0, 8, bytes.fromhex(ROOTS[0]), bytes.fromhex(ROOTS[7]), [])
    assert merkle.verify_consistency(8, 8, bytes.fromhex(ROOTS[7]), bytes.fromhex(ROOTS[7]), [])
    assert not merkle.verify_consistency(8, 8, bytes.fromhex(ROOTS[7]), bytes.fromhex(ROOTS[6]), [])
    assert not merkle.verify_consistency(8, 8, bytes.fromhex(ROOTS[7]), bytes.fromhex(ROOTS[7]), [b"x" * 32])


def test_bad_arguments() -> None:
    """Out-of-range indexes and sizes raise ProofError when proving and verify False when checking."""
    with pytest.raises(ProofError):
        merkle.inclusion_proof(LEAVES, 8)
    with pytest.raises(ProofError):
        merkle.inclusion_proof(LEAVES, -1)
    with pytest.raises(ProofError):
        merkle.inclusion_proof([], 0)
    with pytest.raises(ProofError):
        merkle.consistency_proof(LEAVES, 9)
    with pytest.raises(ProofError):
        merkle.consistency_proof(LEAVES, -1)
    root8 = bytes.fromhex(ROOTS[7])
    proof = merkle.inclusion_proof(LEAVES, 0)
    assert not merkle.verify_inclusion(LEAVES[0], 8, 8, proof, root8)
    assert not merkle.verify_inclusion(LEAVES[0], 0, 9, proof, root8)
    assert not merkle.verify_inclusion(LEAVES[0], 0, 8, [*proof, proof[0]], root8)
    assert not merkle.verify_inclusion(LEAVES[0], 0, 8, proof[:-1], root8)
    assert not merkle.verify_consistency(5, 4, root8, root8, [root8])
    assert not merkle.verify_consistency(3, 8, bytes.fromhex(ROOTS[2]), root8, [])


# -- properties ---------------------------------------------------------------

leaf_lists = st.lists(st.binary(max_size=8), min_size=1, max_size=70)


@given(leaf_lists)
@settings(max_examples=150, deadline=None)
def test_root_matches_reference(leaves: list[bytes]) -> None:
    """root() equals the naive recursive MTH for any leaves."""
    assert merkle.root(leaves) == ref_mth(leaves)


@given(leaf_lists, st.data())
@settings(max_examples=150, deadline=None)
def test_inclusion_proofs_verify_and_flips_fail(leaves: list[bytes], data: st.DataObject) -> None:
    """Every inclusion proof equals the reference and verifies; flipping any bit of the proof,
    the root or the leaf, or using another index, makes it fail."""
    n = len(leaves)
    i = data.draw(st.integers(0, n - 1))
    proof = merkle.inclusion_proof(leaves, i)
    assert proof == ref_path(i, leaves)
    root = merkle.root(leaves)
    assert merkle.verify_inclusion(leaves[i], i, n, proof, root)
    assert not merkle.verify_inclusion(leaves[i], i, n, proof, flip(root, data.draw(st.integers(0, 255))))
    assert not merkle.verify_inclusion(leaves[i] + b"\x00", i, n, proof, root)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[k] = flip(bad[k], data.draw(st.integers(0, 255)))
        assert not merkle.verify_inclusion(leaves[i], i, n, bad, root)
    j = data.draw(st.integers(0, n - 1))
    if leaves[j] != leaves[i]:
        assert not merkle.verify_inclusion(leaves[j], i, n, proof, root)


@given(leaf_lists, st.data())
@settings(max_examples=150, deadline=None)
def test_consistency_proofs_verify_and_flips_fail(leaves: list[bytes], data: st.DataObject) -> None:
    """Every consistency proof equals the reference and verifies; any flipped bit in the proof
    or either root makes it fail."""
    n = len(leaves)
    m = data.draw(st.integers(1, n))
    proof = merkle.consistency_proof(leaves, m)
    assert proof == ref_proof(m, leaves)
    old, new = merkle.root(leaves[:m]), merkle.root(leaves)
    assert merkle.verify_consistency(m, n, old, new, proof)
    bit = data.draw(st.integers(0, 255))
    assert not merkle.verify_consistency(m, n, flip(old, bit), new, proof)
    assert not merkle.verify_consistency(m, n, old, flip(new, bit), proof)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[k] = flip(bad[k], bit)
        assert not merkle.verify_consistency(m, n, old, new, bad)
        assert not merkle.verify_consistency(m, n, old, new, proof[:-1])
    if m < n:
        assert not merkle.verify_consistency(m, n, old, new, [*proof, new])


def test_contract_is_exactly_six_functions() -> None:
    """merkle.py exports exactly the RFC 9162 contract."""
    assert sorted(merkle.__all__) == sorted(
        ["leaf_hash", "root", "inclusion_proof", "verify_inclusion", "consistency_proof", "verify_consistency"]
    )
