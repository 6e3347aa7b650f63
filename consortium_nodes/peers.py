"""HTTP client of the other nodes (push and pull signatures, certified blocks) and the outbox of our signatures."""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from consortium_nodes.errors import PeerError
from consortium_nodes.ordering import Batch, OrderingError
from consortium_nodes.proposer import rows_body
from consortium_nodes.signature_stream import Streams, encode_message
from ledger import transport
from ledger.core.block import Block, HeaderSignature
from ledger.transport import Tls

log = logging.getLogger(__name__)


def url_path(url: str) -> str:
    """The path part of a base URL without its trailing slash ("" for ``http://host:port``)."""
    return urlsplit(url).path.rstrip("/")


class PeerLink(Protocol):
    """What a node needs of the other members' nodes (:class:`Peers` over HTTP; fakes in tests)."""

    @property
    def urls(self) -> Mapping[str, str]: ...

    def push_signatures_to(self, name: str, sender: str, items: Sequence[dict[str, Any]]) -> bool: ...

    def signatures(self, name: str, height: int) -> tuple[str, list[HeaderSignature]]: ...

    def hand_over(self, name: str, sender: str, rows: Sequence[tuple[str, bytes]]) -> bool: ...

    def blocks(self, name: str, start: int, limit: int = 20) -> list[Block]: ...

    def batch_copies(self, name: str, after: int, limit: int = 64) -> list[Batch]: ...

    def cosign(self, name: str, note: str) -> str: ...

    def share_checkpoint(self, note: str) -> None: ...

    def stream_status(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class Peers:
    """The other members' nodes by name; every call has a short timeout."""

    def __init__(self, *, peers: Mapping[str, str], timeout: float = 3.0, tls: Tls | None = None,
                 genesis: str | None = None) -> None:
        self.urls = {k: v.rstrip("/") for k, v in peers.items()}
        self._genesis = genesis  # a peer answering for another genesis is never followed
        self._same_chain: set[str] = set()
        self._timeout = timeout
        self._local = threading.local()
        self._tls = tls
        # with TLS each peer's connections trust only that member under its key in force: another server fails
        #: our signatures to each peer over one long-lived request (:mod:`consortium_nodes.signature_stream`)
        self._streams = Streams(connect=self._connection, path_of=lambda name: url_path(self.urls[name]))

    def _session(self) -> requests.Session:
        s = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = transport.session(self._tls, members={u: k for k, u in self.urls.items()})
        return s

    def _connection(self, name: str) -> http.client.HTTPConnection:
        url = urlsplit(self.urls[name])
        host = url.hostname or "127.0.0.1"
        if url.scheme == "https":
            ctx = self._tls.client_context(name) if self._tls is not None else ssl.create_default_context()
            return http.client.HTTPSConnection(host, url.port or 443, timeout=self._timeout, context=ctx)
        return http.client.HTTPConnection(host, url.port or 80, timeout=self._timeout)

    def _check_genesis(self, name: str) -> None:
        if self._genesis is None or name in self._same_chain:
            return
        try:
            r = self._session().get(self.urls[name] + "/status", timeout=self._timeout)
            theirs = r.json().get("genesis") if r.status_code == 200 else None
        except (requests.RequestException, ValueError, AttributeError) as exc:
            raise PeerError(f"peer {name} unreachable: {exc.__class__.__name__}") from exc
        if theirs != self._genesis:
            raise PeerError(f"peer {name} answers for genesis {str(theirs)[:16]}, not ours {self._genesis[:16]}")
        self._same_chain.add(name)

    def _get(self, name: str, path: str, **params: Any) -> Any:
        self._check_genesis(name)
        try:
            r = self._session().get(self.urls[name] + path, params=params, timeout=self._timeout)
        except requests.RequestException as exc:
            raise PeerError(f"peer {name} unreachable: {exc.__class__.__name__}") from exc
        if r.status_code != 200:
            raise PeerError(f"peer {name} answered {r.status_code} to {path}")
        return r.json()

    def push_signatures_to(self, name: str, sender: str, items: Sequence[dict[str, Any]]) -> bool:
        """Send our header signatures to one peer: a frame on our signature stream to it
        (:class:`~consortium_nodes.signature_stream.Streams`), else one ``POST /v1/signatures`` over this
        thread's keep-alive connection to it; False if it could not be reached (it pulls them later).  This
        runs for every block and every peer, so it uses ``http.client`` directly: a third of the CPU of a
        ``requests`` call, and a stream frame costs neither side a request."""
        body = encode_message(sender, list(items))
        if self._streams.send(name, body, token=None if self._tls is None else self._tls.client_context(name)):
            return True
        conns: dict[str, http.client.HTTPConnection] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
            self._local.ctxs = {}  # the TLS context each connection was made with
        for attempt in (1, 2):  # a kept-alive connection the peer has closed meanwhile fails once
            conn = conns.get(name)
            ctx = None if self._tls is None else self._tls.client_context(name)
            if conn is not None and ctx is not self._local.ctxs.get(name):
                conn.close()  # made under a membership no longer in force
                conn = None
            if conn is None:
                conn = conns[name] = self._connection(name)
                self._local.ctxs[name] = ctx
            try:
                conn.request("POST", (url_path(self.urls[name])) + "/v1/signatures", body=body,
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.will_close:
                    conn.close()
                    del conns[name]
                return resp.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                del conns[name]
                if attempt == 2:
                    log.debug("peer %s unreachable for signatures", name)
        return False

    def hand_over(self, name: str, sender: str, rows: Sequence[tuple[str, bytes]]) -> bool:
        """Give pooled transactions to peer ``name``, the proposer of the moment (``POST /v1/pool/forward``,
        :mod:`consortium_nodes.proposer`); False if it did not take them (unreachable, another chain, refused),
        or is not one of our peers (the election key names it: whoever can write to etcd is not trusted)."""
        if name not in self.urls:
            return False
        try:
            self._check_genesis(name)
            r = self._session().post(self.urls[name] + "/v1/pool/forward", json=rows_body(sender, rows),
                                     timeout=self._timeout)
        except (PeerError, requests.RequestException) as exc:
            log.debug("peer %s did not take a hand-over: %s", name, exc)
            return False
        return r.status_code == 200

    def signatures(self, name: str, height: int) -> tuple[str, list[HeaderSignature]]:
        d = self._get(name, f"/v1/blocks/{height}/signatures")
        return str(d["header_hash"]), [HeaderSignature.from_dict(s) for s in d["signatures"]]

    def blocks(self, name: str, start: int, limit: int = 20) -> list[Block]:
        d = self._get(name, "/v1/blocks", start=start, limit=limit)
        return [Block.from_dict(b) for b in d["blocks"]]

    def batch_copies(self, name: str, after: int, limit: int = 64) -> list[Batch]:
        """The batches the peer kept with its newest blocks, numbered after ``after``; malformed ones end the
        list (:class:`PeerError` when none is readable)."""
        d = self._get(name, "/v1/order/copies", after=after, limit=limit)
        out: list[Batch] = []
        try:
            for text in d["batches"]:
                out.append(Batch.from_json(str(text)))
        except (KeyError, TypeError, OrderingError) as exc:
            if not out:
                raise PeerError(f"peer {name} sent unreadable batch copies: {exc}") from exc
        return out

    def cosign(self, name: str, note: str) -> str:
        """Ask a peer to witness a checkpoint; it co-signs only if the note matches its own log."""
        try:
            r = self._session().post(self.urls[name] + "/v1/checkpoint/cosign", json={"note": note},
                                     timeout=self._timeout)
        except requests.RequestException as exc:
            raise PeerError(f"peer {name} unreachable: {exc.__class__.__name__}") from exc
        if r.status_code != 200:
            raise PeerError(f"peer {name} refused to co-sign: {r.text[:200]}")
        return str(r.json()["note"])

    def share_checkpoint(self, note: str) -> None:
        for url in self.urls.values():
            try:
                self._session().post(url + "/v1/checkpoints", json={"note": note}, timeout=self._timeout)
            except requests.RequestException:
                continue

    def stream_status(self) -> dict[str, Any]:
        """Our signature streams to the peers (``/status``: ``signature_streams``)."""
        return self._streams.status()

    def close(self) -> None:
        """End our signature streams (the peers' readers end at once)."""
        self._streams.close()


#: seconds a sender sleeps on an empty outbox before it looks at the stop flag again
IDLE_WAIT = 0.5


class SignatureOutbox:
    """Signatures queued per peer (a slow peer delays no other); one condition guards the outboxes."""

    def __init__(self, *, name: str, peers: PeerLink, stop: threading.Event) -> None:
        self._name = name
        self._peers = peers
        self._stop = stop
        self._cond = threading.Condition()
        self._outboxes: dict[str, list[dict[str, Any]]] = {peer: [] for peer in peers.urls}

    @property
    def peers(self) -> list[str]:
        return list(self._outboxes)

    def push(self, item: dict[str, Any]) -> None:
        """Queue one signature item (``height``, ``header_hash``, signature fields) for every peer."""
        with self._cond:
            for outbox in self._outboxes.values():
                outbox.append(item)
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def run(self, peer: str) -> None:
        """Thread body: push the queued signatures to ``peer`` until stopped."""
        while not self._stop.is_set():
            self.send(peer, wait=IDLE_WAIT)

    def send(self, peer: str, *, wait: float = 0.0) -> int:
        """Push what is queued for ``peer`` (waiting up to ``wait`` s for something); how many were sent."""
        with self._cond:
            if not self._outboxes[peer] and wait > 0:
                self._cond.wait(wait)
            items, self._outboxes[peer] = self._outboxes[peer], []
        if items:
            self._peers.push_signatures_to(peer, self._name, items)
        return len(items)
