"""etcd's v3 JSON gateway as the etcd orderer uses it: wire encoding, failover between endpoints, retries."""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from etcd3gw import exceptions as etcd_exc
from etcd3gw.client import Etcd3Client

from consortium_nodes.ordering import OrderingError

#: etcd's v3 JSON (grpc-gateway) API path for etcd 3.4+ (3.3 served ``/v3beta/``, 3.2 ``/v3alpha/``).
API_PATH = "/v3/"
_RETRYABLE_GRPC_CODES = {1, 2, 4, 10, 13, 14}  # canceled, unknown, deadline, aborted, internal, unavailable
#: seconds of the first pause before a retry, and the longest pause (it doubles in between)
FIRST_RETRY_DELAY = 0.02
MAX_RETRY_DELAY = 0.4
T = TypeVar("T")


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode("utf-8") if isinstance(data, str) else data).decode("ascii")


def unb64(data: str) -> bytes:
    return base64.b64decode(data)


def grpc_code(exc: etcd_exc.Etcd3Exception) -> int | None:
    try:
        return int(json.loads(exc.detail_text or "")["code"])
    except (ValueError, KeyError, TypeError):
        return None


def describe(exc: BaseException) -> str:
    detail = getattr(exc, "detail_text", None)
    text = str(detail) if detail else (str(exc) or type(exc).__name__)
    return f"{type(exc).__name__}: {text[:300]}"


def is_retryable(exc: BaseException) -> bool:
    """True for failures an election or a dead member causes; False for refusals (too large, no space)."""
    if isinstance(
        exc,
        etcd_exc.ConnectionFailedError | etcd_exc.ConnectionTimeoutError | etcd_exc.InternalServerError,
    ):
        return True
    if isinstance(exc, etcd_exc.Etcd3Exception):
        return grpc_code(exc) in _RETRYABLE_GRPC_CODES
    return isinstance(exc, requests.RequestException | ValueError)


def range_op(key: str, range_end: str | None = None, limit: int = 0) -> dict[str, Any]:
    """A ``request_range`` operation of an etcd transaction."""
    req: dict[str, Any] = {"key": b64(key)}
    if range_end is not None:
        req["range_end"] = b64(range_end)
    if limit:
        req["limit"] = limit
    return {"request_range": req}


def kvs_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The key-values of one range response of a transaction."""
    kvs: list[dict[str, Any]] = response.get("response_range", {}).get("kvs", [])
    return kvs


def int_value(kvs: list[dict[str, Any]]) -> int:
    """The integer value of the first key-value, -1 if there is none."""
    return int(unb64(kvs[0]["value"])) if kvs else -1


def _plain_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # fixed endpoints: no proxy / .netrc lookups per request
    return session


class EtcdTransport:
    """One etcd client per endpoint and thread, with failover and retries of transient errors.

    ``preferred`` is the endpoint tried first (moved on after a failure); thread-safe.
    """

    def __init__(self, *, endpoints: Sequence[str], request_timeout: float, retry_for: float,
                 session: Callable[[], requests.Session] | None = None) -> None:
        self.endpoints = list(endpoints)
        self._new_session = session or _plain_session  # each thread's session (TLS: ledger.transport.session)
        self.request_timeout = request_timeout
        self.retry_for = retry_for
        self.preferred = random.randrange(len(self.endpoints))
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self.closed = False

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

    def clients(self) -> list[Etcd3Client]:
        """This thread's clients, one per endpoint (created at its first call)."""
        clients: list[Etcd3Client] | None = getattr(self._local, "clients", None)
        if clients is None:
            if self.closed:
                raise OrderingError("the etcd orderer is closed")
            session = self._new_session()
            with self._lock:
                self._sessions.append(session)
            clients = [self._new_client(e, session) for e in self.endpoints]
            self._local.clients = clients
        return clients

    def call(self, what: str, fn: Callable[[Etcd3Client], T], *, on_retry: Callable[[], None] | None = None) -> T:
        """Run ``fn`` on the preferred endpoint; on transient errors fail over, retry for ``retry_for`` s."""
        clients = self.clients()
        deadline = time.monotonic() + self.retry_for
        delay = FIRST_RETRY_DELAY
        errors: dict[str, str] = {}
        while True:
            index = self.preferred
            client = clients[index]
            try:
                return fn(client)
            except (etcd_exc.Etcd3Exception, requests.RequestException, ValueError) as exc:
                if not is_retryable(exc):
                    raise OrderingError(f"etcd refused {what}: {describe(exc)}") from exc
                errors[self.endpoints[index]] = describe(exc)
                if on_retry is not None:
                    on_retry()
                if time.monotonic() + delay > deadline:
                    detail = "; ".join(f"{e}: {m}" for e, m in errors.items())
                    raise OrderingError(
                        f"etcd unavailable for {what} after {self.retry_for:g} s over {len(clients)} "
                        f"endpoint(s): {detail}"
                    ) from exc
                if self.preferred == index:
                    self.preferred = (index + 1) % len(clients)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, MAX_RETRY_DELAY)

    def txn(self, what: str, txn: dict[str, Any], *, on_retry: Callable[[], None] | None = None) -> dict[str, Any]:
        """One etcd transaction (compare, success, failure operations)."""
        result: dict[str, Any] = self.call(what, lambda c: dict(c.transaction(txn)), on_retry=on_retry)
        return result

    def close(self) -> None:
        """Close every thread's HTTP session; no call works afterwards."""
        self.closed = True
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for s in sessions:
            s.close()
        self._local = threading.local()
