"""TLS certificates bound to membership (:mod:`ledger.store.certs`) and the contexts built from them
(:mod:`ledger.transport`), on in-memory consortia and a temporary directory; one loopback handshake."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ledger import transport
from ledger.core.consortium import Consortium, Member, new_consortium
from ledger.core.crypto import PrivateKey
from ledger.errors import ConsortiumError, UnknownSigner
from ledger.store import certs

NOW = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def city():
    return new_consortium(nodes=4, name="unit-city")


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _bundle(consortium, keys, names=None) -> certs.MemberCerts:
    cas = [certs.member_ca(m, keys[m.name], now=NOW) for m in consortium.members
           if names is None or m.name in names]
    return certs.MemberCerts(consortium, cas)


def test_a_member_ca_carries_the_members_consortium_key(city):
    """The member CA's public key is the member's key in the genesis, and it is self-signed by it."""
    consortium, keys = city
    m = consortium.by_name("zhujian")
    ca = certs.member_ca(m, keys["zhujian"], now=NOW)
    raw = ca.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert raw == m.public_key.raw
    ca.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_member_ca_needs_the_members_own_key(city):
    """Another key cannot make a member's CA certificate."""
    consortium, keys = city
    with pytest.raises(ConsortiumError):
        certs.member_ca(consortium.by_name("zhujian"), keys["jiaotong"], now=NOW)


def test_a_leaf_maps_to_the_member_whose_key_issued_it(city):
    """A leaf issued under a member's key maps to that member; its key is P-256, not the member key."""
    consortium, keys = city
    bundle = _bundle(consortium, keys)
    for name in ("chengguan", "gateway"):
        cert, _ = certs.leaf(consortium.by_name(name), keys[name], now=NOW)
        assert bundle.member_of(_der(cert)).name == name


def test_a_leaf_claiming_a_member_but_signed_by_another_key_maps_to_no_one(city):
    """Same subject and issuer names as the gateway's, another key: :class:`UnknownPeer`."""
    consortium, keys = city
    gw = consortium.by_name("gateway")
    stranger = PrivateKey.generate()
    fake = Member(name=gw.name, org=gw.org, roles=gw.roles, public_key=stranger.public_key)
    cert, _ = certs.leaf(fake, stranger, now=NOW)
    with pytest.raises(certs.UnknownPeer):
        _bundle(consortium, keys).member_of(_der(cert))


def test_a_leaf_of_another_consortium_maps_to_no_one(city):
    consortium, keys = city
    other, other_keys = new_consortium(nodes=4, name="other-city")
    cert, _ = certs.leaf(other.by_name("gateway"), other_keys["gateway"], now=NOW)
    with pytest.raises(certs.UnknownPeer):
        _bundle(consortium, keys).member_of(_der(cert))


def test_garbage_is_no_certificate(city):
    consortium, keys = city
    with pytest.raises(certs.UnknownPeer):
        _bundle(consortium, keys).member_of(b"not a certificate")


def test_a_bundle_with_a_ca_no_member_holds_is_refused(city):
    """A CA certificate whose key is not in the genesis cannot become a trust anchor."""
    consortium, _ = city
    other, other_keys = new_consortium(nodes=4, name="other-city")
    with pytest.raises(UnknownSigner):
        certs.MemberCerts(consortium, [certs.member_ca(other.by_name("gateway"), other_keys["gateway"], now=NOW)])


def test_issue_consortium_writes_owner_only_keys_and_one_bundle(city, tmp_path):
    """``issue_consortium``: NAME.crt/NAME.key per member (keys 0600) and a bundle every member's CA is in."""
    consortium, keys = city
    files = certs.issue_consortium(consortium, keys, tmp_path / "tls")
    assert set(files) == {m.name for m in consortium.members}
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    for f in files.values():
        assert stat.S_IMODE(f.key.stat().st_mode) == 0o600
    loaded = certs.load_member_certs(consortium, files["gateway"].ca)
    assert sorted(loaded.names()) == sorted(m.name for m in consortium.members)
    leaf = x509.load_pem_x509_certificate(files["shengtai"].cert.read_bytes())
    assert loaded.member_of(_der(leaf)).name == "shengtai"


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> bytes | None:
    """One loopback handshake; the client certificate the server saw (None if the handshake failed)."""
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]
    seen: list[bytes | None] = [None]

    def serve() -> None:
        conn, _ = lsock.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as s:
                seen[0] = s.getpeercert(binary_form=True)
                s.sendall(b"ok")
        except (ssl.SSLError, OSError):
            pass

    t = threading.Thread(target=serve)
    t.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                client_ctx.wrap_socket(raw) as c:
            c.recv(2)
    except (ssl.SSLError, OSError):
        pass
    t.join(5)
    lsock.close()
    return seen[0]


