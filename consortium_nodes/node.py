"""One member's node: admits transactions, follows the order, builds, co-signs and finalises blocks.

The work is done by components, each with its own lock, wired here:

* :class:`~consortium_nodes.pool.TxPool` and :class:`~consortium_nodes.pool.Batcher`: accepted
  transactions (also in the durable pool) and their proposal to the orderer;
* :class:`~consortium_nodes.pool.Admitter`: checks of submitted transactions;
* :class:`~consortium_nodes.catchup.Follower` and :class:`~consortium_nodes.chain.Chain`: batches
  into blocks, signed and stored (``state_lock``);
* :class:`~consortium_nodes.finality.Certificates`: peers' signatures, divergences and finality;
* :class:`~consortium_nodes.peers.SignatureOutbox`: our signatures on their way to the peers;
* :class:`~consortium_nodes.catchup.CatchUp` and :class:`~consortium_nodes.catchup.Syncer`: what
  did not reach us;
* :class:`~consortium_nodes.checkpoints.Checkpoints`: co-signed checkpoints and witnessing;
* :class:`~consortium_nodes.queries.Queries`: reading; :class:`~consortium_nodes.queries.Health`: faults.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from consortium_nodes.batch_copies import BatchCopies
from consortium_nodes.catchup import CatchUp, Follower, Syncer
from consortium_nodes.chain import Chain
from consortium_nodes.checkpoints import Checkpoints
from consortium_nodes.errors import ConfigError, NotReady, PeerError
from consortium_nodes.finality import Certificates, Divergence, Divergences, StoredTxs
from consortium_nodes.ordering import Batch, Orderer, SoloOrderer
from consortium_nodes.peers import PeerLink, SignatureOutbox
from consortium_nodes.pool import Admission, Admitter, Batcher, DurablePool, TxPool
from consortium_nodes.proposer import NamedElection, ProposerLease, rows_of
from consortium_nodes.queries import Health, Queries
from consortium_nodes.scheduler import Election, Scheduler
from consortium_nodes.storage import StorageProbe, StorageWatch
from ledger.core.block import Block, HeaderSignature
from ledger.core.builder import StateMachine
from ledger.core.consortium import Consortium, Member
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.core.governed import Governed
from ledger.core.validity import expiring
from ledger.errors import LedgerError
from ledger.store.governance_log import member_names, store_history
from ledger.store.ledger_store import LedgerStore

__all__ = ["Admission", "Divergence", "Node"]

log = logging.getLogger("consortium_nodes.node")

#: seconds :meth:`Node.stop` waits for the threads (all of them together)
JOIN_TIMEOUT = 3.0


def _own_member(genesis: Consortium, store: LedgerStore, key: PrivateKey) -> Member | None:
    """The member of this node's key: in the genesis, or in force by the governance votes the store holds (a
    key rotated in, a node added by vote)."""
    for c in (genesis, store_history(store, genesis).current.consortium):
        try:
            return c.member(key.key_id)
        except LedgerError:
            continue
    return None


def china_now() -> datetime:
    """The default clock: now, in China Standard Time."""
    return datetime.now(CHINA_TZ)


class Node:
    """The running node.  Threads: batcher (pool → orderer), follower (orderer → blocks),
    one sender per peer (our signatures → peers) and syncer (pull missing signatures, checkpoints)."""

    def __init__(
        self,
        *,
        name: str,
        consortium: Consortium,
        key: PrivateKey,
        store: LedgerStore,
        machine: StateMachine,
        orderer: Orderer,
        peers: PeerLink,
        batch_max_txs: int = 500,
        batch_max_wait: float = 0.04,
        replay: str = "fast",
        clock: Callable[[], datetime] = china_now,
        restart: Callable[[], None] | None = None,
        election: Election | None = None,
        tick_interval: float = 0.0,
        joining: bool = False,
        proposer_election: NamedElection | None = None,
    ) -> None:
        """``restart`` is called when the node must be restarted to heal (a block failed to store and the
        storage is back); the node process exits for its supervisor, tests and tools may do otherwise.
        With an ``election`` and a positive ``tick_interval`` (seconds) the node runs the consortium's
        :class:`~consortium_nodes.scheduler.Scheduler` (a ``system.tick`` per interval while it leads).
        ``joining``: the node of a member a vote is adding, started with a key no membership holds yet.
        With a ``proposer_election`` (etcd ordering) the node proposes only while it holds that key and hands
        its batches to the node that does otherwise (:mod:`consortium_nodes.proposer`)."""
        member = _own_member(consortium, store, key)
        if member is None and joining:  # it follows the chain and co-signs once a vote puts its key in force
            log.warning("node %s: key %s is not a member's yet; following the chain until a vote adds it",
                        name, key.key_id)
        elif member is None or member.name != name or "node" not in member.roles:
            raise ConfigError(f"key {key.key_id} is not the node key of member {name}")
        self.name = name
        #: the genesis; :attr:`consortium` is the membership in force, as governance votes made it
        self.genesis = consortium
        #: the business rules wrapped with governance (chain, admission); ``machine`` the rules (queries)
        self.governed = machine if isinstance(machine, Governed) else Governed(machine, consortium)
        machine = self.governed.inner
        self.key = key
        self.store = store
        self.machine = machine
        self.orderer = orderer
        self.peers = peers
        self.replay_mode = replay
        self.clock = clock
        self.ready = False
        self.started_at = clock().timestamp()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.health = Health(name)
        self._divergences = Divergences(name)
        self.pool = TxPool(DurablePool(engine=store.engine))
        self.batch_copies = BatchCopies(engine=store.engine)  # kept in each built block's commit (chain.py)
        self.certificates = Certificates(consortium=consortium, store=store, divergences=self._divergences,
                                         membership=self.governed.at)
        self.stored_txs = StoredTxs()
        self.outbox = SignatureOutbox(name=name, peers=peers, stop=self._stop)
        self.chain = Chain(
            name=name, consortium=consortium, key=key, store=store, machine=self.governed, pool=self.pool,
            certificates=self.certificates, divergences=self._divergences, stored_txs=self.stored_txs,
            outbox=self.outbox, health=self.health, clock=clock,
        )
        self.state_lock = self.chain.state_lock
        self.admitter = Admitter(consortium=consortium, machine=self.governed, store=store, pool=self.pool)
        self.proposer = None if proposer_election is None else ProposerLease(
            name=name, election=proposer_election, stop=self._stop,
            hand_over=lambda target, rows: peers.hand_over(target, name, rows),
        )
        self.batcher = Batcher(
            name=name, pool=self.pool, orderer=orderer, clock=clock,
            max_txs=min(batch_max_txs, consortium.max_block_txs), max_wait=batch_max_wait, stop=self._stop,
            key=key, digest_alg=consortium.digest_alg,
            proposer=self.proposer,
        )
        self.catch_up = CatchUp(peers=peers, store=store, chain=self.chain, stop=self._stop)
        self.follower = Follower(name=name, orderer=orderer, store=store, chain=self.chain, catch_up=self.catch_up,
                                 health=self.health, stop=self._stop)
        self.checkpoints = Checkpoints(name=name, consortium=self.governed.in_force, key=key, store=store, peers=peers,
                                       final_height=lambda: self.certificates.final_height,
                                       extension=self._checkpoint_extension(machine),
                                       history=lambda: self.governed.history)
        coordinator = consortium.nodes[0].name == name
        self.syncer = Syncer(name=name, peers=peers, certificates=self.certificates, orderer=orderer,
                             checkpoint=self.checkpoints.periodic if coordinator else None, stop=self._stop,
                             withheld=self.chain.sign_withheld)
        self.storage = StorageWatch(
            name=name, probe=StorageProbe(store.engine), set_fault=self.health.storage,
            halted_by_store=lambda: self.health.halted_by_store,
            restart=restart or (lambda: log.critical("node %s: restart needed", name)), stop=self._stop,
        )
        self.scheduler = None if election is None or tick_interval <= 0 else Scheduler(
            name=name, key=key, election=election, interval=tick_interval, submit=self.submit, clock=clock,
            stop=self._stop,
        )
        self.queries = Queries(
            consortium=consortium, machine=machine, state_lock=self.state_lock, store=store, pool=self.pool,
            stored_txs=self.stored_txs, certificates=self.certificates, checkpoints=self.checkpoints,
            names=lambda: member_names(self.governed.history),
        )

    @property
    def consortium(self) -> Consortium:
        """The membership in force for the next block (the genesis until a governance vote changed it)."""
        return self.governed.in_force()

    # -- life cycle -------------------------------------------------------
    def start(self) -> None:
        """Replay the stored chain into the state machine, then start the threads."""
        self.chain.replay()
        self.pool.restore()
        self._resume_order()
        bodies: list[tuple[str, Callable[..., None], tuple[Any, ...]]] = [
            ("_batcher", self.batcher.run, ()), ("_follower", self.follower.run, ()),
            ("_syncer", self.syncer.run, ()), ("_storage", self.storage.run, ()),
        ]
        bodies += [("_sender", self.outbox.run, (peer,)) for peer in self.outbox.peers]
        if self.scheduler is not None:
            bodies.append(("_scheduler", self.scheduler.run, ()))
        if self.proposer is not None:
            bodies.append(("_proposer", self.proposer.run, ()))
        for what, fn, args in bodies:
            suffix = what.lstrip("_") + (f"-{args[0]}" if args else "")
            t = threading.Thread(target=self.health.guard(what, fn), args=args, name=f"{self.name}-{suffix}",
                                 daemon=True)
            t.start()
            self._threads.append(t)
        self.ready = True

    def _resume_order(self) -> None:
        """When this node keeps the solo order log and it ends before the chain (lost, rewound or damaged):
        adopt what certified blocks the peers have beyond ours, go on with the order after our head, and
        record the fault (:meth:`Health.order_lost`).  The durable pools' transactions are proposed again
        (the restored ones at once, the peers' once :data:`~consortium_nodes.pool.REPROPOSE_AFTER` passed)."""
        solo = self.orderer
        if not isinstance(solo, SoloOrderer) or (solo.head() >= self.store.height and solo.damaged is None):
            return
        was = solo.head()
        try:
            self.catch_up.run(until=sys.maxsize)  # a peer may have built a batch this node had not
        except (PeerError, LedgerError) as exc:
            log.warning("node %s: catching up before the order goes on: %s", self.name, exc)
        restored = solo.restore(self.batch_copies.after(was))
        restored += self._restore_from_peers(solo)
        height = self.store.height
        solo.resume_after(height)
        what = solo.damaged or "the order log was lost or rewound"
        self.health.order_lost(
            f"{what}: it ended at batch {was}, before this node's chain (height {height}); {restored} batches "
            f"were restored from this node's copies, the order goes on after {height} and accepted transactions "
            "are proposed again until they are in blocks",
            resumed_after=height, pending=self.pool.durable_ids(),
        )

    def _restore_from_peers(self, solo: SoloOrderer) -> int:
        """Batches a peer built blocks from that this node never stored (it was killed after ordering them,
        before building them): put back from the peers' copies, in order and without gaps, so the peers'
        blocks stay the chain and their transactions are not lost.  The batches carry their proposers'
        signatures; every node checks them when it builds the block, as for any batch."""
        restored = 0
        for name in sorted(self.peers.urls):
            while True:
                head = solo.head()
                try:
                    theirs = self.peers.batch_copies(name, head)
                except PeerError as exc:
                    log.warning("node %s: no batch copies from %s: %s", self.name, name, exc)
                    break
                run: list[Batch] = []
                for b in theirs:
                    if b.seq != head + 1 + len(run):
                        break
                    run.append(b)
                if not run:
                    break
                restored += solo.restore(run)
        return restored

    def closing(self) -> None:
        """Begin to stop (safe from a signal handler): the threads see the stop event, the requests waiting for
        a block or for finality answer now with what holds (``pending``/``committed``: 202)."""
        self._stop.set()
        self.pool.wake()
        self.outbox.wake()
        self.stored_txs.close()
        self.certificates.close()

    @property
    def stopping(self) -> bool:
        """True once :meth:`closing` began (long requests, such as a peer's signature stream, end)."""
        return self._stop.is_set()

    def stop(self) -> None:
        self.closing()
        deadline = time.monotonic() + JOIN_TIMEOUT  # one deadline for all the threads together
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        late = [t.name for t in self._threads if t.is_alive()]
        if late:  # daemons: they do not keep the process alive
            log.warning("node %s: threads still running at stop: %s", self.name, ", ".join(late))
        self.orderer.close()
        self.peers.close()

    # -- the parts' interfaces, as the HTTP API and tools use them ----------
    @property
    def fault(self) -> str | None:
        return self.health.fault

    @property
    def divergences(self) -> list[Divergence]:
        return self._divergences.list()

    @property
    def final_height(self) -> int:
        return self.certificates.final_height

    def submit(self, items: Sequence[Any]) -> list[Admission]:
        """Admission checks; accepted transactions wait in the pool for ordering (idempotent by tx id).
        Refused with :class:`NotReady` while the storage is faulty (the durable pool is in it)."""
        problem = self.health.storage_fault
        if problem is not None:
            raise NotReady(f"this node cannot accept transactions: {problem}")
        return self.admitter.submit(items)

    def take_handed(self, items: Any) -> int | None:
        """Pool the ``[[tx_id, text], ...]`` another node handed over while this node is the proposer; how many
        were new (None: this node does not propose now, the sender proposes them itself)."""
        if self.proposer is None or self.proposer.proposer != self.name or self.health.storage_fault is not None:
            return None
        n = self.pool.add_handed(rows_of(items, self.consortium.max_block_txs))
        self.proposer.took(n)
        return n

    def receive_signatures(self, items: Sequence[Mapping[str, Any]]) -> int:
        """Signatures pushed by peers; returns how many were new and valid."""
        parsed: list[tuple[int, str, HeaderSignature]] = []
        for it in items:
            try:
                parsed.append((int(it["height"]), str(it["header_hash"]), HeaderSignature.from_dict(it)))
            except (KeyError, TypeError, ValueError, LedgerError):
                continue
        return self.certificates.accept(parsed)

    def adopt(self, block: Block) -> None:
        """Store a peer's certified block after re-executing it to the same header."""
        self.chain.adopt(block)

    def wait_final(self, height: int, timeout: float) -> bool:
        return self.certificates.wait_final(height, timeout)

    def tx_status(self, tx_id: str, wait: float = 0.0, *, with_tx: bool = False) -> dict[str, Any]:
        return self.queries.tx_status(tx_id, wait, with_tx=with_tx)

    def statuses(self, tx_ids: Sequence[str]) -> dict[str, str]:
        return self.queries.statuses(tx_ids)

    def status_details(self, tx_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return self.queries.status_details(tx_ids)

    def query(self, name: str, kwargs: Mapping[str, Any]) -> Any:
        return self.queries.query(name, kwargs)

    def provenance(self, kind: str, key: str) -> dict[str, Any]:
        return self.queries.provenance(kind, key)

    def state_digest(self) -> str:
        with self.state_lock:
            return self.governed.digest()

    def _checkpoint_extension(self, machine: StateMachine) -> Callable[[int], str | None] | None:
        """The state machine's checkpoint line for a height, read under the state lock (None: it has none)."""
        line_at = getattr(machine, "checkpoint_extension", None)
        if line_at is None:
            return None

        def extension(height: int) -> str | None:
            with self.state_lock:
                line = line_at(height)
            return None if line is None else str(line)

        return extension

    def make_checkpoint(self) -> str:
        return self.checkpoints.make()

    def cosign_checkpoint(self, note: str) -> str:
        return self.checkpoints.cosign(note)

    def accept_checkpoint(self, note: str) -> bool:
        return self.checkpoints.accept(note)

    def latest_checkpoint(self) -> str | None:
        return self.checkpoints.latest()

    def _pool_status(self) -> dict[str, Any]:
        """``pool``: accepted here and not yet in a block here (the durable pool); ``pool_detail``: of those,
        ``waiting`` to be ordered and ``in_flight`` (ordered), and how many were ``reproposed``; ``order_log``:
        a lost order log (:meth:`Health.order_log`)."""
        counts = self.pool.counts()
        return {
            "pool": counts["pool"],
            "pool_detail": {"waiting": counts["waiting"], "in_flight": counts["in_flight"],
                            "reproposed": self.pool.reproposed},
            "order_log": self.health.order_log(self.pool.durable_ids),
        }

    def status(self, *, digest: bool = False) -> dict[str, Any]:
        head = self.store.head()
        # The newest final block's certificate: which node members' signatures this node holds over its header
        # (the store keeps only signatures that verified over the stored header).
        final = self.final_height
        final_header = self.store.header(final) if final >= 0 else None
        certificate: dict[str, Any] | None = None
        if final_header is not None:
            signed = {s.key_id for s in self.store.signatures(final)}
            then = self.governed.at(final)  # the membership that block was co-signed under
            certificate = {
                "height": final, "header_hash": final_header.hash,
                "signers": [m.name for m in then.nodes if m.key_id in signed],
                "quorum": then.quorum, "nodes": len(then.nodes),
            }
        return {
            "node": self.name,
            "genesis": self.consortium.genesis_hash,  # which consortium this node is of (launchers compare it)
            "height": -1 if head is None else head.height,
            "head": None if head is None else head.hash,
            "final_height": final,
            "certificate": certificate,
            "ordering": self.orderer.kind,
            "transactions": self.store.tx_count(),
            "log_root": self.store.log().root().hex(),
            **self._pool_status(),
            "diverged": [d.to_dict() for d in self.divergences],
            "fault": self.fault,
            "skipped_batches": self.health.skipped_batches(),
            "withheld_signatures": self.chain.withheld(),
            "signature_streams": self.peers.stream_status(),
            # a faulty node is not ready (storage, halted chain); one healing a lost order log is
            "ready": self.ready and self.health.blocking is None,
            "state_digest": self.state_digest() if digest else None,
            "scheduler": None if self.scheduler is None else self.scheduler.status(),
            "proposer": None if self.proposer is None else self.proposer.status(),
            "membership": self.governed.status(),
            **self._key_status(),
        }

    def _key_status(self) -> dict[str, Any]:
        """``keys_expiring``: every member key whose card's validity ends within 30 days (the expired too);
        ``own_key``: this node's key, ``expired`` once past its validity and ``refused``, the newest block it
        did not co-sign because of that (the node keeps running and says so here)."""
        now = self.clock()
        me: Member | None
        try:
            me = self.consortium.member(self.key.key_id)
            in_force = True
        except LedgerError:  # a vote rotated this node's key out (or retired its member): it says so
            known = [e.consortium for e in self.governed.history.eras if self.key.key_id in
                     {m.key_id for m in e.consortium.members}]
            me = known[-1].member(self.key.key_id) if known else None
            in_force = False
        own: dict[str, Any] = {"member": self.name, "key_id": self.key.key_id, "not_after": None, "days_left": None,
                               "expired": False, "refused": self.chain.key_refused, "in_force": in_force}
        if me is not None and me.validity is not None:
            own.update(not_after=me.validity.not_after, days_left=me.validity.days_left(now),
                       expired=me.key_refusal(now) == "key_expired")
        return {"keys_expiring": expiring(self.consortium.members, now), "own_key": own}
