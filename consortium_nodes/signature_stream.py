"""Header signatures to a peer over one long-lived request: a chunked ``POST /v1/signatures/stream`` of frames.

Every block costs every node one signature to each peer.  Sent as one ``POST /v1/signatures`` each, that was
a whole HTTP request per block per peer on both sides (request parsing, the Flask dispatch, the answer, the
connection going back to the server's selector): at 20–25 blocks a second, 60–75 requests a second into
every node and as many out, the largest HTTP cost of a node under load (docs/BENCHMARKS.md).  Over a stream
the sender writes a frame and the receiver reads it; nothing is answered until the stream ends.

A frame is 8 lower-case hex digits giving the length of the body, then the body: the same JSON object as
``POST /v1/signatures`` takes (``{"from": name, "signatures": [...]}``).  Frames ride in HTTP/1.1 chunks
(``Transfer-Encoding: chunked``), one frame per chunk, but are read by their own length, so chunk boundaries
do not matter.  A frame of length 0 is a heartbeat.

What is written to a stream is not acknowledged: a frame the peer did not read (it stopped, the connection
broke) is pulled later by the peer's syncer (:data:`consortium_nodes.catchup.PULL_AFTER`), as a failed push
is.  A sender that finds its stream answered or closed by the peer (a refusal, a peer without the route, the
server's idle timeout) closes it, sends this signature with one plain ``POST`` and opens a new stream at the
next one, or after :data:`REOPEN_AFTER` seconds when the peer refused the stream.
"""

from __future__ import annotations

import http.client
import json
import logging
import select
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from consortium_nodes.errors import MalformedStream
from ledger.core.encoding import parse_untrusted
from ledger.errors import LedgerError

log = logging.getLogger(__name__)

#: bytes of a frame's length header (hex digits)
HEADER = 8
#: the largest frame body a node reads (a frame of one block's signatures is a few hundred bytes)
MAX_FRAME = 1 << 20
#: seconds before a sender whose stream the peer refused (or does not know) tries to open one again
REOPEN_AFTER = 30.0
#: the path of the stream, after the peer's base URL
PATH = "/v1/signatures/stream"


def frame(body: bytes) -> bytes:
    """One frame with its length header (a heartbeat for ``b""``)."""
    if len(body) > MAX_FRAME:
        raise MalformedStream(f"a frame of {len(body)} bytes is over {MAX_FRAME}")
    return b"%08x" % len(body) + body


def chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk."""
    return b"%x\r\n" % len(data) + data + b"\r\n"


#: the chunk that ends a chunked body
LAST_CHUNK = b"0\r\n\r\n"


def read_exact(stream: BinaryIO, size: int) -> bytes:
    """``size`` bytes of ``stream``; fewer only at its end."""
    data = b""
    while len(data) < size:
        part = stream.read(size - len(data))
        if not part:
            break
        data += part
    return data


def frames(stream: BinaryIO) -> Iterator[bytes]:
    """The frame bodies of ``stream`` (heartbeats left out) until it ends; :class:`MalformedStream` for a stream
    that is not frames."""
    while True:
        head = read_exact(stream, HEADER)
        if not head:
            return
        if len(head) < HEADER or not all(c in b"0123456789abcdef" for c in head):
            raise MalformedStream(f"a signature stream frame begins with {head[:HEADER]!r}, not {HEADER} hex digits")
        size = int(head, 16)
        if size > MAX_FRAME:
            raise MalformedStream(f"a signature stream frame of {size} bytes is over {MAX_FRAME}")
        if size == 0:
            continue
        body = read_exact(stream, size)
        if len(body) < size:
            raise MalformedStream(f"a signature stream ended inside a frame ({len(body)} of {size} bytes)")
        yield body


class Connect(Protocol):
    """Makes a new (not yet connected) connection to a peer."""

    def __call__(self, name: str) -> http.client.HTTPConnection: ...


@dataclass
class _Open:
    conn: http.client.HTTPConnection
    #: what the connection was made under (the TLS context of the membership then in force)
    token: object = None


class Streams:
    """A node's open signature streams, one per peer.  :meth:`send` is called by that peer's sender thread
    only (:class:`~consortium_nodes.peers.SignatureOutbox`), so one lock per peer is not contended."""

    def __init__(self, *, connect: Connect, path_of: Callable[[str], str],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._connect = connect
        self._path_of = path_of
        self._monotonic = monotonic
        self._open: dict[str, _Open] = {}
        self._refused_until: dict[str, float] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        #: per peer: frames written, streams opened, streams found answered or broken (for ``/status``)
        self.counts: dict[str, dict[str, int]] = {}

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            self.counts.setdefault(name, {"frames": 0, "opened": 0, "ended": 0})
            return self._locks.setdefault(name, threading.Lock())

    def send(self, name: str, body: bytes, *, token: object = None) -> bool:
        """Write ``body`` as a frame to the stream to ``name`` (opening one when none is open); False when the
        caller should send it another way (no stream now: it was refused, answered or broken).  A stream
        opened under another ``token`` (a TLS context of a membership no longer in force) is ended first.  A
        body over :data:`MAX_FRAME` (a backlog of many blocks' signatures for a peer that was away) is not
        a frame: False, and it goes as one ``POST``."""
        if len(body) > MAX_FRAME:
            return False
        with self._lock(name):
            if self._monotonic() < self._refused_until.get(name, 0.0):
                return False
            current = self._open.get(name)
            if current is not None and current.token is not token:
                self._end(name, refused=False)
                current = None
            answer = None if current is None else _answered(current.conn)
            if answer is not None:
                self._end(name, refused=_refused(answer))
                current = None
            if current is None:
                try:
                    current = self._start(name, token)
                except (OSError, http.client.HTTPException) as exc:
                    log.debug("no signature stream to %s: %s", name, exc)
                    return False
            try:
                assert current.conn.sock is not None
                current.conn.sock.sendall(chunk(frame(body)))
            except OSError as exc:
                log.debug("signature stream to %s broke: %s", name, exc)
                self._end(name, refused=False)
                return False
            self.counts[name]["frames"] += 1
            return True

    def _start(self, name: str, token: object) -> _Open:
        conn = self._connect(name)
        try:
            conn.putrequest("POST", self._path_of(name) + PATH, skip_accept_encoding=True)
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
        except BaseException:
            conn.close()
            raise
        opened = self._open[name] = _Open(conn, token)
        self.counts[name]["opened"] += 1
        return opened

    def _end(self, name: str, *, refused: bool) -> None:
        current = self._open.pop(name, None)
        if current is not None:
            current.conn.close()
            self.counts[name]["ended"] += 1
        if refused:
            self._refused_until[name] = self._monotonic() + REOPEN_AFTER

    def close(self) -> None:
        """End every stream (the last chunk, so the peers' readers end at once)."""
        with self._guard:
            names = list(self._open)
        for name in names:
            with self._lock(name):
                current = self._open.pop(name, None)
                if current is None:
                    continue
                try:
                    assert current.conn.sock is not None
                    current.conn.sock.sendall(LAST_CHUNK)
                except OSError:
                    pass
                current.conn.close()

    def status(self) -> dict[str, Any]:
        """Per peer: ``open`` and the counts."""
        with self._guard:
            return {name: {"open": name in self._open, **c} for name, c in sorted(self.counts.items())}


def _answered(conn: http.client.HTTPConnection) -> bytes | None:
    """What the peer wrote to a stream it should only read (it answered or closed it: ``b""`` when it closed
    it); None when it wrote nothing.  A readable TLS socket may hold only TLS records of the session (TLS 1.3
    session tickets arrive after the handshake): reading them without blocking gives no data."""
    sock = conn.sock
    if sock is None:
        return b""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return None
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            return bytes(sock.recv(4096))
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return None
        finally:
            sock.settimeout(timeout)
    except (OSError, ValueError):
        return b""


def _refused(answer: bytes) -> bool:
    """True when the peer's answer to a stream is a refusal of the stream itself (a status other than 200: no
    such route, not a node member), so the sender does not open a new one at once; an ended stream (no
    answer: an idle timeout, a restart) is opened again at the next frame."""
    if not answer:
        return False
    parts = answer.split(b" ", 2)
    status = parts[1] if len(parts) > 1 else b""
    if status != b"200":
        log.warning("peer refused the signature stream: %s", answer.split(b"\r\n", 1)[0][:80])
        return True
    return False


def receive(stream: BinaryIO, accept: Callable[[Any], int], stopping: Callable[[], bool]) -> dict[str, int]:
    """The receiving side: every frame's signatures go to ``accept`` (:meth:`Node.receive_signatures`) until the
    stream ends or ``stopping()``; ``{"frames", "accepted"}``.  :class:`MalformedStream` for a stream that is not
    frames or a frame that is not a JSON object (everything read before it was accepted)."""
    done = {"frames": 0, "accepted": 0}
    try:
        for body in frames(stream):
            try:
                message = parse_untrusted(body)
            except LedgerError as exc:
                raise MalformedStream(f"a signature stream frame is not JSON: {exc.message}") from None
            if not isinstance(message, dict):
                raise MalformedStream("a signature stream frame is not a JSON object")
            items = message.get("signatures", [])
            done["frames"] += 1
            done["accepted"] += accept(items if isinstance(items, list) else [])
            if stopping():
                break
    except (OSError, ValueError) as exc:  # the connection broke or timed out, or a bad chunk (cheroot)
        log.debug("signature stream ended: %s", exc)
    return done


def encode_message(sender: str, items: list[dict[str, Any]]) -> bytes:
    """The body of a frame (and of ``POST /v1/signatures``)."""
    return json.dumps({"from": sender, "signatures": items}, separators=(",", ":")).encode("utf-8")


__all__ = ["MAX_FRAME", "PATH", "Streams", "encode_message", "frame", "frames", "receive"]

