"""An Orderer on an etcd cluster: compare-and-set appends and watched reads over etcd's v3 JSON gateway."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import requests
from etcd3gw import exceptions as etcd_exc
from etcd3gw.client import Etcd3Client

from consortium_nodes.ordering import Batch, BatchesForgottenError, OrderingError

__all__ = ["MAX_BATCH_BYTES", "BatchTooLargeError", "BatchesForgottenError", "EtcdOrderer"]

#: etcd refuses requests larger than ``--max-request-bytes`` (default 1.5 MiB = 1,572,864 bytes, set
#: explicitly by :mod:`tools.etcd_cluster`).  One append is one request holding the batch
#: record (the batch's JSON plus a 32-character id) and the head key; we keep ~70 kB of headroom.
MAX_BATCH_BYTES = 1_500_000
#: etcd's v3 JSON (grpc-gateway) API path for etcd 3.4+ (3.3 served ``/v3beta/``, 3.2 ``/v3alpha/``).
API_PATH = "/v3/"
_RETRYABLE_GRPC_CODES = {1, 2, 4, 10, 13, 14}  # canceled, unknown, deadline, aborted, internal, unavailable
T = TypeVar("T")


class BatchTooLargeError(OrderingError):
    """The batch's record exceeds :data:`MAX_BATCH_BYTES`; nothing was written."""


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode("utf-8") if isinstance(data, str) else data).decode("ascii")


def _unb64(data: str) -> bytes:
    return base64.b64decode(data)


