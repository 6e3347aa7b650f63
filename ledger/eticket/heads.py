"""Per-object record chains and the object map: what lets an export prove it holds *every* record.

Each object (``ticket:ET…``, ``permit:PM-1``, ``truck:TR-1``, …) has a running hash over the ids of the
valid transactions that touched it, in chain order::

    head_0 = SHA-256("muck-ledger/object/v1\\n" || name)
    head_i = SHA-256(head_{i-1} || tx_id_i)            (tx_id_i: the 32 bytes of the i-th record's id)

The object map at a block height ``H`` is the RFC 9162 Merkle tree whose leaf ``j`` is the ``j``-th object
ever touched (slots in first-touch order, so a map at an earlier height is a prefix), with leaf data
:func:`leaf_data` ``(name, count, head)`` as of ``H``.  Nodes co-sign its root in their checkpoints
(:data:`EXTENSION`), so a regulator who recomputes the chain of an export's records and finds the co-signed
``(count, head)`` knows that no record was removed, added, duplicated or reordered (docs/PROVENANCE.md).

Pure: no I/O; heights come from the block context.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from typing import Any

from ledger.core.encoding import b64
from ledger.core.tree import hash_leaf, inclusion_path, root_from_hashes

OBJECT_CONTEXT = b"muck-ledger/object/v1\n"
LEAF_CONTEXT = "muck-ledger/object-head/v1"
#: First word of the checkpoint extension line ``muck-ledger/objects/v1 <height> <size> <base64 root>``.
EXTENSION = "muck-ledger/objects/v1"


def start_head(name: str) -> bytes:
    """The head of an object with no record yet."""
    return hashlib.sha256(OBJECT_CONTEXT + name.encode("utf-8")).digest()


def next_head(head: bytes, tx_id: str) -> bytes:
    """The head after one more record (``tx_id``: 64 hex digits)."""
    return hashlib.sha256(head + bytes.fromhex(tx_id)).digest()


def chain_head(name: str, tx_ids: Sequence[str]) -> bytes:
    """The head of ``name`` after ``tx_ids`` in this order."""
    head = start_head(name)
    for tx_id in tx_ids:
        head = next_head(head, tx_id)
    return head


def leaf_data(name: str, count: int, head: bytes) -> bytes:
    """The object-map leaf: ``"muck-ledger/object-head/v1\\n<name>\\n<count>\\n<head hex>\\n"`` in UTF-8."""
    return f"{LEAF_CONTEXT}\n{name}\n{count}\n{head.hex()}\n".encode()


def extension_line(height: int, size: int, root: bytes) -> str:
    """The checkpoint extension line committing to the object map at ``height``."""
    return f"{EXTENSION} {height} {size} {b64(root)}"


class ObjectHeads:
    """Every object's record chain with its history by height (to prove the map at any past height)."""

    __slots__ = ("_first", "_heads", "_heights", "_leaves", "_names", "_roots", "_slots")

    def __init__(self) -> None:
        self._slots: dict[str, int] = {}
        self._names: list[str] = []
        self._first: list[int] = []  # height each slot was first touched (non-decreasing)
        self._heights: list[list[int]] = []  # per slot: height of each record
        self._leaves: list[list[bytes]] = []  # per slot: leaf hash after each record
        self._heads: list[list[bytes]] = []  # per slot: head after each record
        #: root_at answers (checkpoints, witnesses and exports ask for the same final height); a touch at
        #: height h drops the ones at h or later
        self._roots: dict[int, tuple[int, bytes]] = {}

    def touch(self, name: str, tx_id: str, height: int) -> None:
        """One more valid record ``tx_id`` of ``name`` in the block at ``height`` (heights never go back)."""
        if self._roots:
            self._roots = {h: r for h, r in self._roots.items() if h < height}
        slot = self._slots.get(name)
        if slot is None:
            slot = self._slots[name] = len(self._names)
            self._names.append(name)
            self._first.append(height)
            self._heights.append([])
            self._leaves.append([])
            self._heads.append([])
            head = start_head(name)
        else:
            head = self._heads[slot][-1]
        head = next_head(head, tx_id)
        self._heights[slot].append(height)
        self._heads[slot].append(head)
        self._leaves[slot].append(hash_leaf(leaf_data(name, len(self._heights[slot]), head)))

    def last_height(self, name: str) -> int | None:
        """The height of the object's latest record (None: never touched)."""
        slot = self._slots.get(name)
        return None if slot is None else self._heights[slot][-1]

    def _size_at(self, height: int) -> int:
        return bisect.bisect_right(self._first, height)

    def _leaf_hashes(self, height: int) -> list[bytes]:
        out = []
        for slot in range(self._size_at(height)):
            count = bisect.bisect_right(self._heights[slot], height)
            out.append(self._leaves[slot][count - 1])
        return out

    def head_at(self, name: str, height: int) -> tuple[int, bytes]:
        """``(count, head)`` of ``name`` after the block at ``height`` (``(0, start_head)`` if untouched)."""
        slot = self._slots.get(name)
        if slot is None:
            return 0, start_head(name)
        count = bisect.bisect_right(self._heights[slot], height)
        return count, self._heads[slot][count - 1] if count else start_head(name)

    def root_at(self, height: int) -> tuple[int, bytes]:
        """``(size, root)`` of the object map after the block at ``height``."""
        known = self._roots.get(height)
        if known is None:
            leaves = self._leaf_hashes(height)
            known = len(leaves), root_from_hashes(leaves)
            if len(self._roots) >= 8:
                self._roots.pop(min(self._roots))
            self._roots[height] = known
        return known

    def proof_at(self, name: str, height: int) -> dict[str, Any] | None:
        """The inclusion of ``name``'s ``(count, head)`` in the map at ``height``, or None if not yet touched.

        ``{"name", "height", "count", "head", "index", "size", "root", "hashes"}`` (hex).
        """
        slot = self._slots.get(name)
        leaves = self._leaf_hashes(height)
        if slot is None or slot >= len(leaves):
            return None
        count, head = self.head_at(name, height)
        return {
            "name": name,
            "height": height,
            "count": count,
            "head": head.hex(),
            "index": slot,
            "size": len(leaves),
            "root": root_from_hashes(leaves).hex(),
            "hashes": [h.hex() for h in inclusion_path(leaves, slot)],
        }
