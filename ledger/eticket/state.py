"""The world state: record tables, a write overlay per transaction, derived indexes and the digest."""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterator
from typing import Any, TypeVar

from ledger.eticket.heads import ObjectHeads
from ledger.eticket.records import Counters, Ticket, values

KINDS = (
    "org",
    "project",
    "site",
    "company",
    "truck",
    "driver",
    "permit",
    "ticket",
    "violation",
    "penalty",
    "camera",
    "sighting",
    "meta",
    "amendment",
    "actor_key",
)
_MOD = 1 << 256
_DIGEST_CONTEXT = b"muck-ledger/eticket-state/v1\n"
R = TypeVar("R")


def record_hash(kind: str, key: str, record: Any) -> int:
    """Integer SHA-256 of ``kind 0x00 key 0x00 compact-json(field values)``."""
    body = json.dumps(values(record), ensure_ascii=False, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(f"{kind}\x00{key}\x00{body}".encode()).digest(), "big")


class State:
    """Committed records plus indexes derived from them; only :meth:`commit` changes it."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
        self.tables["meta"]["counters"] = Counters()
        self._hashes: dict[tuple[str, str], int] = {}
        self._acc = 0
        self._dirty: set[tuple[str, str]] = {("meta", "counters")}
        # derived indexes (rebuilt by commit from record changes)
        self.plates: dict[str, str] = {}
        self.departed_by_truck: dict[str, str] = {}
        self.open_issued: set[str] = set()
        self.open_departed: set[str] = set()
        self.history: dict[str, list[bytes]] = {}
        #: every object's record chain (ledger.eticket.heads), following ``history``
        self.heads = ObjectHeads()
        # tickets per project / truck / permit, in issue order
        self.tickets_by: dict[str, list[str]] = {}
        # deadline heaps for system.tick: (time, id); stale entries are skipped when popped
        self.expiry_heap: list[tuple[int, str]] = []
        self.overdue_heap: list[tuple[int, str]] = []
        self.permit_heap: list[tuple[int, str]] = []
        #: camera sightings waiting for the gate's own scan: (due, sighting id)
        self.sighting_heap: list[tuple[int, str]] = []
        #: newest event time per (plate, violation type): repeats within the dedup window are one event
        self.last_event: dict[tuple[str, str], tuple[int, str]] = {}

    def get(self, kind: str, key: str) -> Any:
        """The committed record or None."""
        return self.tables[kind].get(key)

    def commit(self, writes: dict[tuple[str, str], Any], touched: list[str], tx_id: str, height: int = 0) -> None:
        """Install ``writes`` (kind, id) → record, update indexes, append ``tx_id`` to touched histories and
        record chains (``height``: the block's)."""
        for (kind, key), new in writes.items():
            table = self.tables[kind]
            old = table.get(key)
            table[key] = new
            self._dirty.add((kind, key))
            if kind == "ticket":
                self._index_ticket(old, new)
            elif kind == "truck":
                if old is not None and old.plate != new.plate:
                    self.plates.pop(old.plate, None)
                self.plates[new.plate] = key
            elif kind == "permit" and old is None:
                heapq.heappush(self.permit_heap, (new.valid_to, key))
            elif kind == "violation" and old is None and new.plate is not None:
                seen = self.last_event.get((new.plate, new.type))
                if seen is None or new.reported_at >= seen[0]:
                    self.last_event[(new.plate, new.type)] = (new.reported_at, key)
            elif kind == "sighting" and old is None and new.state == "pending" and new.due is not None:
                heapq.heappush(self.sighting_heap, (new.due, key))
        if touched:
            raw = bytes.fromhex(tx_id) if len(tx_id) == 64 else tx_id.encode()
            hist = self.history
            heads = self.heads if len(tx_id) == 64 else None
            for name in touched:
                lst = hist.get(name)
                if lst is None:
                    hist[name] = [raw]
                elif lst[-1] != raw:
                    lst.append(raw)
                else:
                    continue
                if heads is not None:
                    heads.touch(name, tx_id, height)

    def _index_ticket(self, old: Ticket | None, new: Ticket) -> None:
        if old is None:
            for name in (f"project:{new.project_id}", f"truck:{new.truck_id}", f"permit:{new.permit_id}"):
                self.tickets_by.setdefault(name, []).append(new.ticket_id)
        before = old.state if old is not None else None
        if before == new.state:
            return
        if before == "issued":
            self.open_issued.discard(new.ticket_id)
        elif before == "departed":
            self.open_departed.discard(new.ticket_id)
            if self.departed_by_truck.get(new.truck_id) == new.ticket_id:
                del self.departed_by_truck[new.truck_id]
        if new.state == "issued":
            self.open_issued.add(new.ticket_id)
            heapq.heappush(self.expiry_heap, (new.valid_until, new.ticket_id))
        elif new.state == "departed":
            self.open_departed.add(new.ticket_id)
            self.departed_by_truck[new.truck_id] = new.ticket_id
            heapq.heappush(self.overdue_heap, ((new.departed_at or 0) + new.expected_s, new.ticket_id))

    def digest(self) -> str:
        """Hex SHA-256 of the state: an additive set hash of every record, updated for changed ones."""
        if self._dirty:
            acc = self._acc
            hashes = self._hashes
            for kind, key in self._dirty:
                old = hashes.get((kind, key))
                if old is not None:
                    acc -= old
                h = record_hash(kind, key, self.tables[kind][key])
                hashes[(kind, key)] = h
                acc += h
            self._acc = acc % _MOD
            self._dirty.clear()
        count = len(self._hashes)
        return hashlib.sha256(_DIGEST_CONTEXT + self._acc.to_bytes(32, "big") + count.to_bytes(8, "big")).hexdigest()

    def records(self, kind: str) -> Iterator[Any]:
        """Committed records of ``kind`` in id order."""
        table = self.tables[kind]
        for key in sorted(table):
            yield table[key]


class Writes:
    """A transaction's pending writes over the committed state; discarded when the rule refuses."""

    __slots__ = ("state", "touched", "writes")

    def __init__(self, state: State) -> None:
        self.state = state
        self.writes: dict[tuple[str, str], Any] = {}
        self.touched: list[str] = []

    def get(self, kind: str, key: str | None) -> Any:
        """The record as this transaction sees it (pending write first), or None."""
        if key is None:
            return None
        rec = self.writes.get((kind, key))
        return rec if rec is not None else self.state.tables[kind].get(key)

    def put(self, kind: str, key: str, record: Any) -> None:
        """Stage ``record`` under (kind, key) and mark the object touched."""
        self.writes[(kind, key)] = record
        self.touch(kind, key)

    def touch(self, kind: str, key: str | None) -> None:
        """Record that this transaction concerns the object (for its history) without changing it."""
        if key is not None and kind != "meta":
            name = f"{kind}:{key}"
            if name not in self.touched:
                self.touched.append(name)

    def counters(self) -> Counters:
        rec: Counters = self.get("meta", "counters")
        return rec
