"""An Orderer on an etcd cluster: compare-and-set appends and watched reads over etcd's v3 JSON gateway.

The wire and the failover are in :mod:`consortium_nodes.etcd_client`, the watch that delivers new
batches in :mod:`consortium_nodes.etcd_watch`.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from etcd3gw.client import Etcd3Client

from consortium_nodes.etcd_client import API_PATH, EtcdTransport, b64, int_value, kvs_of, range_op, unb64
from consortium_nodes.etcd_watch import BatchWatch
from consortium_nodes.ordering import Batch, BatchesForgottenError, BatchSigner, OrderingError, seq_of_key
from ledger import transport
from ledger.core.batch import BatchSignature
from ledger.transport import Tls

__all__ = ["API_PATH", "MAX_BATCH_BYTES", "BatchTooLargeError", "BatchesForgottenError", "EtcdOrderer"]

#: etcd refuses requests larger than ``--max-request-bytes`` (default 1.5 MiB = 1,572,864 bytes, set
#: explicitly by :mod:`tools.etcd_cluster`).  One append is one request holding the batch
#: record (the batch's JSON plus a 32-character id) and the head key; we keep ~70 kB of headroom.
MAX_BATCH_BYTES = 1_500_000


class BatchTooLargeError(OrderingError):
    """The batch's record exceeds :data:`MAX_BATCH_BYTES`; nothing was written."""


