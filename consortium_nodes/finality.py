"""Signatures and finality: who signed which header, divergences, the final height and its waiters."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.core.block import Block, BlockHeader, HeaderSignature, header_signing_message, node_signer
from ledger.core.consortium import Consortium
from ledger.core.transaction import parse_time
from ledger.errors import LedgerError
from ledger.store.ledger_store import LedgerStore

log = logging.getLogger("consortium_nodes.node")

#: signatures for heights this far beyond our head are dropped, not held (no flood of far-future heights)
MAX_PENDING_AHEAD = 10_000
#: header hashes of this many recent heights are kept (signature checks compare without a query)
HASH_CACHE = 10_000


@dataclass(frozen=True)
class Divergence:
    height: int
    member: str
    their_hash: str
    our_hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"height": self.height, "member": self.member, "their_hash": self.their_hash, "our_hash": self.our_hash}


class Divergences:
    """Members seen signing a header other than ours, at most once per (height, member)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._items: list[Divergence] = []

    def record(self, height: int, member: str, theirs: str, ours: str) -> None:
        with self._lock:
            if any(d.height == height and d.member == member for d in self._items):
                return
            self._items.append(Divergence(height, member, theirs, ours))
        log.error("DIVERGED: member %s signed header %s at height %d; this node (%s) built %s",
                  member, theirs[:16], height, self._name, ours[:16])

    def list(self) -> list[Divergence]:
        with self._lock:
            return list(self._items)


class Certificates:
    """The node members' signatures over our headers, and finality.

    One lock guards it all: signers per height, our header hashes, when each not yet final height
    was stored, signatures that arrived before our block, the final height and the final waiters
    (each waits on its own event, set only when its height becomes final).
    """

    def __init__(
        self, *, consortium: Consortium, store: LedgerStore, divergences: Divergences,
        monotonic: Callable[[], float] = time.monotonic, membership: Callable[[int], Consortium] | None = None,
    ) -> None:
        """``membership`` gives the membership in force for a height (governance: the node set and its keys
        change by vote); without it ``consortium`` holds for every block."""
        self._consortium = consortium
        self._at: Callable[[int], Consortium] = membership or (lambda _h: consortium)
        self._store = store
        self._divergences = divergences
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._signers: dict[int, set[str]] = {}
        self._hashes: dict[int, str] = {}
        self._times: dict[int, datetime] = {}  # block times of recent heights (key validity, no query)
        self._stored_at: dict[int, float] = {}
        self._pending: dict[int, list[tuple[str, str, HeaderSignature]]] = {}
        self._final = -1
        self._final_waiters: dict[int, list[threading.Event]] = {}
        self._closed = False

    # -- blocks -------------------------------------------------------------
    def replayed(self, height: int, signers: set[str]) -> None:
        """A stored block replayed at start, with the members whose signatures the store holds."""
        with self._lock:
            self._signers[height] = signers

    def store_block(
        self, header: BlockHeader, sigs: Sequence[HeaderSignature], names: set[str],
        commit: Callable[[list[HeaderSignature]], None],
    ) -> None:
        """Store our block through ``commit`` together with ``sigs`` (by ``names``) and the verified
        signatures that arrived for it earlier; one over another header is a divergence.  Under the
        lock, so a signature arriving meanwhile is either pending here or finds the block."""
        h, ours = header.height, header.hash
        wrong: list[tuple[str, str]] = []
        at = parse_time(header.timestamp)
        with self._lock:
            all_sigs, names = list(sigs), set(names)
            for member, theirs, sig in self._pending.pop(h, []):
                if theirs != ours:
                    wrong.append((member, theirs))
                elif node_signer(sig, header.signing_message, self._at(h), at) is None:
                    continue  # under a key expired at the block's time, or not in force at its height
                elif member not in names:
                    names.add(member)
                    all_sigs.append(sig)
            commit(all_sigs)
            self._signers[h] = names
            self._hashes[h] = ours
            self._hashes.pop(h - HASH_CACHE, None)
            self._times[h] = at
            self._times.pop(h - HASH_CACHE, None)
            self._stored_at[h] = self._monotonic()
            self._advance()
        for member, theirs in wrong:
            self._divergences.record(h, member, theirs, ours)

    # -- signatures -----------------------------------------------------------
    def accept(self, items: Sequence[tuple[int, str, HeaderSignature]]) -> int:
        """Verify node signatures over the header hashes they name and keep those over our headers (one
        commit for all); one over another header at a height we hold is a divergence; one for a block we
        do not have yet waits for it.  Returns how many were new."""
        good: list[tuple[str, int, str, HeaderSignature]] = []
        for height, header_hash, sig in items:
            try:
                message = header_signing_message(header_hash)
            except ValueError:
                continue
            member = node_signer(sig, message, self._at(height))
            if member is not None:
                good.append((member.name, height, header_hash, sig))
        if not good:
            return 0
        wrong: list[tuple[int, str, str, str]] = []
        new: list[tuple[str, int, str, HeaderSignature]] = []
        with self._lock:
            top = self._store.height
            for name, height, header_hash, sig in good:
                signers = self._signers.get(height)
                if signers is None:
                    if height <= top + MAX_PENDING_AHEAD:
                        self._pending.setdefault(height, []).append((name, header_hash, sig))
                    continue
                ours = self._hash_of(height)
                if ours is None:
                    continue
                if header_hash != ours:
                    wrong.append((height, name, header_hash, ours))
                elif self._key_refused(name, height):
                    continue  # a co-signature under a key expired at the block's time
                elif name not in signers and all(n != name or h != height for n, h, _, _ in new):
                    new.append((name, height, header_hash, sig))
            if new:
                try:
                    self._store.store_signatures([(height, hh, sig) for _, height, hh, sig in new])
                except LedgerError as exc:
                    log.warning("cannot store peer signatures: %s", exc.message)
                    return 0
                for name, height, _, _ in new:
                    self._signers[height].add(name)
                self._advance()
        for height, name, theirs, ours in wrong:
            self._divergences.record(height, name, theirs, ours)
        return len(new)

    def _hash_of(self, height: int) -> str | None:
        ours = self._hashes.get(height)
        if ours is None:
            header = self._store.header(height)
            ours = None if header is None else header.hash
        return ours

    def _key_refused(self, name: str, height: int) -> bool:
        """True when member ``name``'s key had expired at block ``height``'s time."""
        try:
            member = self._at(height).by_name(name)
        except LedgerError:
            return True  # not a member at that height (retired by a vote)
        if member.validity is None:
            return False
        at = self._times.get(height)
        if at is None:
            header = self._store.header(height)
            if header is None:
                return False
            at = parse_time(header.timestamp)
        return member.expired_at(at)

    def header_hash(self, height: int) -> str | None:
        """Our header hash at ``height`` (None if we have no block there)."""
        with self._lock:
            return self._hash_of(height)

    def has_signed(self, height: int, member: str) -> bool:
        with self._lock:
            return member in self._signers.get(height, ())

    def late(self, window: int, pull_after: float) -> list[int]:
        """Heights after the final one (at most ``window``) stored ``pull_after`` seconds ago or more."""
        now = self._monotonic()
        with self._lock:
            final = self._final
            for h in [h for h in self._stored_at if h <= final]:
                del self._stored_at[h]
            top = self._store.height
            return [h for h in range(final + 1, min(top, final + window) + 1)
                    if now - self._stored_at.get(h, 0.0) >= pull_after]

    # -- finality -------------------------------------------------------------
    @property
    def final_height(self) -> int:
        """The newest final height (read without the lock: an int only ever raised under it)."""
        return self._final

    def _advance(self) -> None:
        h = self._final
        while len(self._signers.get(h + 1, ())) >= self._at(h + 1).quorum:
            h += 1
        if h != self._final:
            self._final = h
            for height in [k for k in self._final_waiters if k <= h]:
                for e in self._final_waiters.pop(height):
                    e.set()

    def advance(self) -> None:
        with self._lock:
            self._advance()

    def close(self) -> None:
        """The node is stopping: every waiter returns now with what holds (no new waits)."""
        with self._lock:
            self._closed = True
            waiters, self._final_waiters = self._final_waiters, {}
        for events in waiters.values():
            for e in events:
                e.set()

    def wait_final(self, height: int, timeout: float) -> bool:
        """Wait until block ``height`` is final (True) or ``timeout`` passes or the node stops (False)."""
        event = threading.Event()
        with self._lock:
            if self._final >= height:
                return True
            if timeout <= 0 or self._closed:
                return False
            self._final_waiters.setdefault(height, []).append(event)
        if event.wait(timeout):
            with self._lock:
                return self._final >= height
        with self._lock:
            waiting = self._final_waiters.get(height, [])
            if event in waiting:
                waiting.remove(event)
                if not waiting:
                    del self._final_waiters[height]
            return self._final >= height


