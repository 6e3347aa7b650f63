"""Ordering: the interface to a total order of batches, and the solo orderer (one node's durable batch log)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests
import sqlalchemy as sa

from consortium_nodes.errors import NodeError
from ledger import transport
from ledger.core.batch import BatchSignature
from ledger.store.schema import make_engine
from ledger.transport import Tls

#: signs a batch for the sequence number it is to get (:func:`ledger.core.batch.batch_signer`)
BatchSigner = Callable[[int], BatchSignature]


@dataclass(frozen=True)
class Batch:
    """Batch ``seq`` becomes block ``seq``; ``txs`` are canonical transaction bytes; ``signature`` is the
    proposing node's over all of it (:mod:`ledger.core.batch`; None: unsigned, which every node skips)."""

    seq: int
    proposer: str
    timestamp: str
    txs: tuple[bytes, ...]
    signature: BatchSignature | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "seq": self.seq,
            "proposer": self.proposer,
            "timestamp": self.timestamp,
            "txs": [t.decode("utf-8") for t in self.txs],
        }
        if self.signature is not None:
            d["signature"] = self.signature.to_dict()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes, *, seq: int | None = None) -> Batch:
        """The batch in the engine's bytes; ``seq`` is the engine's own number for it (an etcd key's).

        Whatever else the bytes hold, every node reads the same batch from them: a field of the wrong
        type becomes empty (no proposer, no timestamp, no transactions; a transaction that is not a
        string is left out), and the block builder turns such a batch into the same empty block on
        every node.  A ``signature`` of the wrong shape reads as an empty one (it does not verify).  Only
        bytes that say nowhere which batch they are raise :class:`MalformedOrder`.
        """
        try:
            d: Any = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            d = None
        if not isinstance(d, dict):
            d = {}
        number = d.get("seq") if seq is None else seq
        if type(number) is not int or number < 0:
            raise MalformedOrder(f"an ordered batch without a sequence number: {text[:80]!r}")
        proposer, timestamp, txs = d.get("proposer"), d.get("timestamp"), d.get("txs")
        return cls(
            seq=number,
            proposer=proposer if isinstance(proposer, str) else "",
            timestamp=timestamp if isinstance(timestamp, str) else "",
            txs=tuple(t.encode("utf-8") for t in txs if isinstance(t, str)) if isinstance(txs, list) else (),
            signature=BatchSignature.read(d.get("signature")),
        )


class OrderingError(NodeError):
    """The ordering service cannot be reached or refused the operation."""

    reason = "ordering_error"


class MalformedOrder(OrderingError):
    """The ordering engine holds bytes that are not a batch at all (not even its number can be read)."""

    reason = "malformed_order"


class OrderConflict(OrderingError):
    """A signed batch names a sequence number that is not the next one (another proposer was first);
    ``head`` is the real head: sign for ``head + 1`` and try again."""

    reason = "order_conflict"

    def __init__(self, message: str, *, head: int) -> None:
        super().__init__(message)
        self.head = head


class BatchesForgottenError(OrderingError):
    """Batches after ``after`` were already forgotten by the engine; catch up from peers' blocks instead."""

    def __init__(self, message: str, *, after: int, head: int) -> None:
        super().__init__(message)
        self.after = after
        self.head = head


def seq_of_key(key: bytes | str) -> int | None:
    """The batch number at the end of an engine key such as ``<prefix>/batch/000000000042``, if any."""
    text = key.decode("utf-8", errors="replace") if isinstance(key, bytes) else key
    tail = text.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


class Orderer(Protocol):
    """A total order of batches shared by all nodes.

    ``append`` assigns the next sequence number atomically (compare-and-set on
    the head: batch n+1 is written only if the head is n), so two nodes
    proposing at once get consecutive, distinct numbers; ``sign`` signs the batch
    for the number it is about to get (again if a race moves it), and a batch
    appended without it is unsigned (every node skips it).  ``read`` returns
    batches with ``seq > after`` in order, waiting up to ``wait`` seconds for
    the first one.  ``forget`` lets the engine drop batches up to ``upto``:
    nodes that fall further behind catch up from their peers' blocks.
    """

    kind: str

    def append(
        self, *, proposer: str, timestamp: str, txs: Sequence[bytes], sign: BatchSigner | None = None
    ) -> int: ...

    def read(self, after: int, *, wait: float = 0.0, limit: int = 64) -> list[Batch]: ...

    def head(self) -> int: ...

    def forget(self, upto: int) -> None: ...

    def close(self) -> None: ...