def _grpc_code(exc: etcd_exc.Etcd3Exception) -> int | None:
    try:
        return int(json.loads(exc.detail_text or "")["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _describe(exc: BaseException) -> str:
    detail = getattr(exc, "detail_text", None)
    text = str(detail) if detail else (str(exc) or type(exc).__name__)
    return f"{type(exc).__name__}: {text[:300]}"


def _is_retryable(exc: BaseException) -> bool:
    """True for failures an election or a dead member causes; False for refusals (too large, no space)."""
    if isinstance(
        exc,
        etcd_exc.ConnectionFailedError | etcd_exc.ConnectionTimeoutError | etcd_exc.InternalServerError,
    ):
        return True
    if isinstance(exc, etcd_exc.Etcd3Exception):
        return _grpc_code(exc) in _RETRYABLE_GRPC_CODES
    return isinstance(exc, requests.RequestException | ValueError)


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
        max_batch_bytes: int = MAX_BATCH_BYTES,
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
        self.max_batch_bytes = max_batch_bytes
        self.prefix = f"/muck/{chain}/" if chain is not None else str(prefix).rstrip("/") + "/"
        self._head_key = self.prefix + "head"
        self._batch_prefix = self.prefix + "batch/"
        self._batch_end = self.prefix + "batch0"  # '/' + 1: end of the batch/ range
        self._preferred = random.randrange(len(self.endpoints))
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._closed = False
        # One long-lived etcd watch on the batch keys per orderer (started by the first waiting read): it
        # delivers each new batch as it is committed, so readers neither poll nor issue a range read per
        # batch, and sleep on a condition instead of opening a watch of their own per wait.
        self._watch_cond = threading.Condition()
        self._watch_rev = 0  # highest etcd revision the watch has reported (events, creation)
        self._watch_live = False  # a watch stream is established now
        self._watched: dict[int, tuple[Batch, int]] = {}  # seq → (batch, revision) from the watch, not yet read
        self._head_hint: int | None = None  # the newest head seen (reads, appends, watch): a CAS guess
        self._watch_thread: threading.Thread | None = None
        self._watch_response: requests.Response | None = None
        #: seconds without any message after which the watch stream is re-established
        self.watch_idle = 10.0

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

    def _new_client(self, endpoint: str, session: requests.Session) -> Etcd3Client:
        url = urlsplit(endpoint)
        return Etcd3Client(
            host=url.hostname or "127.0.0.1",
            port=url.port or 2379,
            protocol=url.scheme or "http",
            timeout=self.request_timeout,
            api_path=API_PATH,
            session=session,
        )

    def _clients(self) -> list[Etcd3Client]:
        clients: list[Etcd3Client] | None = getattr(self._local, "clients", None)
        if clients is None:
            if self._closed:
                raise OrderingError("the etcd orderer is closed")
            session = requests.Session()
            session.trust_env = False  # fixed endpoints: no proxy / .netrc lookups per request
            with self._lock:
                self._sessions.append(session)
            clients = [self._new_client(e, session) for e in self.endpoints]
            self._local.clients = clients
        return clients

    def _call(
        self, what: str, fn: Callable[[Etcd3Client], T], *, on_retry: Callable[[], None] | None = None
    ) -> T:
        """Run ``fn`` on the preferred endpoint; on transient errors fail over, retry for ``retry_for`` s."""
        clients = self._clients()
        deadline = time.monotonic() + self.retry_for
        delay = 0.02
        errors: dict[str, str] = {}
        while True:
            index = self._preferred
            client = clients[index]
            try:
                return fn(client)
            except (etcd_exc.Etcd3Exception, requests.RequestException, ValueError) as exc:
                if not _is_retryable(exc):
                    raise OrderingError(f"etcd refused {what}: {_describe(exc)}") from exc
                errors[self.endpoints[index]] = _describe(exc)
                if on_retry is not None:
                    on_retry()
                if time.monotonic() + delay > deadline:
                    detail = "; ".join(f"{e}: {m}" for e, m in errors.items())
                    raise OrderingError(
                        f"etcd unavailable for {what} after {self.retry_for:g} s over {len(clients)} "
                        f"endpoint(s): {detail}"
                    ) from exc
                if self._preferred == index:
                    self._preferred = (index + 1) % len(clients)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.4)

    def _txn(
        self, what: str, txn: dict[str, Any], *, on_retry: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._call(what, lambda c: dict(c.transaction(txn)), on_retry=on_retry)
        return result

    # ---- helpers -----------------------------------------------------------------------------

    def _batch_key(self, seq: int) -> str:
        return f"{self._batch_prefix}{seq:012d}"

    @staticmethod
    def _range(key: str, range_end: str | None = None, limit: int = 0) -> dict[str, Any]:
        req: dict[str, Any] = {"key": _b64(key)}
        if range_end is not None:
            req["range_end"] = _b64(range_end)
        if limit:
            req["limit"] = limit
        return {"request_range": req}

    @staticmethod
    def _kvs(response: dict[str, Any]) -> list[dict[str, Any]]:
        kvs: list[dict[str, Any]] = response.get("response_range", {}).get("kvs", [])
        return kvs

    @staticmethod
    def _head_of(kvs: list[dict[str, Any]]) -> int:
        return int(_unb64(kvs[0]["value"])) if kvs else -1

    def _encode(
        self, seq: int, proposer: str, timestamp: str, txs: Sequence[bytes], batch_id: str,
        txs_json: str | None = None,
    ) -> bytes:
        """The batch record: :meth:`Batch.to_json` plus the batch's unique ``id``.  ``txs_json`` is the
        JSON list of the transactions when the caller has encoded it already (it is the bulk of the record)."""
        if txs_json is None:
            txs_json = json.dumps([t.decode("utf-8") for t in txs], ensure_ascii=False, separators=(",", ":"))
        head = json.dumps(
            {"seq": seq, "proposer": proposer, "timestamp": timestamp, "id": batch_id},
            ensure_ascii=False, separators=(",", ":"),
        )
        value = (head[:-1] + ',"txs":' + txs_json + "}").encode("utf-8")
        if len(value) > self.max_batch_bytes:
            raise BatchTooLargeError(
                f"batch of {len(txs)} txs is {len(value)} bytes, over the etcd ordering limit of "
                f"{self.max_batch_bytes} bytes (etcd --max-request-bytes 1.5 MiB); split it"
            )
        return value

    def _record_id(self, seq: int) -> str | None:
        resp = self._call("check batch", lambda c: c.get(self._batch_key(seq)))
        if not resp:
            return None
        return str(json.loads(resp[0]).get("id"))

    # ---- Orderer -----------------------------------------------------------------------------

    def append(self, *, proposer: str, timestamp: str, txs: Sequence[bytes]) -> int:
        """Append a batch and return its sequence number (0 for the first batch of the chain).

        One etcd transaction: if head == n, put head = n+1 and batch n+1; if another proposer won,
        retry on the new head.  A request whose outcome is unknown (timeout, member died, election)
        is resolved by the batch's unique id, so a batch is never written twice.  Raises
        :class:`BatchTooLargeError` (nothing written) or :class:`OrderingError` (etcd unavailable).
        """
        txs = tuple(txs)
        batch_id = uuid.uuid4().hex
        txs_json = json.dumps([t.decode("utf-8") for t in txs], ensure_ascii=False, separators=(",", ":"))
        self._encode(0, proposer, timestamp, txs, batch_id, txs_json)  # size check before anything is sent
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
            value = self._encode(seq, proposer, timestamp, txs, batch_id, txs_json)
            if head < 0:
                compare = {
                    "key": _b64(self._head_key),
                    "result": "EQUAL",
                    "target": "CREATE",
                    "create_revision": 0,
                }
            else:
                compare = {
                    "key": _b64(self._head_key),
                    "result": "EQUAL",
                    "target": "VALUE",
                    "value": _b64(str(head)),
                }
            txn = {
                "compare": [compare],
                "success": [
                    {"request_put": {"key": _b64(self._head_key), "value": _b64(str(seq))}},
                    {"request_put": {"key": _b64(self._batch_key(seq)), "value": _b64(value)}},
                ],
                "failure": [self._range(self._head_key)],
            }
            result = self._txn("append", txn, on_retry=functools.partial(uncertain.add, seq))
            if result.get("succeeded"):
                self._saw_head(seq)
                return seq
            # a lost race: the failure branch returned the new head (re-read it if an attempt is in doubt)
            head = self.head() if uncertain else self._head_of(self._kvs(result.get("responses", [{}])[0]))

    def head(self) -> int:
        """The last assigned sequence number, -1 if the chain has no batch yet (linearizable read)."""
        result: dict[str, Any] = self._call(
            "read head", lambda c: c.post(c.get_url("/kv/range"), json={"key": _b64(self._head_key)})
        )
        head = self._head_of(result.get("kvs", []))
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
        batch for, after a reconnection, or when ``wait`` ran out.
        """
        after = max(after, -1)
        deadline = time.monotonic() + max(wait, 0.0)
        watching = self.wait_mode == "watch" and wait > 0
        if watching:
            self._ensure_watch()
        # (seq, revision): a read on this thread knows every batch up to seq, and that no later one had
        # been written at that etcd revision; if seq is `after`, no read is needed until a newer revision.
        hint: tuple[int, int] | None = getattr(self._local, "read_hint", None)
        known = hint[1] if hint is not None and hint[0] == after else None
        last_look = False
        while True:
            got = self._from_watch(after, limit)
            if got:
                # Batch n+1 is written after batch n, so none after the last one existed at its revision.
                self._local.read_hint = (got[-1][0].seq, got[-1][1])
                return [b for b, _ in got]
            read_now = known is None or not self._watch_live or last_look
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
                last_look = True  # one read of etcd before giving up: a stalled watch cannot hide a batch long
                continue
            if watching:
                assert known is not None  # read_now is False only while known is set, else it was just set
                if not self._wait_for_head(known, min(remaining, self.watch_slice), want=after + 1):
                    known = None  # a newer revision without our batch, or no live watch: read etcd
            else:
                time.sleep(min(remaining, self.poll_interval))
                known = None

    def _range_read(self, after: int, limit: int) -> tuple[list[Batch], int, int]:
        """One etcd transaction: the head and up to ``limit`` batches after ``after``, at one revision."""
        txn = {
            "compare": [],
            "success": [
                self._range(self._head_key),
                self._range(self._batch_key(after + 1), self._batch_end, max(limit, 1)),
            ],
            "failure": [],
        }
        result = self._txn("read", txn)
        responses = result.get("responses", [])
        head = self._head_of(self._kvs(responses[0]))
        self._saw_head(head)
        revision = int(result.get("header", {}).get("revision", 0))
        kvs = self._kvs(responses[1])
        if kvs:
            batches = [Batch.from_json(_unb64(kv["value"])) for kv in kvs]
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

    def _from_watch(self, after: int, limit: int) -> list[tuple[Batch, int]]:
        """Consecutive batches from ``after + 1`` the watch has delivered, with their revisions (and
        forget older ones)."""
        if not self._watched:
            return []
        with self._watch_cond:
            for seq in [s for s in self._watched if s <= after]:
                del self._watched[seq]
            out: list[tuple[Batch, int]] = []
            seq = after + 1
            while seq in self._watched and len(out) < limit:
                out.append(self._watched[seq])
                seq += 1
            return out

    def _wait_for_head(self, revision: int, timeout: float, want: int | None = None) -> bool:
        """Block until the watch delivered batch ``want`` (True), reported a revision after ``revision``
        without it (False: the caller reads etcd), or ``timeout`` passed (True).

        While no watch is established (start-up, a member died) it sleeps ``poll_interval`` and
        returns False, so the caller reads etcd instead.
        """
        self._ensure_watch()
        deadline = time.monotonic() + timeout
        with self._watch_cond:
            while not self._closed:
                if want is not None and want in self._watched:
                    return True
                if self._watch_rev > revision:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                if not self._watch_live:
                    self._watch_cond.wait(min(left, self.poll_interval))
                    return False
                self._watch_cond.wait(left)
        return True

    def _ensure_watch(self) -> None:
        with self._lock:
            if self._watch_thread is None and not self._closed:
                self._watch_thread = threading.Thread(
                    target=self._watch_loop, name=f"etcd-watch{self._head_key}", daemon=True
                )
                self._watch_thread.start()

    def _note_revision(
        self, revision: int, *, live: bool | None = None, batches: Sequence[tuple[Batch, int]] = ()
    ) -> None:
        with self._watch_cond:
            for batch, at in batches:
                self._watched[batch.seq] = (batch, at)
            while len(self._watched) > 4096:  # nobody reads (a stopped follower): keep the newest only
                del self._watched[min(self._watched)]
            if revision > self._watch_rev:
                self._watch_rev = revision
            if live is not None:
                self._watch_live = live
            self._watch_cond.notify_all()
        if batches:
            self._saw_head(max(b.seq for b, _ in batches))

    def _watch_loop(self) -> None:
        """Keep one etcd watch on the batch keys open; hand every batch it delivers to the readers.

        The watch is created at the member's current revision, and the creation's revision is reported
        too: a batch written before it is then at most that revision, so a reader that found nothing
        at an earlier revision wakes and reads etcd; any later batch arrives as an event (with its
        value: no read needed).  A broken or idle (``watch_idle`` s) stream is re-established, on the
        next member after an error.
        """
        session = requests.Session()
        session.trust_env = False
        index = self._preferred
        try:
            while not self._closed:
                endpoint = self.endpoints[index]
                failed = False
                try:
                    with session.post(
                        endpoint + API_PATH + "watch",
                        json={"create_request": {"key": _b64(self._batch_prefix),
                                                 "range_end": _b64(self._batch_end)}},
                        stream=True,
                        timeout=(self.request_timeout, self.watch_idle),
                    ) as resp:
                        if resp.status_code != 200:
                            raise requests.RequestException(f"watch answered {resp.status_code}")
                        self._watch_response = resp
                        # chunk_size=None: each line as soon as it arrives (the stubs only know ints)
                        for line in resp.iter_lines(chunk_size=None):  # type: ignore[call-overload]
                            if self._closed:
                                break
                            if not line.strip():
                                continue
                            message = json.loads(line)
                            result = message.get("result")
                            if not isinstance(result, dict) or result.get("canceled"):
                                failed = True
                                break
                            revision = int(result.get("header", {}).get("revision", 0))
                            batches: list[tuple[Batch, int]] = []
                            for event in result.get("events", []):
                                kv = event.get("kv", {})
                                at = int(kv.get("mod_revision", 0))
                                revision = max(revision, at)
                                if event.get("type", "PUT") == "PUT" and kv.get("value"):
                                    batches.append((Batch.from_json(_unb64(kv["value"])), at))
                            self._note_revision(revision, live=True, batches=batches)
                except requests.ConnectTimeout:
                    failed = True
                except requests.ConnectionError as exc:
                    # An idle stream ends in a read timeout (requests wraps it): re-establish it, same member.
                    failed = "read timed out" not in str(exc).lower()
                except (requests.RequestException, ValueError, TypeError, AttributeError):
                    failed = True
                finally:
                    self._watch_response = None
                    self._note_revision(0, live=False)
                if self._closed:
                    return
                if failed:
                    index = (index + 1) % len(self.endpoints)
                    time.sleep(self.poll_interval)
        finally:
            session.close()

    def _stop_watch(self) -> None:
        resp = self._watch_response
        if resp is not None:  # unblock the stream's read: shut the socket down under it
            with contextlib.suppress(Exception):
                sock = socket.fromfd(resp.raw._fp.fileno(), socket.AF_INET, socket.SOCK_STREAM)
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        self._note_revision(0, live=False)
        thread = self._watch_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2)

    def forget(self, upto: int) -> None:
        """Delete batches with ``seq <= upto`` from etcd (nodes keep them as blocks); the head stays."""
        if upto < 0:
            return
        self._call(
            "forget",
            lambda c: c.delete(self._batch_key(0), range_end=self._batch_key(upto + 1)),
        )

    def close(self) -> None:
        """Close all HTTP sessions; the orderer cannot be used afterwards."""
        self._closed = True
        self._stop_watch()
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for s in sessions:
            s.close()
        self._local = threading.local()

    def __enter__(self) -> EtcdOrderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
