"""The node's chain: replay at start, blocks built from ordered batches (or skipped ones) or adopted from peers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from consortium_nodes.batch_copies import BatchCopies
from consortium_nodes.errors import Diverged, MalformedBatch, PeerError, StoreFailed, StoreTampered
from consortium_nodes.finality import Certificates, Divergences, StoredTxs
from consortium_nodes.ordering import Batch
from consortium_nodes.peers import SignatureOutbox
from consortium_nodes.pool import DurablePool, TxPool
from consortium_nodes.queries import Health, SkippedBatch
from ledger.core.batch import check_batch
from ledger.core.block import Block, BlockHeader, HeaderSignature, certificate_signers, node_signer, sign_header
from ledger.core.builder import Built, Checked, StateMachine, block_time, rebuild
from ledger.core.builder import build_block as _build
from ledger.core.consortium import Consortium
from ledger.core.crypto import PrivateKey
from ledger.core.governed import Governed
from ledger.core.transaction import parse_time
from ledger.core.tree import CompactRange
from ledger.core.validity import KEY_EXPIRED
from ledger.errors import LedgerError, MalformedTransaction
from ledger.store.ledger_store import LedgerStore

log = logging.getLogger("consortium_nodes.node")


class Chain:
    """Appends blocks to the store and the state machine.

    ``state_lock`` guards the state machine and the store's head: every block is built (or
    re-executed), signed and stored under it, and queries read the machine under it.
    """

    def __init__(
        self, *, name: str, consortium: Consortium, key: PrivateKey, store: LedgerStore, machine: StateMachine,
        pool: TxPool, certificates: Certificates, divergences: Divergences, stored_txs: StoredTxs,
        outbox: SignatureOutbox, health: Health, clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._name = name
        self._clock = clock
        self._consortium = consortium
        #: the membership by height when the machine governs it (:class:`~ledger.core.governed.Governed`)
        self._gov = machine if isinstance(machine, Governed) else None
        self._key = key
        self._store = store
        self._machine = machine
        self._pool = pool
        self._certificates = certificates
        self._divergences = divergences
        self._stored_txs = stored_txs
        self._outbox = outbox
        self._health = health
        self.state_lock = threading.RLock()
        #: height → header of blocks stored here that this node has not co-signed yet (timed too far ahead
        #: of its clock); :meth:`sign_withheld` signs them once the clock is close enough
        self._withheld: dict[int, BlockHeader] = {}
        self._withheld_lock = threading.Lock()
        #: the newest block this node did not co-sign because its own key was outside its validity then
        self.key_refused: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self._name

    def _at(self, height: int) -> Consortium:
        """The membership in force for block ``height``."""
        return self._consortium if self._gov is None else self._gov.at(height)

    def _in_force(self) -> Consortium:
        """The membership of the next block."""
        return self._consortium if self._gov is None else self._gov.in_force()

    def replay(self) -> None:
        """Rebuild the world state from the stored chain, checking every stored block re-executes; a block
        that does not halts the chain (:class:`StoreTampered`)."""
        from ledger.verify.audit import replay

        t0 = time.time()

        def seen(block: Block) -> None:
            self._certificates.replayed(
                block.height, {self._at(block.height).member(s.key_id).name for s in block.signatures}
            )
            if all(s.key_id != self._key.key_id for s in block.signatures):
                with self._withheld_lock:
                    self._withheld[block.height] = block.header

        with self.state_lock:
            problem = replay(self._store, self._consortium, self._machine, on_block=seen)
        if problem is not None:
            error = StoreTampered(f"{problem.message}: this node's database was changed behind its back")
            self._health.failed(error.message, error)
            log.error("node %s: %s", self._name, error.message)
        self._certificates.advance()
        log.info("node %s replayed %d blocks in %.2f s", self._name, self._store.height + 1, time.time() - t0)

    def apply_batch(self, batch: Batch) -> None:
        """Build, sign and store block ``batch.seq``.  A malformed or not properly signed batch becomes an
        empty block on every node alike (:func:`build_skipped`), recorded in :class:`Health` with its
        reason, and the follower carries on."""
        with self.state_lock:
            prev = self._store.head()
            log_range = self._store.compact_range()
            built: Built
            try:
                built = build_block(
                    batch=batch, previous=prev, log=log_range, consortium=self._in_force(), machine=self._machine,
                    seen=self._store.known_tx_ids, checked=self._pool.checked_for(batch.txs),
                )
            except MalformedBatch as exc:
                self._health.skipped(SkippedBatch(batch.seq, batch.proposer[:MAX_SKIPPED_PROPOSER], exc.reason,
                                                  exc.message))
                built = build_skipped(batch=batch, previous=prev, log=log_range, consortium=self._consortium,
                                      machine=self._machine)
            self.store_block(built.block, leaf_hashes=built.leaf_hashes, batch=batch)
        self._pool.built(batch.txs, (tx.tx_id for tx in built.block.transactions))

    def adopt(self, block: Block) -> None:
        """Store a peer's certified block after re-executing it to the same header."""
        members = self._in_force()  # of the block after our head, which this one is (else it does not link)
        signers = certificate_signers(block.header, block.signatures, members)
        if len(signers) < members.quorum:
            raise PeerError(f"block {block.height} from a peer has no quorum certificate")
        with self.state_lock:
            prev = self._store.head()
            built = rebuild(block, prev, self._store.compact_range(), self._consortium, self._machine)
            if built.block.header != block.header:
                self._divergences.record(block.height, ",".join(signers), block.header.hash, built.block.header.hash)
                raise Diverged(f"certified block {block.height} does not re-execute to its header here")
            msg = block.header.signing_message
            at = parse_time(block.header.timestamp)
            others = [
                s for s in block.signatures
                if s.key_id != self._key.key_id and node_signer(s, msg, members, at) is not None
            ]
            self.store_block(built.block, extra=others, leaf_hashes=built.leaf_hashes)
        self._pool.built((), (tx.tx_id for tx in built.block.transactions))  # not proposed again from here

    def store_block(
        self, block: Block, extra: Sequence[HeaderSignature] = (), leaf_hashes: Sequence[bytes] | None = None,
        batch: Batch | None = None,
    ) -> None:
        """Sign ``block`` (built or re-executed here) and store it in one commit together with the peer
        signatures already held for it and the removal of its transactions from the durable pool;
        then wake the status waiters and queue our signature for every peer.  Raises
        :class:`StoreFailed` if the database refuses it (the state machine has moved on: the chain halts).

        A block timed more than the consortium's ``max_clock_skew_s`` ahead of this node's clock is stored
        without our signature (it is not final unless a quorum of nodes signs it); :meth:`sign_withheld`
        signs it once our clock has come that close to its time."""
        h = block.height
        refused = self.own_key_refusal(block.header)
        own = None if refused or self.too_far_ahead(block.header) else sign_header(block.header, self._key)
        names = {self._at(h).member(s.key_id).name for s in extra} | ({self._name} if own else set())
        pooled = self._pool.durable_in(tx.tx_id for tx in block.transactions)

        def drop_from_pool(conn: Any) -> None:
            if pooled:
                DurablePool.remove_in(conn, pooled)
            if batch is not None:  # the batch's copy, for a leader that lost its order log
                BatchCopies.keep_in(conn, batch)

        def commit(sigs: list[HeaderSignature]) -> None:
            try:
                self._store.append(
                    block.with_signatures(sigs), self._at(h), check_signatures=False, header_checked=True,
                    leaf_hashes=leaf_hashes, also=drop_from_pool if pooled or batch is not None else None,
                )
            except LedgerError as exc:
                error = StoreFailed(f"cannot store block {h}: {exc.message} (database)")
                self._health.failed(error.message, error)
                log.critical("node %s: %s", self._name, error.message)
                raise error from exc

        self._certificates.store_block(block.header, [own, *extra] if own else list(extra), names, commit)
        self._pool.stored(pooled)
        self._stored_txs.stored(block)
        if refused:
            log.error("node %s: block %d is timed %s, outside this node's key validity (%s): not co-signed; "
                      "the member needs a new key", self._name, h, block.header.timestamp, refused)
            return
        if own is None:
            with self._withheld_lock:
                self._withheld[h] = block.header
            log.error("node %s: block %d is timed %s, more than %d s ahead of this node's clock: not co-signed",
                      self._name, h, block.header.timestamp, self._at(h).max_clock_skew_s)
            return
        self._outbox.push({"height": h, "header_hash": block.header.hash, **own.to_dict()})

    def own_key_refusal(self, header: BlockHeader) -> str | None:
        """``key_expired`` when this node's key had expired at ``header``'s time, ``key_rotated`` or
        ``member_retired`` when a vote took it out of the membership at ``header``'s height: then the node does
        not co-sign (the signature would not count) and says so in ``/status``."""
        try:
            expired = self._at(header.height).member(self._key.key_id).expired_at(parse_time(header.timestamp))
            reason = KEY_EXPIRED if expired else None
        except LedgerError as exc:
            former = self._gov.refusal(self._key.key_id, header.height) if self._gov is not None else None
            reason = (former or exc).reason
        if reason is None:
            return None
        self.key_refused = {"height": header.height, "timestamp": header.timestamp, "reason": reason}
        return reason

    def too_far_ahead(self, header: BlockHeader) -> bool:
        """True when ``header``'s time is more than ``max_clock_skew_s`` ahead of this node's clock (then
        the node does not co-sign it).  The clock is read here, at signing, never in the block builder."""
        if self._clock is None:
            return False
        ahead = (parse_time(header.timestamp) - self._clock()).total_seconds()
        return ahead > self._at(header.height).max_clock_skew_s

    def sign_withheld(self) -> int:
        """Co-sign the stored blocks whose time our clock has come close enough to (in height order, and
        push the signatures to the peers); how many were signed."""
        with self._withheld_lock:
            waiting = sorted(self._withheld.items())
        done = 0
        for h, header in waiting:
            if self.too_far_ahead(header):
                break  # block times never go backwards: the later ones are no nearer
            own = sign_header(header, self._key)
            self._certificates.accept([(h, header.hash, own)])
            self._outbox.push({"height": h, "header_hash": header.hash, **own.to_dict()})
            with self._withheld_lock:
                self._withheld.pop(h, None)
            done += 1
        return done

    def withheld(self) -> dict[str, Any]:
        """``{"count", "first"}`` of the stored blocks this node has not co-signed (timed too far ahead);
        ``first`` is the lowest ``{"height", "timestamp", "reason"}``."""
        with self._withheld_lock:
            if not self._withheld:
                return {"count": 0, "first": None}
            h = min(self._withheld)
            return {"count": len(self._withheld),
                    "first": {"height": h, "timestamp": self._withheld[h].timestamp, "reason": "block_time_ahead"}}


