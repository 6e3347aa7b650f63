"""Mutual TLS between the consortium's processes: the one place that builds ``ssl`` contexts and ``requests``
sessions from a member's TLS files (:class:`ledger.store.certs.TlsFiles`).

- :meth:`Tls.server_context`: a node's server; a client must present a leaf issued under some member's key
  (the CA bundle, every CA checked against the genesis); which member it is, and what it may call, the node
  decides after the handshake (:meth:`Tls.member_of`).
- :meth:`Tls.client_context`: a client that trusts only the CA certificates of the members it expects
  (``expect``: one peer's name, or every node member): a server that is not one of them fails the handshake.
  Hostname checks are off: the identity is the member, not the address.
- :func:`session`: a ``requests`` session with those contexts mounted per base URL.

Both follow the membership :meth:`Tls.follow` names (a node: the one in force at its head): the trust anchors
are the members in force under their keys in force, and the contexts are made again when it changes.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from requests.adapters import HTTPAdapter

from ledger.core.consortium import Consortium, Member
from ledger.errors import KeyRotated, MemberRetired
from ledger.store.certs import MemberCerts, TlsFiles, UnknownPeer, issuer_of, load_member_certs


class _Trust:
    """What a process trusts now: the member certificates of the membership in force, the contexts made from
    them (until it changes) and every member key the process has known (to name a former one's refusal)."""

    def __init__(self, genesis: MemberCerts) -> None:
        self.lock = threading.Lock()
        self.source: Callable[[], Consortium] | None = None
        self.membership = genesis.consortium
        self.certs = genesis
        self.contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
        self.known: dict[str, tuple[Member, x509.Certificate]] = {m.key_id: (m, ca) for m, ca in genesis.anchors()}


def _members_key(c: Consortium) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    return tuple((m.name, m.key_id, tuple(sorted(m.roles))) for m in c.members)


@dataclass(frozen=True)
class Tls:
    """A process's TLS files with the consortium they belong to.  Its trust follows the membership
    :meth:`follow` gives (a node: the membership in force at its head), else the genesis: a member added by a
    vote is trusted under its voted key, a retired member no longer, a rotated member under its new key only.
    Every context is made again when the membership changes."""

    files: TlsFiles
    consortium: Consortium
    certs: MemberCerts = field(init=False, repr=False, compare=False)
    _trust: _Trust = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "certs", load_member_certs(self.consortium, self.files.ca))
        object.__setattr__(self, "_trust", _Trust(self.certs))

    @classmethod
    def load(cls, files: TlsFiles | Mapping[str, str], consortium: Consortium, base: Path | None = None) -> Tls:
        f = files if isinstance(files, TlsFiles) else TlsFiles.from_dict(files, base)
        return cls(files=f, consortium=consortium)

    def follow(self, membership: Callable[[], Consortium]) -> None:
        """Trust, from now on, the members of ``membership()`` (asked again for every context and peer)."""
        self._trust.source = membership

    def in_force(self) -> MemberCerts:
        """The member certificates of the membership followed, made again when it changed."""
        t = self._trust
        now = self.consortium if t.source is None else t.source()
        if now is t.membership:
            return t.certs
        with t.lock:
            if now is not t.membership:
                if _members_key(now) != _members_key(t.membership):
                    t.certs = self.certs.following(now)
                    t.known.update({m.key_id: (m, ca) for m, ca in t.certs.anchors()})
                    t.contexts = {}
                t.membership = now
            return t.certs

    def _ctx(self, purpose: ssl.Purpose) -> ssl.SSLContext:
        proto = ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT
        ctx = ssl.SSLContext(proto)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.files.cert), str(self.files.key))
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def _cached(self, purpose: ssl.Purpose, names: Iterable[str] | None) -> ssl.SSLContext:
        certs = self.in_force()
        if names is None:
            names = certs.names() if purpose is ssl.Purpose.CLIENT_AUTH else \
                [m.name for m in certs.consortium.nodes]
        trusted = tuple(n for n in names if n in certs.names())  # a member not in force: none of its certificates
        key = ("server" if purpose is ssl.Purpose.CLIENT_AUTH else "client", *trusted)
        t = self._trust
        ctx = t.contexts.get(key)
        if ctx is None or t.certs is not certs:
            ctx = self._ctx(purpose)
            if trusted:
                ctx.load_verify_locations(cadata=certs.pem(trusted).decode("ascii"))
            with t.lock:
                if t.certs is certs:
                    t.contexts[key] = ctx
        return ctx

    def server_context(self, *, clients: Iterable[str] | None = None) -> ssl.SSLContext:
        """A server that requires a client certificate issued under one of ``clients`` (every member in force);
        the same context until the membership changes."""
        return self._cached(ssl.Purpose.CLIENT_AUTH, clients)

    def client_context(self, expect: str | Iterable[str] | None = None) -> ssl.SSLContext:
        """A client that accepts only a server whose certificate ``expect`` issued (a member's name, some
        names, or by default any node member) under its key in force; a name not in force trusts nothing."""
        return self._cached(ssl.Purpose.SERVER_AUTH, [expect] if isinstance(expect, str) else expect)

    def member_of(self, der: bytes) -> Member:
        """The member in force behind a peer's leaf certificate (DER): :class:`ledger.store.certs.UnknownPeer`
        if none, :class:`ledger.errors.KeyRotated` or :class:`ledger.errors.MemberRetired` for a certificate
        issued under a key a vote took out."""
        certs = self.in_force()
        try:
            return certs.member_of(der)
        except UnknownPeer:
            former = issuer_of(der, list(self._trust.known.values()))
            if former is None:
                raise
        if former.name in certs.names():
            raise KeyRotated(f"the certificate of member {former.name} was issued under its key "
                             f"{former.key_id}, which a governance vote rotated out")
        raise MemberRetired(f"member {former.name} was retired by a governance vote")


