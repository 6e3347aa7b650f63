"""TLS certificates bound to consortium membership, made with ``cryptography``.

Every member holds its consortium key (Ed25519, listed in the genesis document).  Under it:

- a **member CA** certificate, self-signed by the member key: its public key IS the member's public key in
  the consortium document, so anyone holding the genesis can check it (:func:`check_member_cas`);
- a **leaf** TLS certificate (ECDSA P-256 key, its own file, 0600) signed by the member key, for the
  member's processes (a node, the API's gateway, a tool; the etcd members of a node's host);
- the **CA bundle**: every member's CA certificate, the trust anchors of a node's server (who may talk to
  me at all) and, member by member, of a client (is this server the member I expect?).

After a handshake :class:`MemberCerts` maps the peer's leaf to the member whose key signed it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledger.core.consortium import Consortium, Member
from ledger.core.crypto import ED25519, PrivateKey, PublicKey
from ledger.errors import ConsortiumError, LedgerError

#: validity of the certificates the local setup makes (days)
CA_DAYS, LEAF_DAYS = 3650, 825
#: the subject alternative names every local leaf carries (hostname checks are off; etcd peers check IPs)
LOOPBACK_SANS = ("localhost", "127.0.0.1", "::1")


class UnknownPeer(LedgerError):
    """A TLS peer whose certificate no member of the consortium issued."""

    reason = "tls_unknown_peer"


def _ed_key(key: PrivateKey) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(key.seed)


def _member_name(member: Member, *, ca: bool) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, member.org or member.name),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"key:{member.key_id}"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{member.name} {'member CA' if ca else 'tls'}"),
    ])


def _sans(names: Iterable[str]) -> x509.SubjectAlternativeName:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(out)


def member_ca(member: Member, key: PrivateKey, *, now: dt.datetime) -> x509.Certificate:
    """The member's CA certificate, self-signed by its consortium key (the key must be the member's)."""
    if key.public_key != member.public_key:
        raise ConsortiumError(f"the key given for member {member.name} is not its consortium key")
    ed = _ed_key(key)
    name = _member_name(member, ca=True)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ed.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ed.public_key()), critical=False)
        .sign(ed, None)
    )


def leaf(member: Member, key: PrivateKey, *, now: dt.datetime, sans: Sequence[str] = LOOPBACK_SANS,
         label: str = "tls") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A TLS certificate (server and client auth) and its fresh P-256 key, signed by the member's key."""
    ed = _ed_key(key)
    tls_key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([*_member_name(member, ca=False).rdns[:2],
                         x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                            f"{member.name} {label}")])])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(_member_name(member, ca=True))
        .public_key(tls_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ed.public_key()), critical=False)
        .add_extension(_sans(sans), critical=False)
        .sign(ed, None)
    )
    return cert, tls_key


def member_anchor(member: Member, *, now: dt.datetime) -> x509.Certificate:
    """The trust anchor of a member whose CA certificate no bundle holds (added, or its key rotated, by a vote):
    the member CA's name and the member's key in force, as the chain put it there.  A TLS stack trusts an
    anchor for its name and key, never for its own signature (here a throwaway key's), so a leaf verifies under
    it exactly when the member's key signed it — what the member's own CA certificate would prove."""
    pub = ed25519.Ed25519PublicKey.from_public_bytes(member.public_key.raw)
    name = _member_name(member, ca=True)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .sign(ed25519.Ed25519PrivateKey.generate(), None)
    )


