"""One long-lived etcd watch on an orderer's batch keys, handing each new batch to the waiting readers."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence

import requests
from urllib3.exceptions import ReadTimeoutError

from consortium_nodes.etcd_client import API_PATH, b64, unb64
from consortium_nodes.ordering import Batch, seq_of_key

#: batches the watch holds for readers at most (nobody reads, e.g. a stopped follower: the newest are kept)
MAX_WATCHED = 4096
#: seconds :meth:`BatchWatch.stop` waits for the watch thread
JOIN_TIMEOUT = 2.0


def _is_read_timeout(exc: requests.ConnectionError) -> bool:
    """True for the read timeout of a streamed body, which requests raises as a ConnectionError wrapping
    urllib3's ReadTimeoutError (as its argument and context)."""
    return any(isinstance(e, ReadTimeoutError) for e in (*exc.args[:1], exc.__context__, exc.__cause__))


class BatchWatch:
    """The watch of one orderer (started by the first waiting read).

    It delivers each new batch as it is committed, so readers neither poll nor issue a range read per
    batch, and sleep on one condition instead of opening a watch of their own per wait.  The condition
    guards the revision the watch has reported, whether a stream is live, and the batches delivered
    and not yet read.
    """

    def __init__(
        self, *, endpoints: Sequence[str], key: str, range_end: str, request_timeout: float, poll_interval: float,
        preferred: Callable[[], int], saw_head: Callable[[int], None], name: str,
        session: Callable[[], requests.Session] | None = None,
    ) -> None:
        self._new_session = session
        self._endpoints = list(endpoints)
        self._key = key
        self._range_end = range_end
        self._request_timeout = request_timeout
        self._poll_interval = poll_interval
        self._preferred = preferred
        self._saw_head = saw_head
        self._name = name
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._rev = 0  # highest etcd revision the watch has reported (events, creation)
        self.live = False  # a watch stream is established now
        self._watched: dict[int, tuple[Batch, int]] = {}  # seq → (batch, revision) from the watch, not yet read
        self._thread: threading.Thread | None = None
        self._response: requests.Response | None = None
        self.closed = False
        #: seconds without any message after which the watch stream is re-established
        self.idle = 10.0

    def ensure(self) -> None:
        """Start the watch thread if it is not running."""
        with self._lock:
            if self._thread is None and not self.closed:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()

    def take(self, after: int, limit: int) -> list[tuple[Batch, int]]:
        """Consecutive batches from ``after + 1`` the watch has delivered, with their revisions (and
        forget older ones)."""
        if not self._watched:
            return []
        with self._cond:
            for seq in [s for s in self._watched if s <= after]:
                del self._watched[seq]
            out: list[tuple[Batch, int]] = []
            seq = after + 1
            while seq in self._watched and len(out) < limit:
                out.append(self._watched[seq])
                seq += 1
            return out

    def wait(self, revision: int, timeout: float, want: int | None = None) -> bool:
        """Block until the watch delivered batch ``want`` (True), reported a revision after ``revision``
        without it (False: the caller reads etcd), or ``timeout`` passed (True).

        While no watch is established (start-up, a member died) it sleeps ``poll_interval`` and
        returns False, so the caller reads etcd instead.
        """
        self.ensure()
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.closed:
                if want is not None and want in self._watched:
                    return True
                if self._rev > revision:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                if not self.live:
                    self._cond.wait(min(left, self._poll_interval))
                    return False
                self._cond.wait(left)
        return True

    def _note(self, revision: int, *, live: bool | None = None, batches: Sequence[tuple[Batch, int]] = ()) -> None:
        with self._cond:
            for batch, at in batches:
                self._watched[batch.seq] = (batch, at)
            while len(self._watched) > MAX_WATCHED:
                del self._watched[min(self._watched)]
            if revision > self._rev:
                self._rev = revision
            if live is not None:
                self.live = live
            self._cond.notify_all()
        if batches:
            self._saw_head(max(b.seq for b, _ in batches))

    def _loop(self) -> None:
        """Keep one etcd watch on the batch keys open; hand every batch it delivers to the readers.

        The watch is created at the member's current revision, and the creation's revision is reported
        too: a batch written before it is then at most that revision, so a reader that found nothing
        at an earlier revision wakes and reads etcd; any later batch arrives as an event (with its
        value: no read needed).  A broken or idle (``idle`` s) stream is re-established, on the
        next member after an error.
        """
        if self._new_session is not None:
            session = self._new_session()
        else:
            session = requests.Session()
            session.trust_env = False
        index = self._preferred()
        try:
            while not self.closed:
                failed = False
                try:
                    failed = self._stream(session, self._endpoints[index])
                except requests.ConnectTimeout:
                    failed = True
                except requests.ConnectionError as exc:
                    # An idle stream ends in a read timeout (requests wraps it): re-establish it, same member.
                    failed = not _is_read_timeout(exc)
                except (requests.RequestException, ValueError, TypeError, AttributeError):
                    failed = True
                finally:
                    self._response = None
                    self._note(0, live=False)
                if self.closed:
                    return
                if failed:
                    index = (index + 1) % len(self._endpoints)
                    time.sleep(self._poll_interval)
        finally:
            session.close()

    def _stream(self, session: requests.Session, endpoint: str) -> bool:
        """Read one watch stream until it ends; True if it failed (the next member is tried)."""
        with session.post(
            endpoint + API_PATH + "watch",
            json={"create_request": {"key": b64(self._key), "range_end": b64(self._range_end)}},
            stream=True,
            timeout=(self._request_timeout, self.idle),
        ) as resp:
            if resp.status_code != 200:
                raise requests.RequestException(f"watch answered {resp.status_code}")
            self._response = resp
            # chunk_size=None: each line as soon as it arrives (the stubs only know ints)
            for line in resp.iter_lines(chunk_size=None):  # type: ignore[call-overload]
                if self.closed:
                    break
                if not line.strip():
                    continue
                message = json.loads(line)
                result = message.get("result")
                if not isinstance(result, dict) or result.get("canceled"):
                    return True
                revision = int(result.get("header", {}).get("revision", 0))
                batches: list[tuple[Batch, int]] = []
                for event in result.get("events", []):
                    kv = event.get("kv", {})
                    at = int(kv.get("mod_revision", 0))
                    revision = max(revision, at)
                    if event.get("type", "PUT") == "PUT" and kv.get("value"):
                        seq = seq_of_key(unb64(kv.get("key", "")))
                        batches.append((Batch.from_json(unb64(kv["value"]), seq=seq), at))
                self._note(revision, live=True, batches=batches)
        return False

    def stop(self) -> None:
        """Stop the watch: shut its stream's socket down under the blocked read, join the thread."""
        self.closed = True
        resp = self._response
        if resp is not None:
            with contextlib.suppress(Exception):
                sock = socket.fromfd(resp.raw._fp.fileno(), socket.AF_INET, socket.SOCK_STREAM)
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        self._note(0, live=False)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=JOIN_TIMEOUT)