class EtcdOrderer:
    """The :class:`~consortium_nodes.ordering.Orderer` of one chain, stored in etcd under one key prefix.

    Give ``chain`` (keys under ``/muck/<chain>/``) or a full ``prefix`` (e.g. ``/muck/<genesis hash>``).
    Keys: ``<prefix>/head`` holds the last assigned sequence number (absent: none yet, so the
    first batch gets seq 0 and :meth:`head` is -1) and ``<prefix>/batch/<seq:012d>`` the batch.
    Calls fail over between endpoints and retry transient errors (dead member, election) for
    ``retry_for`` seconds, then raise :class:`OrderingError`.  Safe to share between threads.
    """

    kind = "etcd"

    def __init__(
        self,
        *,
        endpoints: Sequence[str],
        chain: str | None = None,
        prefix: str | None = None,
        request_timeout: float = 1.0,
        retry_for: float = 15.0,
        wait_mode: Literal["watch", "poll"] = "watch",
        poll_interval: float = 0.05,
        watch_slice: float = 1.0,
        stall_check: float = 5.0,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        tls: Tls | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        if (chain is None) == (prefix is None):
            raise ValueError("give exactly one of chain= (keys under /muck/<chain>/) or prefix=")
        if chain is not None and (not chain or "/" in chain):
            raise ValueError("chain must be a non-empty name without '/'")
        if prefix is not None and not prefix.strip("/"):
            raise ValueError("prefix must not be empty or '/'")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.chain = chain
        self.request_timeout = request_timeout
        self.retry_for = retry_for
        self.wait_mode = wait_mode
        self.poll_interval = poll_interval
        self.watch_slice = watch_slice
        self.stall_check = stall_check
        self.max_batch_bytes = max_batch_bytes
        self.prefix = f"/muck/{chain}/" if chain is not None else str(prefix).rstrip("/") + "/"
        self._head_key = self.prefix + "head"
        self._batch_prefix = self.prefix + "batch/"
        self._batch_end = self.prefix + "batch0"  # '/' + 1: end of the batch/ range
        # with TLS (https:// endpoints): this node's client certificate; the etcd members' certificates are
        # issued under node members' keys (tools/etcd_cluster.py), so only those are trusted
        self._transport = EtcdTransport(endpoints=self.endpoints, request_timeout=request_timeout,
                                        retry_for=retry_for, session=lambda: transport.session(tls))
        self._local = threading.local()  # this thread's read hint
        self._head_hint: int | None = None  # the newest head seen (reads, appends, watch): a CAS guess
        self._watch = BatchWatch(
            endpoints=self.endpoints, key=self._batch_prefix, range_end=self._batch_end,
            request_timeout=request_timeout, poll_interval=poll_interval,
            preferred=lambda: self._transport.preferred, saw_head=self._saw_head, name=f"etcd-watch{self._head_key}",
            session=lambda: transport.session(tls),
        )

    @property
    def watch_idle(self) -> float:
        """Seconds without any message after which the watch stream is re-established."""
        return self._watch.idle

    @watch_idle.setter
    def watch_idle(self, seconds: float) -> None:
        self._watch.idle = seconds

    @classmethod
    def connect(cls, *, endpoints: Sequence[str], **options: Any) -> EtcdOrderer:
        """Open an orderer on ``endpoints`` and check that etcd answers (else :class:`OrderingError`)."""
        orderer = cls(endpoints=endpoints, **options)
        try:
            orderer.head()
        except BaseException:
            orderer.close()
            raise
        return orderer

    # ---- transport ---------------------------------------------------------------------------

    def _clients(self) -> list[Etcd3Client]:
        return self._transport.clients()

    # ---- helpers -----------------------------------------------------------------------------

    def _batch_key(self, seq: int) -> str:
        return f"{self._batch_prefix}{seq:012d}"

    def _encode(
        self, seq: int, proposer: str, timestamp: str, txs: Sequence[bytes], batch_id: str,
        txs_json: str | None = None, signature: BatchSignature | None = None,
    ) -> bytes:
        """The batch record: :meth:`Batch.to_json` plus the batch's unique ``id``.  ``txs_json`` is the
        JSON list of the transactions when the caller has encoded it already (it is the bulk of the record)."""
        if txs_json is None:
            txs_json = json.dumps([t.decode("utf-8") for t in txs], ensure_ascii=False, separators=(",", ":"))
        fields: dict[str, Any] = {"seq": seq, "proposer": proposer, "timestamp": timestamp, "id": batch_id}
        if signature is not None:
            fields["signature"] = signature.to_dict()
        head = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        value = (head[:-1] + ',"txs":' + txs_json + "}").encode("utf-8")
        if len(value) > self.max_batch_bytes:
            raise BatchTooLargeError(
                f"batch of {len(txs)} txs is {len(value)} bytes, over the etcd ordering limit of "
                f"{self.max_batch_bytes} bytes (etcd --max-request-bytes 1.5 MiB); split it"
            )
        return value

    def _record_id(self, seq: int) -> str | None:
        resp = self._transport.call("check batch", lambda c: c.get(self._batch_key(seq)))
        if not resp:
            return None
        return str(json.loads(resp[0]).get("id"))

    # ---- Orderer -----------------------------------------------------------------------------

    def append(
        self, *, proposer: str, timestamp: str, txs: Sequence[bytes], sign: BatchSigner | None = None
    ) -> int:
        """Append a batch and return its sequence number (0 for the first batch of the chain).

        One etcd transaction: if head == n, put head = n+1 and batch n+1 signed (``sign``) for n+1;
        if another proposer won, sign for the new head's successor and retry.  A request whose outcome
        is unknown (timeout, member died, election) is resolved by the batch's unique id, so a batch is
        never written twice.  Raises
        :class:`BatchTooLargeError` (nothing written) or :class:`OrderingError` (etcd unavailable).
        """
        txs = tuple(txs)
        batch_id = uuid.uuid4().hex
        txs_json = json.dumps([t.decode("utf-8") for t in txs], ensure_ascii=False, separators=(",", ":"))
        signature = None if sign is None else sign(0)
        self._encode(0, proposer, timestamp, txs, batch_id, txs_json, signature)  # size check before anything is sent
        uncertain: set[int] = set()
        # The newest head this orderer has seen is only a guess: the compare-and-set below decides, and a
        # lost race returns the real head (cheaper than a linearizable read of the head before every append).
        head = self._head_hint if self._head_hint is not None else self.head()
        while True:
            for seq in sorted(s for s in uncertain if s <= head):
                found = self._record_id(seq)
                if found == batch_id:
                    return seq
                if found is None:
                    raise OrderingError(
                        f"append outcome unknown: batch {seq} was forgotten before it could be checked"
                    )
                uncertain.discard(seq)
            seq = head + 1
            value = self._encode(seq, proposer, timestamp, txs, batch_id, txs_json, None if sign is None else sign(seq))
            if head < 0:
                compare = {
                    "key": b64(self._head_key),
                    "result": "EQUAL",
                    "target": "CREATE",
                    "create_revision": 0,
                }
            else:
                compare = {
                    "key": b64(self._head_key),
                    "result": "EQUAL",
                    "target": "VALUE",
                    "value": b64(str(head)),
                }
            txn = {
                "compare": [compare],
                "success": [
                    {"request_put": {"key": b64(self._head_key), "value": b64(str(seq))}},
                    {"request_put": {"key": b64(self._batch_key(seq)), "value": b64(value)}},
                ],
                "failure": [range_op(self._head_key)],
            }
            result = self._transport.txn("append", txn, on_retry=functools.partial(uncertain.add, seq))
            if result.get("succeeded"):
                self._saw_head(seq)
                return seq
            # a lost race: the failure branch returned the new head (re-read it if an attempt is in doubt)
            head = self.head() if uncertain else int_value(kvs_of(result.get("responses", [{}])[0]))

    def head(self) -> int:
        """The last assigned sequence number, -1 if the chain has no batch yet (linearizable read)."""
        result: dict[str, Any] = self._transport.call(
            "read head", lambda c: c.post(c.get_url("/kv/range"), json={"key": b64(self._head_key)})
        )
        head = int_value(result.get("kvs", []))
        self._saw_head(head)
        return head

    def _saw_head(self, head: int) -> None:
        if self._head_hint is None or head > self._head_hint:
            self._head_hint = head

    def read(self, after: int, *, wait: float = 0.0, limit: int = 64) -> list[Batch]:
        """Batches with ``seq > after`` in order (at most ``limit``), waiting up to ``wait`` s for the first.

        Returns ``[]`` if none arrived in time.  Raises :class:`BatchesForgottenError` if batch
        ``after + 1`` was already forgotten (catch up from peers), :class:`OrderingError` if etcd is
        unavailable for ``retry_for`` seconds.

        In ``watch`` mode batches the orderer's watch has delivered are returned without asking etcd
        again; a range read (one etcd transaction with the head) is made when the watch has nothing
        for ``after + 1``: at the first read, after the watch reported a revision it did not bring a
        batch for, after a reconnection, or when ``wait`` ran out and this thread has not read etcd for
        ``stall_check`` seconds (a stalled watch cannot hide a batch longer; an idle chain costs etcd one
        read per ``stall_check`` seconds per node, not one per ``wait``).
        """
        after = max(after, -1)
        deadline = time.monotonic() + max(wait, 0.0)
        watching = self.wait_mode == "watch" and wait > 0
        if watching:
            self._watch.ensure()
        # (seq, revision): a read on this thread knows every batch up to seq, and that no later one had
        # been written at that etcd revision; if seq is `after`, no read is needed until a newer revision.
        hint: tuple[int, int] | None = getattr(self._local, "read_hint", None)
        known = hint[1] if hint is not None and hint[0] == after else None
        last_look = False
        while True:
            got = self._watch.take(after, limit)
            if got:
                # Batch n+1 is written after batch n, so none after the last one existed at its revision.
                self._local.read_hint = (got[-1][0].seq, got[-1][1])
                return [b for b, _ in got]
            read_now = known is None or not self._watch.live or last_look
            if read_now:
                batches, head, revision = self._range_read(after, limit)
                if batches:
                    self._local.read_hint = (head, revision) if batches[-1].seq == head else None
                    return batches
                known = revision
                self._local.read_hint = (after, revision)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if read_now or not watching:
                    return []
                if time.monotonic() - getattr(self._local, "read_at", -1e9) < self.stall_check:
                    return []  # the live watch brought nothing and etcd was read recently
                last_look = True  # one read of etcd before giving up: a stalled watch cannot hide a batch long
                continue
            if watching:
                assert known is not None  # read_now is False only while known is set, else it was just set
                if not self._watch.wait(known, min(remaining, self.watch_slice), want=after + 1):
                    known = None  # a newer revision without our batch, or no live watch: read etcd
            else:
                time.sleep(min(remaining, self.poll_interval))
                known = None

    def _range_read(self, after: int, limit: int) -> tuple[list[Batch], int, int]:
        """One etcd transaction: the head and up to ``limit`` batches after ``after``, at one revision."""
        txn = {
            "compare": [],
            "success": [
                range_op(self._head_key),
                range_op(self._batch_key(after + 1), self._batch_end, max(limit, 1)),
            ],
            "failure": [],
        }
        result = self._transport.txn("read", txn)
        self._local.read_at = time.monotonic()
        responses = result.get("responses", [])
        head = int_value(kvs_of(responses[0]))
        self._saw_head(head)
        revision = int(result.get("header", {}).get("revision", 0))
        kvs = kvs_of(responses[1])
        if kvs:
            batches = [Batch.from_json(unb64(kv["value"]), seq=seq_of_key(unb64(kv["key"]))) for kv in kvs]
            for expected, batch in enumerate(batches, start=after + 1):
                if batch.seq != expected:
                    raise BatchesForgottenError(
                        f"batch {expected} is no longer in etcd (next available: {batch.seq}); "
                        "catch up from peers' blocks",
                        after=after,
                        head=head,
                    )
            return batches, head, revision
        if head > after:
            raise BatchesForgottenError(
                f"batches {after + 1}..{head} are no longer in etcd; catch up from peers' blocks",
                after=after,
                head=head,
            )
        return [], head, revision

    def forget(self, upto: int) -> None:
        """Delete batches with ``seq <= upto`` from etcd (nodes keep them as blocks); the head stays."""
        if upto < 0:
            return
        self._transport.call(
            "forget",
            lambda c: c.delete(self._batch_key(0), range_end=self._batch_key(upto + 1)),
        )

    def close(self) -> None:
        """Close all HTTP sessions; the orderer cannot be used afterwards."""
        self._watch.stop()
        self._transport.close()
        self._local = threading.local()

    def __enter__(self) -> EtcdOrderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
