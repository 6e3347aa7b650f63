"""RFC 9162 section 2.1 Merkle Tree Hash, inclusion and consistency proofs over leaf data."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.core import tree

__all__ = [
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data), RFC 9162 section 2.1.1."""
    return tree.hash_leaf(data)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of the leaf data ``leaves`` (SHA-256 of the empty string for n = 0)."""
    return tree.root_from_hashes([tree.hash_leaf(d) for d in leaves])


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]), RFC 9162 section 2.1.3.1; raises ProofError for a bad index."""
    return tree.inclusion_path([tree.hash_leaf(d) for d in leaves], index)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Verify that leaf *data* ``leaf`` is entry ``index`` of the tree of ``size`` with ``root``.

    RFC 9162 section 2.1.3.2.
    """
    return tree.verify_inclusion_hash(tree.hash_leaf(leaf), index, size, proof, root)


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]), RFC 9162 section 2.1.4.1; raises ProofError for a bad size."""
    return tree.consistency_path([tree.hash_leaf(d) for d in leaves], old_size)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Verify that the tree of ``old_size`` is a prefix of the tree of ``new_size``.

    RFC 9162 section 2.1.4.2.
    """
    return tree.verify_consistency_hashes(old_size, new_size, old_root, new_root, proof)