_meta = sa.MetaData()
_batches = sa.Table(
    "solo_batches",
    _meta,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("body", sa.Text, nullable=False),
)
#: where the order goes on after a lost or rewound log (:meth:`SoloOrderer.resume_after`): no batch row
#: stands for it, so a node behind reads no made-up batch (it catches up from its peers' blocks)
_resumed = sa.Table(
    "solo_resumed",
    _meta,
    sa.Column("after", sa.BigInteger, primary_key=True, autoincrement=False),
)


class SoloOrderer:
    """The designated node's durable batch log (the embedded default for one machine).

    One process owns it, so a lock gives the total order; readers in the same
    process wait on a condition instead of polling.
    """

    kind = "solo"

    def __init__(self, *, url: str) -> None:
        self._engine = make_engine(url)
        _meta.create_all(self._engine)
        self._cond = threading.Condition()
        #: what was wrong with the log when it was opened (:meth:`open`), for the node's status
        self.damaged: str | None = None
        with self._engine.connect() as conn:
            top = conn.execute(sa.select(sa.func.max(_batches.c.seq))).scalar()
            resumed = conn.execute(sa.select(sa.func.max(_resumed.c.after))).scalar()
        self._head = max(-1 if top is None else int(top), -1 if resumed is None else int(resumed))

    @classmethod
    def open(cls, path: Path) -> SoloOrderer:
        """The log in the SQLite file ``path``; a file that is not a readable log is moved aside (to
        ``<name>.damaged-<time>``) and a new log begun, with :attr:`damaged` saying so (the node then goes
        on after its chain's head, :meth:`resume_after`)."""
        try:
            return cls(url=f"sqlite:///{path}")
        except sa.exc.DatabaseError as exc:
            aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                part = Path(str(path) + suffix)
                if part.exists():
                    part.rename(Path(str(aside) + suffix))
            solo = cls(url=f"sqlite:///{path}")
            solo.damaged = f"the order log {path.name} was damaged ({exc.orig or exc}) and was moved to {aside.name}"
            return solo

    def restore(self, batches: Sequence[Batch]) -> int:
        """Put back the batches numbered after the log's head (copies kept with the blocks built from
        them, :mod:`consortium_nodes.batch_copies`), in order; how many.  A gap stays a gap: a node behind
        fetches those blocks from its peers."""
        with self._cond:
            fresh = sorted((b for b in batches if b.seq > self._head), key=lambda b: b.seq)
            if not fresh:
                return 0
            with self._engine.begin() as conn:
                conn.execute(_batches.insert(), [{"seq": b.seq, "body": b.to_json()} for b in fresh])
            self._head = fresh[-1].seq
            self._cond.notify_all()
            return len(fresh)

    def resume_after(self, height: int) -> int | None:
        """Go on after ``height`` (the chain's head) when the log ends before it (it was lost, rewound or
        damaged): the next batch is ``height + 1``, recorded so a restart goes on from there too.  The head
        the log had, or None when it was not behind."""
        with self._cond:
            if self._head >= height:
                return None
            was = self._head
            with self._engine.begin() as conn:
                conn.execute(_resumed.insert(), {"after": height})
            self._head = height
            self._cond.notify_all()
            return was

    def append(
        self, *, proposer: str, timestamp: str, txs: Sequence[bytes], sign: BatchSigner | None = None
    ) -> int:
        with self._cond:
            seq = self._head + 1
            return self._write(Batch(seq=seq, proposer=proposer, timestamp=timestamp, txs=tuple(txs),
                                     signature=None if sign is None else sign(seq)))

    def append_batch(self, batch: Batch) -> int:
        """Append a batch a proposer signed for ``batch.seq``: only if that is the next number, else
        :class:`OrderConflict` with the real head (the proposer signs again for the next one)."""
        with self._cond:
            if batch.seq != self._head + 1:
                raise OrderConflict(f"batch {batch.seq} is not the next one (the head is {self._head})",
                                    head=self._head)
            return self._write(batch)

    def _write(self, batch: Batch) -> int:
        with self._engine.begin() as conn:
            conn.execute(_batches.insert(), {"seq": batch.seq, "body": batch.to_json()})
        self._head = batch.seq
        self._cond.notify_all()
        return batch.seq

    def read(self, after: int, *, wait: float = 0.0, limit: int = 64) -> list[Batch]:
        deadline = time.monotonic() + wait
        with self._cond:
            while self._head <= after:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(_batches.c.body).where(_batches.c.seq > after).order_by(_batches.c.seq).limit(limit)
            ).scalars()
            return [Batch.from_json(r) for r in rows]

    def head(self) -> int:
        return self._head

    def forget(self, upto: int) -> None:
        """The solo log is the node's own durable record; nothing is dropped."""

    def close(self) -> None:
        self._engine.dispose()


