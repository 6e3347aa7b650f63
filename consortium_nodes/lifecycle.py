"""A node process's hold on its storage and its port: one live process per database, a port it really owns.

- :func:`hold_database` takes an exclusive ``fcntl.flock`` on a lock file next to the SQLite database (or
  in the data directory for another database), held for the life of the process: a second node on the
  same ledger is refused with :class:`DatabaseHeld`, naming the holder's pid.
- :func:`listen` binds the HTTP server (cheroot; mutual TLS when the node has TLS files) before any thread
  starts: a port another process holds fails at once with :class:`PortInUse`, naming the port; a
  non-loopback address without TLS is refused with :class:`TlsRequired`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cheroot.ssl import Adapter
from cheroot.ssl.builtin import BuiltinSSLAdapter

from consortium_nodes.access import PEER_CERT
from consortium_nodes.errors import DatabaseHeld, PortInUse, TlsRequired
from ledger.transport import Tls


def sqlite_path(db_url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (None for other databases and in-memory SQLite)."""
    for prefix in ("sqlite+pysqlite:///", "sqlite:///"):
        if db_url.startswith(prefix):
            rest = db_url[len(prefix):].split("?", 1)[0]
            return Path(rest) if rest and rest != ":memory:" else None
    return None


def lock_path(db_url: str, data_dir: Path) -> Path:
    """``ledger.db.lock`` next to a SQLite database, else ``node.lock`` in the data directory."""
    p = sqlite_path(db_url)
    return p.with_name(p.name + ".lock") if p is not None else data_dir / "node.lock"


class DatabaseLock:
    """An exclusive lock on a node's database, held while the file descriptor is open."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def hold_database(db_url: str, data_dir: Path) -> DatabaseLock:
    """Lock this node's database for this process's life; :class:`DatabaseHeld` if another process has it."""
    path = lock_path(db_url, data_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise DatabaseHeld(f"database {path.with_suffix('')} is held by another live process "
                           f"(pid {holder}, lock {path}); not starting a second node on it") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return DatabaseLock(path, fd)


def check_port(host: str, port: int) -> None:
    """:class:`PortInUse` naming the port when something listens on ``host:port`` (checked before the store
    opens; :func:`listen` binds for real once the app exists)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise _in_use(host, port, exc) from exc


def _in_use(host: str, port: int, exc: OSError) -> PortInUse:
    return PortInUse(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                     f"(is another node or consortium on port {port}?)")


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_loopback(host: str) -> bool:
    import ipaddress

    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_tls(host: str, *, tls: bool) -> None:
    """:class:`TlsRequired` for a node that would listen on a non-loopback address without TLS."""
    if not tls and not is_loopback(host):
        raise TlsRequired(f"node would listen on {host} without TLS: give it a \"tls\" section (cert, key, ca) "
                          "in its config, or listen on 127.0.0.1")


class _MemberTLS(BuiltinSSLAdapter):
    """cheroot's builtin TLS adapter over the node's own server context (client certificates required), asked
    for again at every connection (:meth:`Tls.server_context` follows the membership in force, so a member
    added by a vote connects, a retired one or a rotated-out key no longer completes the handshake); each
    connection's environ carries only the peer's certificate (DER, :data:`access.PEER_CERT`)."""

    def __init__(self, context: Callable[[], ssl.SSLContext], cert: str, key: str) -> None:
        Adapter.__init__(self, cert, key)
        self._context_now = context
        self.context = context()

    def wrap(self, sock: Any) -> Any:
        self.context = self._context_now()  # one accepting thread: no other wrap runs meanwhile
        sock.settimeout(HANDSHAKE_TIMEOUT)  # the handshake runs in the accepting thread: a silent client waits
        wrapped, env = super().wrap(sock)  # type: ignore[no-untyped-call]  # no longer than this
        return wrapped, env

    def get_environ(self, sock: ssl.SSLSocket) -> dict[str, Any]:  # type: ignore[override]
        return {"wsgi.url_scheme": "https", "HTTPS": "on", PEER_CERT: sock.getpeercert(binary_form=True)}


#: seconds a client has to complete the TLS handshake
HANDSHAKE_TIMEOUT = 5.0
#: worker threads of a node's HTTP server (idle keep-alive connections wait in cheroot's selector, not here;
#: a status request waiting for finality holds one, so a backlog of waiting clients must not starve the
#: signature exchange and submissions)
THREADS = 64
#: seconds a stopping server gives requests in flight
SHUTDOWN_TIMEOUT = 3
#: idle keep-alive connections a node's server keeps open (cheroot's default, 10, is fewer than a node's
#: clients: three peers' senders, orderer reads and appends, the API's and the load tools' sessions; past it
#: cheroot answers ``Connection: close`` and every later request pays a new TCP connection and TLS handshake)
KEEP_ALIVE_CONNECTIONS = 1024


def listen(app: Any, *, host: str, port: int, tls: Tls | None = None) -> Any:
    """The node's cheroot server bound to ``host:port`` (over mutual TLS with ``tls``); :class:`PortInUse`
    naming the port if it is taken.  ``serve()`` runs it; ``stop()`` ends it."""
    from cheroot import wsgi

    require_tls(host, tls=tls is not None)
    server = wsgi.Server((host, port), app, numthreads=THREADS, server_name="muck-node", timeout=60,
                         shutdown_timeout=SHUTDOWN_TIMEOUT, accepted_queue_size=500)
    server.keep_alive_conn_limit = KEEP_ALIVE_CONNECTIONS
    if tls is not None:
        server.ssl_adapter = _MemberTLS(tls.server_context, str(tls.files.cert), str(tls.files.key))
    try:
        server.prepare()
    except OSError as exc:
        raise _in_use(host, port, exc) from exc
    return server