def issuer_of(der: bytes, anchors: Iterable[tuple[Member, x509.Certificate]]) -> Member | None:
    """The member among ``anchors`` (member, its CA or anchor) whose key signed this leaf (DER), else None;
    :class:`UnknownPeer` for bytes that are no certificate."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise UnknownPeer("the peer's certificate cannot be read") from exc
    for member, ca in anchors:
        if cert.issuer != ca.subject:
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return member
    return None


def _public_key(cert: x509.Certificate) -> PublicKey | None:
    pk = cert.public_key()
    if not isinstance(pk, ed25519.Ed25519PublicKey):
        return None
    return PublicKey(alg=ED25519, raw=pk.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


class MemberCerts:
    """The consortium's member CA certificates, each checked against the genesis; maps a leaf to its member."""

    def __init__(self, consortium: Consortium, cas: Iterable[x509.Certificate]) -> None:
        self.consortium = consortium
        self._cas: dict[str, x509.Certificate] = {}
        for ca in cas:
            pub = _public_key(ca)
            if pub is None:
                continue  # not a member CA: never a trust anchor
            member = consortium.member(pub.key_id)  # UnknownSigner: a CA no member's key made
            try:
                ca.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature) as exc:
                raise ConsortiumError(f"the CA certificate of member {member.name} is not self-signed") from exc
            self._cas[member.name] = ca
        self._seen: dict[bytes, Member] = {}

    @classmethod
    def from_pem(cls, consortium: Consortium, pem: bytes) -> MemberCerts:
        return cls(consortium, x509.load_pem_x509_certificates(pem))

    def names(self) -> list[str]:
        return list(self._cas)

    def ca(self, name: str) -> x509.Certificate:
        try:
            return self._cas[name]
        except KeyError:
            raise ConsortiumError(f"no CA certificate of member {name!r} in the bundle") from None

    def pem(self, names: Iterable[str]) -> bytes:
        """The CA certificates of ``names`` as one PEM (a client's trust anchors for those servers)."""
        return b"".join(self.ca(n).public_bytes(serialization.Encoding.PEM) for n in names)

    def following(self, membership: Consortium, *, now: dt.datetime | None = None) -> MemberCerts:
        """The anchors of ``membership`` (a later membership of the same chain): each member's CA from the
        bundle when it holds one for the member's key in force, else :func:`member_anchor` of that key; a
        member the membership no longer has has none."""
        when = now or dt.datetime.now(dt.UTC)
        by_key = {_key_id(ca): ca for ca in self._cas.values()}
        out = object.__new__(MemberCerts)
        out.consortium = membership
        out._cas = {m.name: by_key.get(m.key_id) or member_anchor(m, now=when) for m in membership.members}
        out._seen = {}
        return out

    def anchors(self) -> list[tuple[Member, x509.Certificate]]:
        """(member, its CA or anchor) for every member these certificates trust."""
        return [(self.consortium.by_name(n), ca) for n, ca in self._cas.items()]

    def member_of(self, der: bytes) -> Member:
        """The member whose consortium key signed this leaf certificate (DER); :class:`UnknownPeer` if none."""
        m = self._seen.get(der)
        if m is not None:
            return m
        member = issuer_of(der, self.anchors())
        if member is None:
            raise UnknownPeer("the peer's certificate was not issued under any member's consortium key")
        if len(self._seen) < 4096:
            self._seen[der] = member
        return member


def _key_id(ca: x509.Certificate) -> str:
    pub = _public_key(ca)
    return "" if pub is None else pub.key_id


# -- files --------------------------------------------------------------------
@dataclass(frozen=True)
class TlsFiles:
    """One process's TLS files: its leaf certificate, the leaf's key (0600) and the consortium's CA bundle."""

    cert: Path
    key: Path
    ca: Path

    def to_dict(self) -> dict[str, str]:
        return {"cert": str(self.cert), "key": str(self.key), "ca": str(self.ca)}

    @classmethod
    def from_dict(cls, d: Mapping[str, str], base: Path | None = None) -> TlsFiles:
        b = base or Path(".")
        return cls(cert=(b / d["cert"]).resolve(), key=(b / d["key"]).resolve(), ca=(b / d["ca"]).resolve())


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def write_leaf(path_stem: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    """``STEM.crt`` and ``STEM.key`` (0600)."""
    crt, k = path_stem.with_suffix(".crt"), path_stem.with_suffix(".key")
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(k, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    return crt, k


def bundle_path(tls_dir: str | Path) -> Path:
    return Path(tls_dir) / "ca-bundle.pem"


def member_files(tls_dir: str | Path, name: str) -> TlsFiles:
    d = Path(tls_dir)
    return TlsFiles(cert=d / f"{name}.crt", key=d / f"{name}.key", ca=bundle_path(d))


def issue_consortium(consortium: Consortium, keys: Mapping[str, PrivateKey], tls_dir: str | Path, *,
                     now: dt.datetime | None = None) -> dict[str, TlsFiles]:
    """A local setup's certificates: every member's CA (in ``ca-bundle.pem``) and one leaf per member
    (``NAME.crt``/``NAME.key``), in ``tls_dir`` (created 0700).  Each member's would be made by its own
    operator with its own key; here one process holds every key."""
    when = now or dt.datetime.now(dt.UTC)
    d = Path(tls_dir)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    bundle = b""
    out: dict[str, TlsFiles] = {}
    for m in consortium.members:
        key = keys[m.name]
        bundle += member_ca(m, key, now=when).public_bytes(serialization.Encoding.PEM)
        cert, tls_key = leaf(m, key, now=when)
        write_leaf(d / m.name, cert, tls_key)
        out[m.name] = member_files(d, m.name)
    bundle_path(d).write_bytes(bundle)
    return out


def issue_leaf(consortium: Consortium, name: str, key: PrivateKey, stem: Path, *, sans: Sequence[str],
               label: str) -> TlsFiles:
    """Another leaf under member ``name``'s key (e.g. an etcd member's on the node's host), next to ``stem``."""
    cert, tls_key = leaf(consortium.by_name(name), key, now=dt.datetime.now(dt.UTC), sans=sans, label=label)
    crt, k = write_leaf(stem, cert, tls_key)
    return TlsFiles(cert=crt, key=k, ca=stem.parent / "ca-bundle.pem")


def load_member_certs(consortium: Consortium, ca_file: str | Path) -> MemberCerts:
    try:
        return MemberCerts.from_pem(consortium, Path(ca_file).read_bytes())
    except OSError as exc:
        raise ConsortiumError(f"cannot read the CA bundle {ca_file}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConsortiumError(f"the CA bundle {ca_file} is not PEM certificates: {exc}") from exc