#: appends in a row :meth:`HttpOrderer.append` may lose to other proposers before it gives up
APPEND_ATTEMPTS = 100


def _json_or_none(r: requests.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


class HttpOrderer:
    """A non-designated node's view of the solo orderer, over the designated node's HTTP API."""

    kind = "solo"

    def __init__(self, *, url: str, timeout: float = 10.0, tls: Tls | None = None, member: str | None = None,
                 genesis: str | None = None) -> None:
        self._url = url.rstrip("/")
        self._genesis = genesis  # an orderer answering for another genesis is never followed
        self._same_chain = genesis is None
        self._timeout = timeout
        self._tls, self._member = tls, member  # with TLS: only the designated node member is the orderer
        self._local = threading.local()
        self._head_hint: int | None = None  # the newest head seen (reads, appends): the next append's guess

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = transport.session(self._tls, expect=self._member)
        return s

    def _check_genesis(self) -> None:
        if self._same_chain:
            return
        try:
            r = self._session().get(self._url + "/status", timeout=self._timeout)
            theirs = r.json().get("genesis") if r.status_code == 200 else None
        except (requests.RequestException, ValueError, AttributeError) as exc:
            raise OrderingError(f"solo orderer at {self._url} is unreachable: {exc.__class__.__name__}") from exc
        if theirs != self._genesis:
            raise OrderingError(f"solo orderer at {self._url} answers for genesis {str(theirs)[:16]}, "
                                f"not ours {str(self._genesis)[:16]}: not following it")
        self._same_chain = True

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        self._check_genesis()
        try:
            r = self._session().request(method, self._url + path, timeout=self._timeout + kw.pop("extra", 0), **kw)
        except requests.RequestException as exc:
            raise OrderingError(f"solo orderer at {self._url} is unreachable: {exc.__class__.__name__}") from exc
        if r.status_code != 200:
            raise OrderingError(f"solo orderer at {self._url} answered {r.status_code}: {r.text[:200]}")
        return r.json()

    def append(
        self, *, proposer: str, timestamp: str, txs: Sequence[bytes], sign: BatchSigner | None = None
    ) -> int:
        """Post the batch signed for the number after the newest head seen; when the leader answers that
        another batch took it (409 ``order_conflict`` with the real head), sign for the next and post again."""
        body: dict[str, Any] = {"proposer": proposer, "timestamp": timestamp, "txs": [t.decode("utf-8") for t in txs]}
        if sign is None:
            return int(self._call("POST", "/v1/order/append", json=body)["seq"])
        head = self._head_hint if self._head_hint is not None else self.head()
        for _ in range(APPEND_ATTEMPTS):
            seq = head + 1
            signed = {**body, "seq": seq, "signature": sign(seq).to_dict()}
            try:
                r = self._session().post(self._url + "/v1/order/append", json=signed, timeout=self._timeout)
            except requests.RequestException as exc:
                raise OrderingError(f"solo orderer at {self._url} is unreachable: {exc.__class__.__name__}") from exc
            if r.status_code == 200:
                self._saw_head(seq)
                return int(r.json()["seq"])
            answer = _json_or_none(r)
            if r.status_code == 409 and isinstance(answer, dict) and isinstance(answer.get("head"), int):
                head = int(answer["head"])
                self._saw_head(head)
                continue
            raise OrderingError(f"solo orderer at {self._url} answered {r.status_code}: {r.text[:200]}")
        raise OrderingError(f"solo orderer at {self._url}: {APPEND_ATTEMPTS} appends in a row lost the race")

    def _saw_head(self, head: int) -> None:
        if self._head_hint is None or head > self._head_hint:
            self._head_hint = head

    def read(self, after: int, *, wait: float = 0.0, limit: int = 64) -> list[Batch]:
        d = self._call("GET", "/v1/order/read", params={"after": after, "wait": wait, "limit": limit}, extra=wait)
        batches = [Batch.from_json(b) for b in d["batches"]]
        if batches:
            self._saw_head(batches[-1].seq)
        return batches

    def head(self) -> int:
        head = int(self._call("GET", "/v1/order/head")["head"])
        self._saw_head(head)
        return head

    def forget(self, upto: int) -> None:
        return None

    def close(self) -> None:
        s = getattr(self._local, "session", None)
        if s is not None:
            s.close()