class MemberAdapter(HTTPAdapter):
    """A ``requests`` adapter whose connections use one ``ssl`` context as it is: requests adds no CA bundle
    (certifi's public CAs are never trusted) and urllib3 matches no hostname."""

    def __init__(self, context: ssl.SSLContext | Callable[[], ssl.SSLContext], **kw: Any) -> None:
        self._source = context if callable(context) else None
        self._context = context() if callable(context) else context
        self._swap = threading.Lock()
        super().__init__(**kw)

    def send(self, request: Any, *args: Any, **kw: Any) -> Any:
        """With a context source (:meth:`Tls.client_context` of a membership that changes), a new context
        drops the connections made under the old one first."""
        if self._source is not None:
            ctx = self._source()
            if ctx is not self._context:
                with self._swap:
                    if ctx is not self._context:
                        self._context = ctx
                        self.poolmanager.clear()
                        self.init_poolmanager(self._pool_connections, self._pool_maxsize, self._pool_block)
        return super().send(request, *args, **kw)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kw: Any) -> None:
        kw.update(ssl_context=self._context, assert_hostname=False)
        super().init_poolmanager(connections, maxsize, block, **kw)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        return None

    def build_connection_pool_key_attributes(self, request: Any, verify: Any,
                                             cert: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, _ = super().build_connection_pool_key_attributes(request, verify, cert)
        return host_params, {}


def session(tls: Tls | None, *, members: Mapping[str, str] | None = None, expect: str | Iterable[str] | None = None,
            pool: int = 10) -> requests.Session:
    """A ``requests`` session for talking to nodes: without ``tls`` a plain one (loopback HTTP); with it,
    ``https://`` URLs use this process's client certificate and trust only the expected member — the one
    ``members`` (base URL → member name) names for that URL, else ``expect`` (default: any node member).
    ``pool``: connections kept alive per host (more threads than that sharing the session open and drop
    extra connections, each a new handshake)."""
    s = requests.Session()
    s.trust_env = False  # known URLs: no proxy variables, .netrc or CA-bundle lookups per request
    if tls is None:
        s.mount("http://", HTTPAdapter(pool_maxsize=pool))
        return s
    names = expect if expect is None or isinstance(expect, str) else tuple(expect)  # asked for again and again
    s.mount("https://", MemberAdapter(lambda: tls.client_context(names), pool_maxsize=pool))
    for url, name in (members or {}).items():
        s.mount(url.rstrip("/") + "/", MemberAdapter(_expecting(tls, name), pool_maxsize=pool))
    return s


def _expecting(tls: Tls, name: str) -> Callable[[], ssl.SSLContext]:
    return lambda: tls.client_context(name)


def cert_rejected(exc: BaseException) -> bool:
    """True when a request failed because the server's certificate was not issued by the member expected
    (an ``ssl.SSLCertVerificationError`` anywhere in the chain ``requests`` and urllib3 wrap it in)."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ssl.SSLCertVerificationError):
            return True
        if isinstance(e, BaseException):
            todo += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
    return False