def test_contexts_bind_both_ends_to_the_expected_members(city, tmp_path):
    """The server learns which member the client is; a client that expects another member than the server
    refuses the handshake."""
    consortium, keys = city
    files = certs.issue_consortium(consortium, keys, tmp_path / "tls")
    node = transport.Tls.load(files["zhujian"], consortium)
    gateway = transport.Tls.load(files["gateway"], consortium)
    der = _handshake(node.server_context(), gateway.client_context("zhujian"))
    assert der is not None and node.member_of(der).name == "gateway"
    assert _handshake(node.server_context(), gateway.client_context("chengguan")) is None
    assert _handshake(node.server_context(clients=["chengguan"]), gateway.client_context("zhujian")) is None


def _voted_member(name: str, org: str, key: PrivateKey, roles: tuple[str, ...] = ("node",)) -> Member:
    return Member(name=name, org=org, roles=frozenset(roles), public_key=key.public_key)


def test_trust_follows_the_membership_a_vote_puts_in_force(city, tmp_path):
    """A node's server and client contexts follow the membership it is told is in force: a member added by a
    vote is trusted with a leaf issued under its own key (in no CA bundle), a rotated member's new leaf is
    accepted and its old one refused at the handshake (and named ``key_rotated`` if presented anyway), a
    retired member's leaf refused (``member_retired``)."""
    from ledger.errors import KeyRotated, MemberRetired

    consortium, keys = city
    files = certs.issue_consortium(consortium, keys, tmp_path / "tls")
    node = transport.Tls.load(files["zhujian"], consortium)
    membership = [consortium]
    node.follow(lambda: membership[0])
    newcomer_key, rotated_key = PrivateKey.generate(), PrivateKey.generate()
    newcomer = _voted_member("shuiwu", "水务局", newcomer_key)
    old = consortium.by_name("shengtai")
    rotated = _voted_member("shengtai", old.org, rotated_key, tuple(sorted(old.roles)))

    def client(member: Member, key: PrivateKey, stem: str, follows: Consortium) -> transport.Tls:
        certs.write_leaf(tmp_path / "tls" / stem, *certs.leaf(member, key, now=NOW))
        tls = transport.Tls.load(certs.member_files(tmp_path / "tls", stem), consortium)
        tls.follow(lambda: follows)
        return tls

    shengtai_old = transport.Tls.load(files["shengtai"], consortium)
    old_der = _handshake(node.server_context(), shengtai_old.client_context("zhujian"))
    assert old_der is not None and node.member_of(old_der).name == "shengtai"

    added = consortium.amended(members=[*consortium.members, newcomer])
    shuiwu = client(newcomer, newcomer_key, "shuiwu", added)
    assert _handshake(node.server_context(), shuiwu.client_context("zhujian")) is None  # not voted in yet
    membership[0] = added
    der = _handshake(node.server_context(), shuiwu.client_context("zhujian"))
    assert der is not None and node.member_of(der).name == "shuiwu"
    assert _handshake(shuiwu.server_context(), node.client_context("shuiwu")) is not None  # and as a server

    after = added.amended(members=[rotated if m.name == "shengtai" else m for m in added.members])
    membership[0] = after
    shengtai_new = client(rotated, rotated_key, "shengtai-2", after)
    der = _handshake(node.server_context(), shengtai_new.client_context("zhujian"))
    assert der is not None and node.member_of(der).name == "shengtai"
    assert _handshake(node.server_context(), shengtai_old.client_context("zhujian")) is None
    assert _handshake(shengtai_old.server_context(), node.client_context("shengtai")) is None
    with pytest.raises(KeyRotated):
        node.member_of(old_der)

    membership[0] = after.amended(members=[m for m in after.members if m.name != "shuiwu"])
    assert _handshake(node.server_context(), shuiwu.client_context("zhujian")) is None
    shuiwu_der = _der(x509.load_pem_x509_certificate((tmp_path / "tls" / "shuiwu.crt").read_bytes()))
    with pytest.raises(MemberRetired):
        node.member_of(shuiwu_der)
