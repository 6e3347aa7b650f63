"""ledger.core.tree: hash-level functions, CompactRange and MerkleLog agree with merkle.root."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import merkle
from ledger.core.tree import (
    EMPTY_ROOT,
    CompactRange,
    MerkleLog,
    consistency_path,
    hash_leaf,
    inclusion_path,
    root_from_hashes,
    verify_consistency_hashes,
    verify_inclusion_hash,
)
from ledger.errors import ProofError


def leaves(n: int, seed: int = 0) -> list[bytes]:
    rnd = random.Random(seed)
    return [rnd.randbytes(rnd.randint(0, 12)) for _ in range(n)]


@given(st.integers(0, 300), st.integers(0, 2**32))
@settings(max_examples=80, deadline=None)
def test_compact_range_root_matches_merkle_root(n: int, seed: int) -> None:
    """After every append, CompactRange.root() equals merkle.root() of the prefix."""
    data = leaves(n, seed)
    rng = CompactRange()
    for i, d in enumerate(data):
        assert rng.root() == merkle.root(data[:i])
        rng.append(hash_leaf(d))
    assert rng.size == n
    assert rng.root() == merkle.root(data)
    assert len(rng.peaks) == bin(n).count("1")


def test_compact_range_copy_and_dict_round_trip() -> None:
    """copy() is independent; to_dict/from_dict round trip."""
    rng = CompactRange()
    rng.extend([hash_leaf(d) for d in leaves(13)])
    c = rng.copy()
    c.append(hash_leaf(b"x"))
    assert rng.size == 13 and c.size == 14
    assert CompactRange.from_dict(rng.to_dict()) == rng
    assert CompactRange().root() == EMPTY_ROOT


@given(st.integers(1, 200), st.integers(0, 2**32), st.data())
@settings(max_examples=60, deadline=None)
def test_merkle_log_agrees_with_merkle(n: int, seed: int, data: st.DataObject) -> None:
    """MerkleLog roots, inclusion and consistency proofs for any older size equal merkle's."""
    d = leaves(n, seed)
    log = MerkleLog()
    log.extend([hash_leaf(x) for x in d])
    assert log.size == n
    assert log.root() == merkle.root(d)
    size = data.draw(st.integers(1, n))
    assert log.root(size) == merkle.root(d[:size])
    i = data.draw(st.integers(0, size - 1))
    assert log.inclusion(i, size) == merkle.inclusion_proof(d[:size], i)
    assert log.leaf(i) == hash_leaf(d[i])
    old = data.draw(st.integers(0, size))
    proof = log.consistency(old, size)
    assert proof == merkle.consistency_proof(d[:size], old)
    assert verify_consistency_hashes(old, size, log.root(old), log.root(size), proof)
    assert verify_inclusion_hash(hash_leaf(d[i]), i, size, log.inclusion(i, size), log.root(size))


def test_merkle_log_bad_requests() -> None:
    """Sizes and indexes outside the log raise ProofError."""
    log = MerkleLog()
    log.extend([hash_leaf(x) for x in leaves(5)])
    for call in (lambda: log.root(6), lambda: log.inclusion(5), lambda: log.inclusion(0, 6),
                 lambda: log.consistency(6), lambda: log.consistency(3, 2), lambda: log.leaf(5)):
        with pytest.raises(ProofError):
            call()
    assert MerkleLog().root() == EMPTY_ROOT


def test_hash_level_functions_match_leaf_data_functions() -> None:
    """tree's hash-level proofs are merkle's proofs (merkle only adds leaf hashing)."""
    d = leaves(11)
    h = [hash_leaf(x) for x in d]
    assert root_from_hashes(h) == merkle.root(d)
    assert inclusion_path(h, 7) == merkle.inclusion_proof(d, 7)
    assert consistency_path(h, 4) == merkle.consistency_proof(d, 4)
