"""``ledger tls``: each member makes its own TLS certificates with its own key; the bundle is checked
against the consortium document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ledger.cli.main import main
from ledger.store.certs import MemberCerts
from ledger.store.keyfiles import read_consortium


@pytest.fixture
def cdir(tmp_path: Path) -> Path:
    assert main(["consortium", "new", "--dir", str(tmp_path / "c")]) == 0
    return tmp_path / "c"


def _member_key(cdir: Path, name: str) -> str:
    return str(next((cdir / "keys").glob(f"{name}*")))


def test_members_make_their_own_certificates_and_a_checked_bundle(cdir: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Each member's CA (from its own key) goes into a bundle that checks against the genesis; a leaf made by
    ``ledger tls leaf`` maps back to its member, carries the names asked for, and its key file is 0600."""
    consortium_file = str(cdir / "consortium.json")
    consortium = read_consortium(consortium_file)
    cas = []
    for m in consortium.members:
        out = tmp_path / f"{m.name}-ca.pem"
        assert main(["tls", "ca", "--consortium", consortium_file, "--name", m.name,
                     "--key", _member_key(cdir, m.name), "--out", str(out)]) == 0
        cas.append(str(out))
    bundle = tmp_path / "ca-bundle.pem"
    assert main(["tls", "bundle", "--consortium", consortium_file, "--out", str(bundle), *cas]) == 0
    nodes_bundle = tmp_path / "etcd-ca.pem"
    assert main(["tls", "bundle", "--consortium", consortium_file, "--nodes-only", "--out", str(nodes_bundle),
                 *cas]) == 0
    capsys.readouterr()
    assert main(["tls", "leaf", "--consortium", consortium_file, "--name", "zhujian",
                 "--key", _member_key(cdir, "zhujian"), "--out", str(tmp_path / "zhujian"),
                 "--san", "node2.cq.example", "--san", "10.20.0.2"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert Path(answer["key"]).stat().st_mode & 0o777 == 0o600
    leaf = x509.load_pem_x509_certificate(Path(answer["cert"]).read_bytes())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "node2.cq.example" in sans.get_values_for_type(x509.DNSName)
    member_certs = MemberCerts.from_pem(consortium, bundle.read_bytes())
    assert sorted(member_certs.names()) == sorted(m.name for m in consortium.members)
    assert member_certs.member_of(leaf.public_bytes(serialization.Encoding.DER)).name == "zhujian"
    node_names = MemberCerts.from_pem(consortium, nodes_bundle.read_bytes()).names()
    assert sorted(node_names) == sorted(m.name for m in consortium.nodes)


def test_a_ca_of_another_consortium_or_a_wrong_key_is_refused(cdir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A CA certificate made with a key the consortium does not list is refused by ``bundle``, a leaf asked
    with another member's key is refused by ``leaf``, and a bundle missing a member says which: one line each
    and a non-zero exit."""
    assert main(["consortium", "new", "--dir", str(tmp_path / "other")]) == 0
    consortium_file = str(cdir / "consortium.json")
    foreign = tmp_path / "foreign-ca.pem"
    assert main(["tls", "ca", "--consortium", str(tmp_path / "other" / "consortium.json"), "--name", "chengguan",
                 "--key", _member_key(tmp_path / "other", "chengguan"), "--out", str(foreign)]) == 0
    capsys.readouterr()
    assert main(["tls", "bundle", "--consortium", consortium_file, "--out", str(tmp_path / "b.pem"),
                 str(foreign)]) != 0
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["tls", "leaf", "--consortium", consortium_file, "--name", "zhujian",
                 "--key", _member_key(cdir, "chengguan"), "--out", str(tmp_path / "x")]) != 0
    err = capsys.readouterr().err
    assert "zhujian" in err and len(err.strip().splitlines()) == 1
    own = tmp_path / "own-ca.pem"
    assert main(["tls", "ca", "--consortium", consortium_file, "--name", "chengguan",
                 "--key", _member_key(cdir, "chengguan"), "--out", str(own)]) == 0
    capsys.readouterr()
    assert main(["tls", "bundle", "--consortium", consortium_file, "--out", str(tmp_path / "b.pem"), str(own)]) != 0
    assert "zhujian" in capsys.readouterr().err


def test_a_leaf_under_a_voted_key_comes_from_the_members_card(cdir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """``ledger tls leaf --card`` issues the leaf of a member a vote added (in no consortium document) under its
    own key; it maps to that member once its key is in force, and a card of another name is refused."""
    from ledger.core.card import make_card
    from ledger.core.consortium import Member
    from ledger.core.crypto import PrivateKey
    from ledger.core.validity import Validity
    from ledger.store.keyfiles import write_private_key

    consortium_file = str(cdir / "consortium.json")
    consortium = read_consortium(consortium_file)
    key = PrivateKey.generate()
    card = make_card(key, name="shuiwu", org="水务局", roles=("node",),
                     validity=Validity(not_before="2026-01-01T00:00:00+08:00", not_after="2030-01-01T00:00:00+08:00"))
    (tmp_path / "card.json").write_text(json.dumps(card.to_dict(), ensure_ascii=False), encoding="utf-8")
    write_private_key(key, tmp_path / "shuiwu.pem")
    args = ["tls", "leaf", "--consortium", consortium_file, "--key", str(tmp_path / "shuiwu.pem"),
            "--card", str(tmp_path / "card.json"), "--out", str(tmp_path / "shuiwu")]
    assert main([*args, "--name", "shuiwu"]) == 0
    leaf = x509.load_pem_x509_certificate(Path(json.loads(capsys.readouterr().out)["cert"]).read_bytes())
    member = Member.from_dict(card.to_dict())
    certs = MemberCerts(consortium, []).following(consortium.amended(members=[*consortium.members, member]))
    assert certs.member_of(leaf.public_bytes(serialization.Encoding.DER)).name == "shuiwu"
    assert main([*args, "--name", "zhujian"]) != 0