#: tx id → height entries kept for transactions stored since start (waiters look here, not in the store)
RECENT_TXS = 500_000


class StoredTxs:
    """tx id → height of recently stored transactions, and per-transaction waiters.

    Each waiter registers its own event, which only the block holding its transaction sets (many
    waiters cost nothing between blocks, and no query per block).  One lock guards both maps.
    """

    def __init__(self, *, keep: int = RECENT_TXS, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._keep = keep
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, int] = OrderedDict()
        self._waiters: dict[str, list[threading.Event]] = {}
        self._closed = False

    def close(self) -> None:
        """The node is stopping: every waiter returns now (None for a transaction not stored)."""
        with self._lock:
            self._closed = True
            woken = [e for events in self._waiters.values() for e in events]
        for e in woken:
            e.set()

    def stored(self, block: Block) -> None:
        """``block`` is stored: remember its transactions and wake their waiters."""
        h = block.height
        with self._lock:
            for tx in block.transactions:
                self._recent[tx.tx_id] = h
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)
            woken = [e for tx in block.transactions for e in self._waiters.get(tx.tx_id, ())] if self._waiters else []
        for e in woken:
            e.set()

    def height(self, tx_id: str) -> int | None:
        with self._lock:
            return self._recent.get(tx_id)

    def wait(self, tx_id: str, deadline: float) -> int | None:
        """The height of the block storing ``tx_id``, waiting until ``deadline`` (monotonic) for it."""
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(tx_id, []).append(event)
        try:
            # Looking again after registering closes the race with a block stored meanwhile.
            while (height := self.height(tx_id)) is None:
                left = deadline - self._monotonic()
                if left <= 0 or self._closed:
                    return None
                event.wait(left)
            return height
        finally:
            with self._lock:
                waiting = self._waiters.get(tx_id, [])
                if event in waiting:
                    waiting.remove(event)
                if not waiting:
                    self._waiters.pop(tx_id, None)
