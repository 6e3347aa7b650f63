"""Mutual TLS between the consortium's processes: the one place that builds ``ssl`` contexts and ``requests``
sessions from a member's TLS files (:class:`ledger.store.certs.TlsFiles`).

- :meth:`Tls.server_context`: a node's server; a client must present a leaf issued under some member's key
  (the CA bundle, every CA checked against the genesis); which member it is, and what it may call, the node
  decides after the handshake (:meth:`Tls.member_of`).
- :meth:`Tls.client_context`: a client that trusts only the CA certificates of the members it expects
  (``expect``: one peer's name, or every node member): a server that is not one of them fails the handshake.
  Hostname checks are off: the identity is the member, not the address.
- :func:`session`: a ``requests`` session with those contexts mounted per base URL.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from ledger.core.consortium import Consortium, Member
from ledger.store.certs import MemberCerts, TlsFiles, load_member_certs


@dataclass(frozen=True)
class Tls:
    """A process's TLS files with the consortium they belong to."""

    files: TlsFiles
    consortium: Consortium
    certs: MemberCerts = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "certs", load_member_certs(self.consortium, self.files.ca))

    @classmethod
    def load(cls, files: TlsFiles | Mapping[str, str], consortium: Consortium, base: Path | None = None) -> Tls:
        f = files if isinstance(files, TlsFiles) else TlsFiles.from_dict(files, base)
        return cls(files=f, consortium=consortium)

    def _ctx(self, purpose: ssl.Purpose) -> ssl.SSLContext:
        proto = ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT
        ctx = ssl.SSLContext(proto)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.files.cert), str(self.files.key))
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def server_context(self, *, clients: Iterable[str] | None = None) -> ssl.SSLContext:
        """A server that requires a client certificate issued under one of ``clients`` (every member)."""
        ctx = self._ctx(ssl.Purpose.CLIENT_AUTH)
        ctx.load_verify_locations(cadata=self.certs.pem(clients or self.certs.names()).decode("ascii"))
        return ctx

    def client_context(self, expect: str | Iterable[str] | None = None) -> ssl.SSLContext:
        """A client that accepts only a server whose certificate ``expect`` issued (a member's name, some
        names, or by default any node member)."""
        names = [expect] if isinstance(expect, str) else list(expect or (m.name for m in self.consortium.nodes))
        ctx = self._ctx(ssl.Purpose.SERVER_AUTH)
        ctx.load_verify_locations(cadata=self.certs.pem(names).decode("ascii"))
        return ctx

    def member_of(self, der: bytes) -> Member:
        """The member behind a peer's leaf certificate (DER); :class:`ledger.store.certs.UnknownPeer` if none."""
        return self.certs.member_of(der)


class MemberAdapter(HTTPAdapter):
    """A ``requests`` adapter whose connections use one ``ssl`` context as it is: requests adds no CA bundle
    (certifi's public CAs are never trusted) and urllib3 matches no hostname."""

    def __init__(self, context: ssl.SSLContext, **kw: Any) -> None:
        self._context = context
        super().__init__(**kw)

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
    s.mount("https://", MemberAdapter(tls.client_context(expect), pool_maxsize=pool))
    for url, name in (members or {}).items():
        s.mount(url.rstrip("/") + "/", MemberAdapter(tls.client_context(name), pool_maxsize=pool))
    return s


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
