"""One member's node: admits transactions, follows the order, builds, co-signs and finalises blocks."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consortium_nodes.builder import build_block
from consortium_nodes.errors import Diverged, PeerError
from consortium_nodes.ordering import Batch, Orderer, OrderingError
from consortium_nodes.peers import Peers
from consortium_nodes.pool import DurablePool
from ledger.core.block import HEADER_CONTEXT, Block, BlockHeader, HeaderSignature, sign_header
from ledger.core.builder import Checked, check_stateless
from ledger.core.consortium import Consortium
from ledger.core.crypto import PrivateKey
from ledger.core.statemachine import StateMachine
from ledger.core.times import CHINA_TZ as CST
from ledger.core.times import iso
from ledger.core.transaction import Transaction
from ledger.errors import LedgerError
from ledger.store.ledger_store import LedgerStore

log = logging.getLogger("consortium_nodes.node")


@dataclass(frozen=True)
class Admission:
    """The answer to one submitted transaction."""

    tx_id: str | None
    status: str  # "accepted" | "known" | "rejected"
    reason: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"tx_id": self.tx_id, "status": self.status}
        if self.reason:
            d["reason"] = self.reason
            d["message"] = self.message
        return d


@dataclass(frozen=True)
class Divergence:
    height: int
    member: str
    their_hash: str
    our_hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"height": self.height, "member": self.member, "their_hash": self.their_hash, "our_hash": self.our_hash}


class Node:
    """The running node.  Threads: batcher (pool → orderer), follower (orderer → blocks),
    sender (our signatures → peers) and syncer (pull missing signatures, catch up)."""

    def __init__(
        self,
        *,
        name: str,
        consortium: Consortium,
        key: PrivateKey,
        store: LedgerStore,
        machine: StateMachine,
        orderer: Orderer,
        peers: Peers,
        batch_max_txs: int = 500,
        batch_max_wait: float = 0.04,
        replay: str = "fast",
    ) -> None:
        member = consortium.member(key.key_id)
        if member.name != name or "node" not in member.roles:
            raise LedgerError(f"key {key.key_id} is not the node key of member {name}", reason="bad_config")
        self.name = name
        self.consortium = consortium
        self.key = key
        self.store = store
        self.machine = machine
        self.orderer = orderer
        self.peers = peers
        self.batch_max_txs = min(batch_max_txs, consortium.max_block_txs)
        self.batch_max_wait = batch_max_wait
        self.replay_mode = replay
        self.keep_batches = 1000
        self.checkpoint_every = 30.0
        #: seconds a stored block waits for pushed signatures before the syncer pulls them
        self.pull_after = 1.0
        self.state_lock = threading.RLock()
        self._pool: OrderedDict[str, bytes] = OrderedDict()
        self._pool_since: float | None = None  # when the oldest transaction in the pool arrived
        self._durable = DurablePool(engine=store.engine)
        #: ids written to the durable pool and not yet removed (they go with their block's commit)
        self._durable_ids: set[str] = set()
        #: bytes of transactions this node admitted → their stateless check result, so its block
        #: builder neither decodes nor verifies them a second time (they are dropped once built)
        self._checked: dict[bytes, Checked] = {}
        self._pool_cond = threading.Condition()
        self._inflight: dict[str, float] = {}
        self._final_cond = threading.Condition()
        #: status waiters, each woken only by its own event: height → waiting for it to be final,
        #: tx id → waiting for it to be stored (no wake-up of every waiter at every block)
        self._final_waiters: dict[int, list[threading.Event]] = {}
        self._tx_waiters: dict[str, list[threading.Event]] = {}
        self._waiters_lock = threading.Lock()
        #: tx id → height for transactions stored since start (waiters look here, not in the store)
        self._recent_txs: OrderedDict[str, int] = OrderedDict()
        self._signers: dict[int, set[str]] = {}
        self._final_height = -1
        #: header hashes of recent heights (signature checks compare against them without a query)
        self._header_hashes: dict[int, str] = {}
        #: when each not yet final height was stored (the syncer pulls only for late ones)
        self._stored_at: dict[int, float] = {}
        #: verified signatures that arrived before our block: (member, header hash, signature)
        self._pending_sigs: dict[int, list[tuple[str, str, HeaderSignature]]] = {}
        self._sig_lock = threading.RLock()
        #: our signatures still to push, per peer (one sender thread per peer)
        self._outboxes: dict[str, list[dict[str, Any]]] = {name: [] for name in peers.urls}
        self._outbox_cond = threading.Condition()
        self.divergences: list[Divergence] = []
        self.fault: str | None = None
        self.ready = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = time.time()

    # -- life cycle -------------------------------------------------------
    def start(self) -> None:
        """Replay the stored chain into the state machine, then start the threads."""
        self._replay()
        for tx_id, body in self._durable.load():
            self._pool[tx_id] = body
            self._durable_ids.add(tx_id)
        for target in (self._batcher, self._follower, self._syncer):
            t = threading.Thread(target=self._guard(target), name=f"{self.name}-{target.__name__}", daemon=True)
            t.start()
            self._threads.append(t)
        for peer in self._outboxes:
            t = threading.Thread(target=self._guard(self._sender), args=(peer,), name=f"{self.name}-sender-{peer}",
                                 daemon=True)
            t.start()
            self._threads.append(t)
        self.ready = True

    def stop(self) -> None:
        self._stop.set()
        with self._pool_cond:
            self._pool_cond.notify_all()
        with self._outbox_cond:
            self._outbox_cond.notify_all()
        for t in self._threads:
            t.join(timeout=3)
        self.orderer.close()

    def _guard(self, fn: Any) -> Any:
        def run(*args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:  # a dead thread must be visible, not silent
                self.fault = f"{fn.__name__} stopped: {exc.__class__.__name__}: {exc}"
                log.exception("node %s: %s", self.name, self.fault)

        return run

    def _replay(self) -> None:
        """Rebuild the world state from the stored chain, checking every stored block re-executes."""
        from ledger.verify.replay import replay

        t0 = time.time()

        def seen(block: Block) -> None:
            self._signers[block.height] = {self.consortium.member(s.key_id).name for s in block.signatures}

        with self.state_lock:
            problem = replay(self.store, self.consortium, self.machine, on_block=seen)
        if problem is not None:
            self.fault = f"{problem.message}: this node's database was changed behind its back"
            log.error("node %s: %s", self.name, self.fault)
        self._advance_final()
        log.info("node %s replayed %d blocks in %.2f s", self.name, self.store.height + 1, time.time() - t0)

    def _rebuild(self, block: Block, prev: BlockHeader | None, rng: Any) -> Any:
        from ledger.core.builder import rebuild

        with self.state_lock:
            return rebuild(block, prev, rng, self.consortium, self.machine)

    # -- submission -------------------------------------------------------
    def submit(self, items: Sequence[Any]) -> list[Admission]:
        """Admission checks; accepted transactions wait in the pool for ordering.

        Idempotent by tx id: a transaction already on the chain or in the pool
        answers ``known``.
        """
        out: list[Admission] = []
        fresh: list[tuple[str, bytes]] = []
        parsed: list[Checked | None] = []
        for item in items:
            wire: Transaction | None = None
            try:
                wire = Transaction.from_dict(item)
                # The canonical bytes decoded again: exactly the transaction every node will decode from
                # the order (a value that does not survive the round trip is refused here, not dropped there).
                checked = check_stateless(Transaction.decode(wire.encode()), self.consortium, self.machine)
            except LedgerError as exc:
                out.append(Admission(None if wire is None else wire.tx_id, "rejected", exc.reason, exc.message))
                parsed.append(None)
                continue
            parsed.append(checked)
            out.append(Admission(checked.tx.tx_id, "accepted"))
        ids = [c.tx.tx_id for c in parsed if c is not None]
        on_chain = self.store.known_tx_ids(ids)
        # Written before the answer: an accepted transaction survives a crash of this node.
        durable = [(c.tx.tx_id, c.tx.encode()) for c in parsed if c is not None and c.tx.tx_id not in on_chain]
        self._durable.add(durable)
        self._durable_ids.update(tx_id for tx_id, _ in durable)
        with self._pool_cond:
            for i, c in enumerate(parsed):
                if c is None:
                    continue
                tx_id = c.tx.tx_id
                if tx_id in on_chain or tx_id in self._pool or tx_id in self._inflight:
                    out[i] = Admission(tx_id, "known")
                    continue
                body = c.tx.encode()
                fresh.append((tx_id, body))
                self._checked[body] = c
            if fresh and not self._pool:
                self._pool_since = time.monotonic()
            for tx_id, body in fresh:
                self._pool[tx_id] = body
            if fresh:
                self._pool_cond.notify()
        return out

    def _batcher(self) -> None:
        while not self._stop.is_set():
            with self._pool_cond:
                if not self._pool:
                    self._pool_cond.wait(0.5)
                    continue
                # Collect until the oldest pooled transaction has waited batch_max_wait or a batch is full:
                # new submissions do not cut the wait short, so blocks stay few and large under load.
                since = self._pool_since if self._pool_since is not None else time.monotonic()
                while len(self._pool) < self.batch_max_txs and not self._stop.is_set():
                    left = since + self.batch_max_wait - time.monotonic()
                    if left <= 0:
                        break
                    self._pool_cond.wait(left)
                take = []
                while self._pool and len(take) < self.batch_max_txs:
                    take.append(self._pool.popitem(last=False))
                self._pool_since = time.monotonic() if self._pool else None
            if not take:
                continue
            now = time.time()
            try:
                self.orderer.append(
                    proposer=self.name, timestamp=iso(datetime.now(CST)), txs=[b for _, b in take]
                )
                for tx_id, _ in take:
                    self._inflight[tx_id] = now
                # The durable pool rows go in the commit of the block that holds them (_store_block).
            except OrderingError as exc:
                log.warning("node %s: ordering failed, will retry: %s", self.name, exc)
                with self._pool_cond:
                    for tx_id, body in reversed(take):
                        self._pool[tx_id] = body
                        self._pool.move_to_end(tx_id, last=False)
                    self._pool_since = time.monotonic() - self.batch_max_wait  # due again at once
                self._stop.wait(0.2)
            # Forget in-flight marks after a while (they are on the chain by then).
            if len(self._inflight) > 100_000:
                cutoff = now - 60
                self._inflight = {k: v for k, v in self._inflight.items() if v > cutoff}
            if len(self._checked) > 200_000:  # never built here (e.g. a peer's copy came first): forget the oldest
                for body in list(itertools.islice(self._checked, 100_000)):
                    self._checked.pop(body, None)

    # -- following the order ---------------------------------------------
    def _follower(self) -> None:
        while not self._stop.is_set():
            if self.fault and "database" in self.fault:
                self._stop.wait(1)
                continue
            after = self.store.height
            try:
                batches = self.orderer.read(after, wait=1.0, limit=16)
            except OrderingError as exc:
                forgotten_head = getattr(exc, "head", None)
                if forgotten_head is not None and forgotten_head > after:
                    # etcd no longer holds what we miss (compacted): certified blocks come from peers.
                    log.info("node %s: batches after %d were forgotten; catching up from peers", self.name, after)
                    self._catch_up(until=int(forgotten_head))
                    continue
                log.warning("node %s: cannot read the order: %s", self.name, exc)
                self._stop.wait(0.5)
                continue
            if not batches:
                continue
            for batch in batches:
                if batch.seq <= self.store.height:
                    continue
                if batch.seq != self.store.height + 1:
                    # The orderer no longer holds what we miss: fetch certified blocks from peers.
                    self._catch_up(until=batch.seq - 1)
                    break
                self._apply_batch(batch)

    def _apply_batch(self, batch: Batch) -> None:
        with self.state_lock:
            prev = self.store.head()
            built = build_block(
                batch=batch, previous=prev, log=self.store.compact_range(), consortium=self.consortium,
                machine=self.machine, seen=self.store.known_tx_ids, checked=self._checked,
            )
            self._store_block(built.block, leaf_hashes=built.leaf_hashes)
        for raw in batch.txs:
            self._checked.pop(raw, None)
        for tx in built.block.transactions:
            self._inflight.pop(tx.tx_id, None)

    def _store_block(
        self, block: Block, extra: Sequence[HeaderSignature] = (), leaf_hashes: Sequence[bytes] | None = None
    ) -> None:
        """Sign ``block`` (built or re-executed here) and store it in one commit together with the peer
        signatures already held for it and the removal of its transactions from the durable pool;
        then wake the status waiters and queue our signature for every peer."""
        own = sign_header(block.header, self.key)
        h = block.height
        ours = block.header.hash
        names = {self.name} | {self.consortium.member(s.key_id).name for s in extra}
        sigs = [own, *extra]
        wrong: list[tuple[str, str]] = []
        pooled = [tx.tx_id for tx in block.transactions if tx.tx_id in self._durable_ids]

        def drop_from_pool(conn: Any) -> None:
            DurablePool.remove_in(conn, pooled)

        with self._sig_lock:
            # Under the lock, so a signature arriving now either is in this pending list or finds the block.
            # Pending signatures were verified on arrival over the hash their sender named.
            for member, theirs, sig in self._pending_sigs.pop(h, []):
                if theirs != ours:
                    wrong.append((member, theirs))
                elif member not in names:
                    names.add(member)
                    sigs.append(sig)
            try:
                self.store.append(
                    block.with_signatures(sigs), self.consortium, check_signatures=False, header_checked=True,
                    leaf_hashes=leaf_hashes, also=drop_from_pool if pooled else None,
                )
            except LedgerError as exc:
                # The state machine has moved on; the store has not: stop following, loudly.
                self.fault = f"cannot store block {h}: {exc.message} (database)"
                log.critical("node %s: %s", self.name, self.fault)
                raise
            self._signers[h] = names
            self._header_hashes[h] = ours
            self._header_hashes.pop(h - 10_000, None)
            self._stored_at[h] = time.monotonic()
        self._durable_ids.difference_update(pooled)
        recent = self._recent_txs
        for tx in block.transactions:
            recent[tx.tx_id] = h
        while len(recent) > 500_000:
            recent.popitem(last=False)
        for member, theirs in wrong:
            self._diverged(h, member, theirs, ours)
        if self._tx_waiters:
            with self._waiters_lock:
                woken = [e for tx in block.transactions for e in self._tx_waiters.get(tx.tx_id, ())]
            for e in woken:
                e.set()
        self._advance_final()
        item = {"height": h, "header_hash": ours, **own.to_dict()}
        with self._outbox_cond:
            for outbox in self._outboxes.values():
                outbox.append(item)
            self._outbox_cond.notify_all()

    # -- signatures and finality -----------------------------------------
    def _sender(self, peer: str) -> None:
        """Push our header signatures to one peer (one thread per peer: a slow peer delays no other)."""
        while not self._stop.is_set():
            with self._outbox_cond:
                if not self._outboxes[peer]:
                    self._outbox_cond.wait(0.5)
                items, self._outboxes[peer] = self._outboxes[peer], []
            if items:
                self.peers.push_signatures_to(peer, self.name, items)

    def receive_signatures(self, items: Sequence[Mapping[str, Any]]) -> int:
        """Signatures pushed by peers; returns how many were new and valid."""
        parsed: list[tuple[int, str, HeaderSignature]] = []
        for it in items:
            try:
                parsed.append((int(it["height"]), str(it["header_hash"]), HeaderSignature.from_dict(it)))
            except (KeyError, TypeError, ValueError, LedgerError):
                continue
        return self._accept_signatures(parsed)

    def _accept_signature(self, height: int, header_hash: str, sig: HeaderSignature) -> bool:
        return self._accept_signatures([(height, header_hash, sig)]) > 0

    def _accept_signatures(self, items: Sequence[tuple[int, str, HeaderSignature]]) -> int:
        """Verify node signatures over the header hashes they name (once each) and keep those over our
        headers (one commit for all); a signature over another header at a height we hold is a divergence;
        one for a block we do not have yet waits for it.  Returns how many were new."""
        good: list[tuple[str, int, str, HeaderSignature]] = []
        for height, header_hash, sig in items:
            try:
                member = self.consortium.member(sig.key_id)
                digest = bytes.fromhex(header_hash)
            except (LedgerError, ValueError):
                continue
            if "node" not in member.roles or sig.alg != member.public_key.alg:
                continue
            if not member.public_key.verify(HEADER_CONTEXT + digest, sig.value):
                continue
            good.append((member.name, height, header_hash, sig))
        if not good:
            return 0
        wrong: list[tuple[int, str, str, str]] = []
        new: list[tuple[str, int, str, HeaderSignature]] = []
        with self._sig_lock:
            top = self.store.height
            for name, height, header_hash, sig in good:
                signers = self._signers.get(height)
                if signers is None:
                    if height <= top + 10_000:  # not a flood of far-future heights
                        self._pending_sigs.setdefault(height, []).append((name, header_hash, sig))
                    continue
                ours = self._header_hashes.get(height)
                if ours is None:
                    header = self.store.header(height)
                    if header is None:
                        continue
                    ours = header.hash
                if header_hash != ours:
                    wrong.append((height, name, header_hash, ours))
                elif name not in signers and all(n != name or h != height for n, h, _, _ in new):
                    new.append((name, height, header_hash, sig))
            if new:
                try:
                    self.store.store_signatures([(height, hh, sig) for _, height, hh, sig in new])
                except LedgerError as exc:
                    log.warning("node %s: cannot store peer signatures: %s", self.name, exc.message)
                    return 0
                for name, height, _, _ in new:
                    self._signers[height].add(name)
        for height, name, theirs, ours in wrong:
            self._diverged(height, name, theirs, ours)
        if new:
            self._advance_final()
        return len(new)

    def _diverged(self, height: int, member: str, theirs: str, ours: str) -> None:
        if any(d.height == height and d.member == member for d in self.divergences):
            return
        d = Divergence(height, member, theirs, ours)
        self.divergences.append(d)
        log.error(
            "DIVERGED: member %s signed header %s at height %d; this node (%s) built %s",
            member, theirs[:16], height, self.name, ours[:16],
        )

    def _advance_final(self) -> None:
        q = self.consortium.quorum
        with self._final_cond:
            h = self._final_height
            while len(self._signers.get(h + 1, ())) >= q:
                h += 1
            if h != self._final_height:
                self._final_height = h
                self._final_cond.notify_all()
                for height in [k for k in self._final_waiters if k <= h]:
                    for e in self._final_waiters.pop(height):
                        e.set()

    @property
    def final_height(self) -> int:
        return self._final_height

    def wait_final(self, height: int, timeout: float) -> bool:
        """Wait until block ``height`` is final (True) or ``timeout`` passes (False)."""
        event = threading.Event()
        with self._final_cond:
            if self._final_height >= height:
                return True
            if timeout <= 0:
                return False
            self._final_waiters.setdefault(height, []).append(event)
        if event.wait(timeout):
            return True
        with self._final_cond:
            waiting = self._final_waiters.get(height, [])
            if event in waiting:
                waiting.remove(event)
                if not waiting:
                    del self._final_waiters[height]
            return self._final_height >= height

    def tx_status(self, tx_id: str, wait: float = 0.0, *, with_tx: bool = False) -> dict[str, Any]:
        """Where a transaction is: pending, committed (in a block) or final (certified); ``with_tx`` adds
        the stored transaction itself (``tx``) once it is in a block."""
        deadline = time.monotonic() + wait
        height = self._recent_txs.get(tx_id)
        if height is None and self.store.known_tx_ids([tx_id]):  # stored before this process started
            height = -1
        if height is None:
            # Sleep until a block holding this transaction is stored: the waiter registers its own event,
            # which only that block sets (many waiters cost nothing between blocks, and no query per block).
            # Looking again after registering closes the race with a block stored meanwhile.
            event = threading.Event()
            with self._waiters_lock:
                self._tx_waiters.setdefault(tx_id, []).append(event)
            try:
                while (height := self._recent_txs.get(tx_id)) is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        with self._pool_cond:
                            known = tx_id in self._pool or tx_id in self._inflight
                        return {"tx_id": tx_id, "status": "pending" if known else "unknown"}
                    event.wait(left)
            finally:
                with self._waiters_lock:
                    waiting = self._tx_waiters.get(tx_id, [])
                    if event in waiting:
                        waiting.remove(event)
                    if not waiting:
                        self._tx_waiters.pop(tx_id, None)
        stored = self.store.get_tx(tx_id)
        if stored is None:  # pragma: no cover - ledger rows are never deleted
            return {"tx_id": tx_id, "status": "unknown"}
        final = self.wait_final(stored.height, max(0.0, deadline - time.monotonic()))
        d: dict[str, Any] = {
            "tx_id": tx_id, "status": "final" if final else "committed", "height": stored.height,
            "position": stored.position, "index": stored.seq, "code": stored.code,
        }
        if final:
            block_hash = self._header_hashes.get(stored.height)
            if block_hash is None:
                header = self.store.header(stored.height)
                assert header is not None
                block_hash = header.hash
            d["block_hash"] = block_hash
            d["certificate"] = [s.to_dict() for s in self.store.signatures(stored.height)]
        if with_tx:
            d["tx"] = stored.tx.to_dict()
        return d

    # -- checkpoints ---------------------------------------------------------
    def _verifiers(self) -> dict[str, Any]:
        return {m.name: m.public_key for m in self.consortium.nodes}

    def make_checkpoint(self) -> str:
        """Coordinate a checkpoint of the log at the newest final block, co-signed by a quorum of nodes.

        Each peer acts as a witness: it co-signs only when the checkpoint
        matches its own log.  The co-signed note is stored and shared.
        """
        from ledger.core import checkpoint as cp

        header = self.store.header(self._final_height) if self._final_height >= 0 else None
        if header is None:
            raise LedgerError("no final block to checkpoint yet", reason="not_ready")
        log = self.store.log()
        note = cp.sign(cp.Checkpoint(self.consortium.origin, header.log_size, log.root(header.log_size)),
                       [(self.name, self.key)])
        for name in self.peers.urls:
            try:
                note = self._merge_cosigned(note, self.peers.cosign(name, note))
            except (PeerError, LedgerError) as exc:
                log_msg = f"peer {name} did not co-sign: {exc}"
                logging.getLogger("consortium_nodes.node").info(log_msg)
        c, _signers = cp.verify(note, self._verifiers(), quorum=self.consortium.quorum, origin=self.consortium.origin)
        self.store.add_checkpoint(c.size, c.root.hex(), note)
        self.peers.share_checkpoint(note)
        return note

    @staticmethod
    def _merge_cosigned(mine: str, theirs: str) -> str:
        from ledger.core import checkpoint as cp

        body_a, sigs_a = cp.split_note(mine)
        body_b, sigs_b = cp.split_note(theirs)
        if body_a != body_b:
            raise LedgerError("a witness returned a different checkpoint", reason="checkpoint_mismatch")
        seen = {(s.name, s.key_hash) for s in sigs_a}
        lines = [s.line() for s in sigs_a] + [s.line() for s in sigs_b if (s.name, s.key_hash) not in seen]
        return body_a + "\n" + "".join(lines)

    def _periodic_checkpoint(self) -> None:
        from ledger.core import checkpoint as cp

        header = self.store.header(self._final_height) if self._final_height >= 0 else None
        latest = self.latest_checkpoint()
        size = -1 if latest is None else cp.Checkpoint.parse_body(cp.split_note(latest)[0]).size
        if header is None or header.log_size <= size:
            return
        try:
            self.make_checkpoint()
        except LedgerError as exc:
            log.warning("node %s: checkpoint not co-signed: %s", self.name, exc.message)

    def cosign_checkpoint(self, note: str) -> str:
        """Witness: add our signature if the checkpoint matches our own log, else refuse."""
        from ledger.core import checkpoint as cp

        body, _ = cp.split_note(note)
        c = cp.Checkpoint.parse_body(body)
        log = self.store.log()
        if c.origin != self.consortium.origin or c.size > log.size or log.root(c.size) != c.root:
            raise LedgerError(
                f"checkpoint of size {c.size} does not match this node's log", reason="checkpoint_mismatch"
            )
        return cp.cosign(note, [(self.name, self.key)])

    def accept_checkpoint(self, note: str) -> bool:
        """Store a shared co-signed checkpoint if it verifies and matches our log."""
        from ledger.core import checkpoint as cp

        c, _ = cp.verify(note, self._verifiers(), quorum=self.consortium.quorum, origin=self.consortium.origin)
        log = self.store.log()
        if c.size > log.size or log.root(c.size) != c.root:
            return False
        self.store.add_checkpoint(c.size, c.root.hex(), note)
        return True

    def latest_checkpoint(self) -> str | None:
        cps = self.store.checkpoints()
        return cps[-1][2] if cps else None

    def provenance(self, kind: str, key: str) -> dict[str, Any]:
        """Everything that happened to one ticket/permit/truck/project, with proofs to a fresh checkpoint."""
        from ledger.verify.provenance import build_export

        tx_ids = self.query("history", {"kind": kind, "key": key})
        if not tx_ids:
            raise LedgerError(f"no records for {kind} {key}", reason="not_found")
        note = self.latest_checkpoint()
        newest = max(s.seq for s in (self.store.get_tx(t) for t in tx_ids) if s is not None)
        from ledger.core import checkpoint as cp

        if note is None or cp.Checkpoint.parse_body(cp.split_note(note)[0]).size <= newest:
            note = self.make_checkpoint()
        return build_export(store=self.store, consortium=self.consortium, subject={"kind": kind, "id": key},
                            tx_ids=list(tx_ids), checkpoint_note=note)

    def statuses(self, tx_ids: Sequence[str]) -> dict[str, str]:
        """final / committed / unknown for many ids at once (one query)."""
        return {t: d["status"] for t, d in self.status_details(tx_ids).items()}

    def status_details(self, tx_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{"status", "code", "height"}`` for many ids at once: final / committed with the block's
        validation code and height, or unknown (code and height None)."""
        import sqlalchemy as sa

        from ledger.store import schema

        t = schema.transactions
        out: dict[str, dict[str, Any]] = {i: {"status": "unknown", "code": None, "height": None} for i in tx_ids}
        with self.store.engine.connect() as conn:
            for i in range(0, len(tx_ids), 500):
                rows = conn.execute(
                    sa.select(t.c.tx_id, t.c.height, t.c.code).where(t.c.tx_id.in_(list(tx_ids[i : i + 500])))
                ).all()
                for r in rows:
                    status = "final" if r.height <= self._final_height else "committed"
                    out[r.tx_id] = {"status": status, "code": r.code, "height": r.height}
        return out

    # -- catching up ------------------------------------------------------
    def _syncer(self) -> None:
        """Pull signatures we are missing and catch up when peers are ahead."""
        last_forget = last_checkpoint = time.monotonic()
        coordinator = self.consortium.nodes[0].name == self.name
        while not self._stop.wait(0.5):
            if coordinator and time.monotonic() - last_checkpoint > self.checkpoint_every:
                last_checkpoint = time.monotonic()
                self._periodic_checkpoint()
            if time.monotonic() - last_forget > 10 and self._final_height > self.keep_batches:
                # etcd keeps only recent batches; nodes further behind catch up from peers' blocks.
                try:
                    self.orderer.forget(self._final_height - self.keep_batches)
                except OrderingError as exc:
                    log.warning("node %s: forget failed: %s", self.name, exc)
                last_forget = time.monotonic()
            top = self.store.height
            now = time.monotonic()
            final = self._final_height
            with self._sig_lock:
                for h in [h for h in self._stored_at if h <= final]:
                    del self._stored_at[h]
            for h in range(final + 1, min(top, final + 20) + 1):
                # Pushed signatures normally arrive within milliseconds: pull only for blocks that have
                # waited longer (a peer was down, or restarted and missed our pushes).
                if now - self._stored_at.get(h, 0.0) < self.pull_after:
                    continue
                for name in self.peers.urls:
                    if name in self._signers.get(h, set()):
                        continue
                    try:
                        header_hash, sigs = self.peers.signatures(name, h)
                    except PeerError:
                        continue
                    self._accept_signatures([(h, header_hash, s) for s in sigs])

    def _catch_up(self, *, until: int) -> None:
        """Fetch certified blocks up to ``until`` from peers, re-execute and store them."""
        while self.store.height < until and not self._stop.is_set():
            start = self.store.height + 1
            got = False
            for name in self.peers.urls:
                try:
                    blocks = self.peers.blocks(name, start, limit=min(20, until - start + 1))
                except PeerError:
                    continue
                for block in blocks:
                    if block.height != self.store.height + 1:
                        break
                    self.adopt(block)
                    got = True
                if got:
                    break
            if not got:
                return

    def adopt(self, block: Block) -> None:
        """Store a peer's certified block after re-executing it to the same header."""
        from ledger.core.block import certificate_signers

        signers = certificate_signers(block.header, block.signatures, self.consortium)
        if len(signers) < self.consortium.quorum:
            raise PeerError(f"block {block.height} from a peer has no quorum certificate")
        with self.state_lock:
            prev = self.store.head()
            built = self._rebuild(block, prev, self.store.compact_range())
            if built.block.header != block.header:
                self._diverged(block.height, ",".join(signers), block.header.hash, built.block.header.hash)
                raise Diverged(f"certified block {block.height} does not re-execute to its header here")
            msg = block.header.signing_message
            others = [
                s for s in block.signatures
                if s.key_id != self.key.key_id and self._valid_node_sig(s, msg)
            ]
            self._store_block(built.block, extra=others, leaf_hashes=built.leaf_hashes)

    def _valid_node_sig(self, sig: HeaderSignature, msg: bytes) -> bool:
        try:
            member = self.consortium.member(sig.key_id)
        except LedgerError:
            return False
        return "node" in member.roles and member.public_key.verify(msg, sig.value)

    # -- reading ----------------------------------------------------------
    def status(self, *, digest: bool = False) -> dict[str, Any]:
        head = self.store.head()
        # The newest final block's certificate: which node members' signatures this node holds over its header
        # (the store keeps only signatures that verified over the stored header).
        final = self._final_height
        final_header = self.store.header(final) if final >= 0 else None
        certificate: dict[str, Any] | None = None
        if final_header is not None:
            signed = {s.key_id for s in self.store.signatures(final)}
            certificate = {
                "height": final, "header_hash": final_header.hash,
                "signers": [m.name for m in self.consortium.nodes if m.key_id in signed],
                "quorum": self.consortium.quorum, "nodes": len(self.consortium.nodes),
            }
        return {
            "node": self.name,
            "height": -1 if head is None else head.height,
            "head": None if head is None else head.hash,
            "final_height": final,
            "certificate": certificate,
            "ordering": self.orderer.kind,
            "transactions": self.store.tx_count(),
            "log_root": self.store.log().root().hex(),
            "pool": len(self._pool),
            "diverged": [d.to_dict() for d in self.divergences],
            "fault": self.fault,
            "ready": self.ready,
            "state_digest": self.state_digest() if digest else None,
        }

    def query(self, name: str, kwargs: Mapping[str, Any]) -> Any:
        """Run a read-only query of the state machine (``ledger.eticket.queries.<name>``) consistently."""
        import importlib

        module_name = getattr(self.machine, "queries_module", None) or {
            "EticketMachine": "ledger.eticket.queries"
        }.get(type(self.machine).__name__)
        if module_name is None:
            raise LedgerError("this node's state machine has no queries", reason="not_found")
        module = importlib.import_module(str(module_name))
        fn = getattr(module, name, None) if not name.startswith("_") else None
        if fn is None or getattr(fn, "__module__", None) != module.__name__ or not callable(fn):
            raise LedgerError(f"no query named {name!r}", reason="not_found")
        with self.state_lock:
            try:
                return fn(self.machine, **kwargs)
            except TypeError as exc:
                raise LedgerError(f"bad arguments for query {name}: {exc}", reason="malformed") from exc

    def state_digest(self) -> str:
        with self.state_lock:
            return self.machine.digest()