__all__ = ["FIRST_SKIPPED_TIME", "MAX_SKIPPED_PROPOSER", "Built", "block_time", "build_block", "build_skipped"]

#: The time of a skipped batch's block when it is the first block of the chain (there is no earlier
#: block time to repeat); any fixed valid time would do, as long as every node uses the same one.
FIRST_SKIPPED_TIME = "1970-01-01T08:00:00.000+08:00"
#: characters of a skipped batch's (unauthenticated) proposer name that go into its empty block's header
MAX_SKIPPED_PROPOSER = 64


def build_block(
    *,
    batch: Batch,
    previous: BlockHeader | None,
    log: CompactRange,
    consortium: Consortium,
    machine: StateMachine,
    seen: Callable[[Sequence[str]], set[str]],
    checked: Mapping[bytes, Checked] | None = None,
) -> Built:
    """Block ``batch.seq`` from the ordered batch; see :func:`ledger.core.builder.build_block`.

    Raises :class:`MalformedBatch` (before anything is applied to ``machine``) for a batch whose
    timestamp is not ISO 8601 with an offset (reason ``malformed_batch``), or that is not signed by
    the node member it names as proposer, for its content and its place in the order
    (:func:`ledger.core.batch.check_batch`; the reason is the check's: ``unsigned_batch``,
    ``unknown_signer``, ``forbidden``, ``bad_signature``): the caller builds :func:`build_skipped`
    instead.  A batch timed before the previous block gets the previous block's time (:func:`block_time`).
    """
    which = f"batch {batch.seq} from {batch.proposer[:MAX_SKIPPED_PROPOSER]!r}"
    try:
        parse_time(batch.timestamp, what="batch timestamp")
    except MalformedTransaction as exc:
        raise MalformedBatch(f"{which}: {exc.message}") from exc
    try:
        check_batch(consortium, seq=batch.seq, proposer=batch.proposer, timestamp=batch.timestamp, txs=batch.txs,
                    signature=batch.signature)
    except LedgerError as exc:
        raise MalformedBatch(f"{which}: {exc.message}", reason=exc.reason) from exc
    return _build(raw_txs=batch.txs, proposer=batch.proposer, timestamp=batch.timestamp, previous=previous,
                  log=log, consortium=consortium, machine=machine, seen=seen, checked=checked)


def build_skipped(
    *, batch: Batch, previous: BlockHeader | None, log: CompactRange, consortium: Consortium, machine: StateMachine
) -> Built:
    """The block of a malformed or not properly signed batch: no transactions, the previous block's time
    (or :data:`FIRST_SKIPPED_TIME`), the proposer the batch names (unauthenticated: cut to
    :data:`MAX_SKIPPED_PROPOSER` characters, so no header grows with it).  A pure function of the batch
    and the chain, so every node builds the same block and heights stay equal to batch numbers."""
    timestamp = FIRST_SKIPPED_TIME if previous is None else previous.timestamp
    return _build(raw_txs=(), proposer=batch.proposer[:MAX_SKIPPED_PROPOSER], timestamp=timestamp,
                  previous=previous, log=log, consortium=consortium, machine=machine, seen=lambda ids: set())
