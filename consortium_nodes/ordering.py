"""Ordering: the interface to a total order of batches, and the solo orderer (one node's durable batch log)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import requests
import sqlalchemy as sa

from consortium_nodes.errors import NodeError
from ledger.store.schema import make_engine


@dataclass(frozen=True)
class Batch:
    """Batch ``seq`` becomes block ``seq``; ``txs`` are canonical transaction bytes."""

    seq: int
    proposer: str
    timestamp: str
    txs: tuple[bytes, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "proposer": self.proposer,
                "timestamp": self.timestamp,
                "txs": [t.decode("utf-8") for t in self.txs],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes, *, seq: int | None = None) -> Batch:
        """The batch in the engine's bytes; ``seq`` is the engine's own number for it (an etcd key's).

        Whatever else the bytes hold, every node reads the same batch from them: a field of the wrong
        type becomes empty (no proposer, no timestamp, no transactions; a transaction that is not a
        string is left out), and the block builder turns such a batch into the same empty block on
        every node.  Only bytes that say nowhere which batch they are raise :class:`MalformedOrder`.
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
        )


class OrderingError(NodeError):
    """The ordering service cannot be reached or refused the operation."""

    reason = "ordering_error"


class MalformedOrder(OrderingError):
    """The ordering engine holds bytes that are not a batch at all (not even its number can be read)."""

    reason = "malformed_order"


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
    proposing at once get consecutive, distinct numbers.  ``read`` returns
    batches with ``seq > after`` in order, waiting up to ``wait`` seconds for
    the first one.  ``forget`` lets the engine drop batches up to ``upto``:
    nodes that fall further behind catch up from their peers' blocks.
    """

    kind: str

    def append(self, *, proposer: str, timestamp: str, txs: Sequence[bytes]) -> int: ...

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
        with self._engine.connect() as conn:
            top = conn.execute(sa.select(sa.func.max(_batches.c.seq))).scalar()
        self._head = -1 if top is None else int(top)

    def append(self, *, proposer: str, timestamp: str, txs: Sequence[bytes]) -> int:
        with self._cond:
            seq = self._head + 1
            batch = Batch(seq=seq, proposer=proposer, timestamp=timestamp, txs=tuple(txs))
            with self._engine.begin() as conn:
                conn.execute(_batches.insert(), {"seq": seq, "body": batch.to_json()})
            self._head = seq
            self._cond.notify_all()
            return seq

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


class HttpOrderer:
    """A non-designated node's view of the solo orderer, over the designated node's HTTP API."""

    kind = "solo"

    def __init__(self, *, url: str, timeout: float = 10.0) -> None:
        self._url = url.rstrip("/")
        self._timeout = timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.trust_env = False  # a fixed peer URL: no proxy / .netrc lookups per request
            self._local.session = s
        return s

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self._session().request(method, self._url + path, timeout=self._timeout + kw.pop("extra", 0), **kw)
        except requests.RequestException as exc:
            raise OrderingError(f"solo orderer at {self._url} is unreachable: {exc.__class__.__name__}") from exc
        if r.status_code != 200:
            raise OrderingError(f"solo orderer at {self._url} answered {r.status_code}: {r.text[:200]}")
        return r.json()

    def append(self, *, proposer: str, timestamp: str, txs: Sequence[bytes]) -> int:
        body = {"proposer": proposer, "timestamp": timestamp, "txs": [t.decode("utf-8") for t in txs]}
        return int(self._call("POST", "/v1/order/append", json=body)["seq"])

    def read(self, after: int, *, wait: float = 0.0, limit: int = 64) -> list[Batch]:
        d = self._call("GET", "/v1/order/read", params={"after": after, "wait": wait, "limit": limit}, extra=wait)
        return [Batch.from_json(b) for b in d["batches"]]

    def head(self) -> int:
        return int(self._call("GET", "/v1/order/head")["head"])

    def forget(self, upto: int) -> None:
        return None

    def close(self) -> None:
        s = getattr(self._local, "session", None)
        if s is not None:
            s.close()
