"""RFC 9162 Merkle tree arithmetic over leaf *hashes*, and an incremental compact range."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger.errors import ProofError

EMPTY_ROOT = hashlib.sha256(b"").digest()


def hash_leaf(data: bytes) -> bytes:
    """RFC 9162 section 2.1.1: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """RFC 9162 section 2.1.1: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, iteratively (linear time, logarithmic memory)."""
    if not hashes:
        return EMPTY_ROOT
    rng = CompactRange()
    for h in hashes:
        rng.append(h)
    return rng.root()


def inclusion_path(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 section 2.1.3.1, over leaf hashes."""
    n = len(hashes)
    if not 0 <= index < n:
        raise ProofError(f"leaf index {index} is outside a tree of size {n}")
    path: list[bytes] = []
    lo, hi, m = 0, n, index
    stack: list[bytes] = []
    # Walk down from the root; siblings are collected top-down, then reversed.
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            stack.append(root_from_hashes(hashes[lo + k : hi]))
            hi = lo + k
        else:
            stack.append(root_from_hashes(hashes[lo : lo + k]))
            lo, m = lo + k, m - k
    path.extend(reversed(stack))
    return path


def consistency_path(hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 section 2.1.4.1, over leaf hashes."""
    n = len(hashes)
    if not 0 <= old_size <= n:
        raise ProofError(f"old size {old_size} is outside 0..{n}")
    if old_size == 0 or old_size == n:
        return []
    stack: list[bytes] = []
    lo, hi, m, complete = 0, n, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            stack.append(root_from_hashes(hashes[lo + k : hi]))
            hi = lo + k
        else:
            stack.append(root_from_hashes(hashes[lo : lo + k]))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        stack.append(root_from_hashes(hashes[lo:hi]))
    return list(reversed(stack))


def verify_inclusion_hash(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2 with a leaf *hash*."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency_hashes(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


@dataclass
class CompactRange:
    """The perfect-subtree hashes covering leaves [0, size): O(log n) state.

    Appending is amortised O(1) hashing; :meth:`root` folds the peaks right
    to left, which gives exactly RFC 9162's MTH (the left subtree of every
    node is the largest power of two).
    """

    size: int = 0
    peaks: list[bytes] = field(default_factory=list)

    def append(self, leaf_hash: bytes) -> None:
        h = leaf_hash
        n = self.size
        while n & 1:
            h = hash_children(self.peaks.pop(), h)
            n >>= 1
        self.peaks.append(h)
        self.size += 1

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        if not self.peaks:
            return EMPTY_ROOT
        r = self.peaks[-1]
        for p in reversed(self.peaks[:-1]):
            r = hash_children(p, r)
        return r

    def copy(self) -> CompactRange:
        return CompactRange(size=self.size, peaks=list(self.peaks))

    def to_dict(self) -> dict[str, object]:
        return {"size": self.size, "peaks": [p.hex() for p in self.peaks]}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> CompactRange:
        peaks = d.get("peaks", [])
        assert isinstance(peaks, list)
        size = d.get("size", 0)
        assert isinstance(size, int)
        return cls(size=size, peaks=[bytes.fromhex(str(p)) for p in peaks])


class MerkleLog:
    """All leaf hashes plus every complete subtree hash, for O(log n) proofs.

    ``levels[k]`` is a bytearray of 32-byte hashes of the perfect subtrees of
    2**k leaves aligned at multiples of 2**k (RFC 9162's left subtrees are
    always such perfect, aligned subtrees).  Memory is about 64 bytes a leaf.
    """

    __slots__ = ("levels",)

    def __init__(self) -> None:
        self.levels: list[bytearray] = [bytearray()]

    @property
    def size(self) -> int:
        return len(self.levels[0]) // 32

    def _node(self, level: int, index: int) -> bytes:
        return bytes(self.levels[level][index * 32 : index * 32 + 32])

    def leaf(self, index: int) -> bytes:
        if not 0 <= index < self.size:
            raise ProofError(f"leaf index {index} is outside a log of size {self.size}")
        return self._node(0, index)

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash, completing any subtrees it closes."""
        index = self.size
        self.levels[0] += leaf_hash
        level, h = 0, leaf_hash
        while index & 1:
            left = self._node(level, index - 1)
            h = hash_children(left, h)
            level += 1
            index >>= 1
            if len(self.levels) <= level:
                self.levels.append(bytearray())
            self.levels[level] += h

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def subtree(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for ``lo`` aligned as RFC 9162's recursion leaves it."""
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and lo % n == 0:
            level = n.bit_length() - 1
            return self._node(level, lo >> level)
        k = _split(n)
        return hash_children(self.subtree(lo, lo + k), self.subtree(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ProofError(f"tree size {size} is outside 0..{self.size}")
        return self.subtree(0, size)

    def inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[size]) (RFC 9162 section 2.1.3.1)."""
        size = self.size if size is None else size
        if not 0 <= index < size <= self.size:
            raise ProofError(f"leaf {index} is not in a tree of size {size} (log size {self.size})")
        stack: list[bytes] = []
        lo, hi, m = 0, size, index
        while hi - lo > 1:
            k = _split(hi - lo)
            if m < k:
                stack.append(self.subtree(lo + k, hi))
                hi = lo + k
            else:
                stack.append(self.subtree(lo, lo + k))
                lo, m = lo + k, m - k
        return list(reversed(stack))

    def consistency(self, old_size: int, size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[size]) (RFC 9162 section 2.1.4.1)."""
        size = self.size if size is None else size
        if not 0 <= old_size <= size <= self.size:
            raise ProofError(f"no consistency proof from size {old_size} to {size} (log size {self.size})")
        if old_size in (0, size):
            return []
        stack: list[bytes] = []
        lo, hi, m, complete = 0, size, old_size, True
        while m != hi - lo:
            k = _split(hi - lo)
            if m <= k:
                stack.append(self.subtree(lo + k, hi))
                hi = lo + k
            else:
                stack.append(self.subtree(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        if not complete:
            stack.append(self.subtree(lo, hi))
        return list(reversed(stack))
