"""Who may call which node route: the TLS peer's member (from its client certificate) and its roles.

The node's server (:mod:`consortium_nodes.lifecycle`) puts the peer's leaf certificate (DER) in the WSGI
environ as ``muck.peer_cert``; :func:`install` maps it to the member whose consortium key issued it
(:meth:`ledger.transport.Tls.member_of`) before every request and refuses:

- 401 ``tls_client_required``: no client certificate (the TLS server asks for one, so only a plain
  connection to a TLS-less node, which listens on loopback only, could lack it: then no check applies);
- 403 ``tls_unknown_peer``: a certificate no member's key issued;
- 403 ``tls_member_forbidden``: a member whose roles may not call the route — the peer routes (signature
  exchange, co-signing, checkpoint sharing, the solo orderer) are for node members only; the client routes
  for node members, the gateway, regulators and admins (the API, audits and the local tools);
- 403 ``member_retired``, ``key_rotated``: a certificate issued under a key a governance vote took out (the
  handshake refuses it once the vote applied; a connection kept alive from before gets this).  The TLS
  identity follows the membership in force (:meth:`Tls.follow`); ``in_force`` checks the member too.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, g, jsonify, request

from ledger.core.consortium import Consortium
from ledger.errors import KeyRotated, LedgerError, MemberRetired
from ledger.reasons import message, status_of
from ledger.store.certs import UnknownPeer
from ledger.transport import Tls

#: environ key of the peer's certificate (DER bytes), set by the node's TLS server
PEER_CERT = "muck.peer_cert"
#: roles that may call a node's client routes (status, submit, queries, blocks, proofs, provenance)
CLIENT_ROLES = frozenset({"node", "gateway", "regulator", "admin"})
#: roles that may call a node's peer routes
PEER_ROLES = frozenset({"node"})
#: endpoints (view names in :mod:`consortium_nodes.http`) only node members may call
PEER_ENDPOINTS = frozenset({"signatures", "signature_stream", "block_sigs", "cosign", "share_checkpoint",
                            "order_append", "order_read", "order_head", "batch_copies", "pool_forward"})


def _refuse(reason: str, detail: str) -> tuple[Response, int]:
    lang = "en" if request.headers.get("Accept-Language", "").lower().startswith("en") else "zh"
    body = {"error": {"code": reason, "message": message(reason, lang), "detail": detail}, "reason": reason}
    return jsonify(body), status_of(reason, 403)


def install(app: Flask, tls: Tls | None, in_force: Callable[[], Consortium] | None = None) -> None:
    """Check every request's TLS peer against the consortium (nothing is checked without ``tls``); with
    ``in_force``, also that the member was not retired by a vote."""
    if tls is None:
        return

    @app.before_request
    def _authorise() -> tuple[Response, int] | None:
        der = request.environ.get(PEER_CERT)
        if not der:
            return _refuse("tls_client_required", "no client certificate")
        try:
            member = tls.member_of(der)
        except (UnknownPeer, KeyRotated, MemberRetired) as exc:
            return _refuse(exc.reason, exc.message)
        except LedgerError as exc:
            return _refuse("tls_unknown_peer", exc.message)
        if in_force is not None and member.name not in {m.name for m in in_force().members}:
            return _refuse("member_retired", f"member {member.name} was retired by a governance vote")
        allowed = PEER_ROLES if request.endpoint in PEER_ENDPOINTS else CLIENT_ROLES
        if not member.roles & allowed:
            return _refuse("tls_member_forbidden", f"member {member.name} may not call {request.path}")
        g.peer_member = member.name
        return None
