"""ledger.core.consortium: the genesis file, members, roles, policy and quorum."""

from __future__ import annotations

import json

import pytest

from ledger.core.consortium import FORMAT, Consortium, MemberSpec, create
from ledger.errors import ConsortiumError, Forbidden, UnknownSigner
from ledger.store.keyfiles import read_consortium, read_private_key, write_consortium, write_keys
from ledger.testing import Throwaway, throwaway_consortium


def test_file_round_trip_keeps_genesis_hash(t: Throwaway, tmp_path) -> None:
    """write() then from_file() gives an equal consortium with the same genesis hash."""
    p = tmp_path / "consortium.json"
    write_consortium(t.consortium, p)
    back = read_consortium(p)
    assert back.genesis_hash == t.consortium.genesis_hash
    assert [m.key_id for m in back.members] == [m.key_id for m in t.consortium.members]
    assert json.loads(p.read_text(encoding="utf-8"))["format"] == FORMAT


def test_genesis_hash_changes_with_any_field(t: Throwaway) -> None:
    """Another parameter gives another genesis hash."""
    d = t.consortium.to_dict()
    d["parameters"]["max_block_txs"] = 1
    assert Consortium.from_dict(d).genesis_hash != t.consortium.genesis_hash


@pytest.mark.parametrize(("nodes", "quorum"), [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (7, 5)])
def test_quorum_is_more_than_two_thirds(nodes: int, quorum: int) -> None:
    """quorum = floor(2n/3) + 1."""
    assert throwaway_consortium(nodes=nodes).consortium.quorum == quorum


def test_member_lookup_and_policy(t: Throwaway) -> None:
    """Members are found by key id and name; unknown ones raise UnknownSigner; the default
    policy lets the gateway submit anything and forbids approver-only members."""
    c = t.consortium
    gw = c.member(t.gateway.key_id)
    assert gw.name == "gateway" and c.by_name("gateway") == gw
    with pytest.raises(UnknownSigner):
        c.member("0" * 16)
    with pytest.raises(UnknownSigner):
        c.by_name("nobody")
    assert c.authorize(t.gateway.key_id, "ticket.issue") == gw
    assert c.authorize(t.keys["chengguan"].key_id, "ticket.issue").name == "chengguan"  # node role


def test_policy_exact_then_prefix_then_star() -> None:
    """allowed_roles prefers the exact type, then 'prefix.*', then '*'."""
    c, _ = create(name="x", origin="o", members=[MemberSpec("n", "N", ["node"])],
                  policy={"gate.exit": ["gate"], "gate.*": ["operator"], "*": ["admin"]})
    assert list(c.allowed_roles("gate.exit")) == ["gate"]
    assert list(c.allowed_roles("gate.receipt")) == ["operator"]
    assert list(c.allowed_roles("ticket.issue")) == ["admin"]
    with pytest.raises(Forbidden):
        c.authorize(c.members[0].key_id, "ticket.issue")


def test_invalid_consortia() -> None:
    """No node, unknown roles, duplicate names or keys raise ConsortiumError."""
    with pytest.raises(ConsortiumError, match="node"):
        create(name="x", origin="o", members=[MemberSpec("g", "G", ["gateway"])])
    with pytest.raises(ConsortiumError, match="unknown roles"):
        create(name="x", origin="o", members=[MemberSpec("n", "N", ["node", "king"])])
    with pytest.raises(ConsortiumError, match="twice"):
        create(name="x", origin="o", members=[MemberSpec("n", "N", ["node"]), MemberSpec("n", "M", ["node"])])
    c = throwaway_consortium(nodes=1).consortium
    with pytest.raises(ConsortiumError, match="twice"):
        Consortium(name="x", origin="o", members=(c.members[0], c.members[0]))


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(format="v0"),
    lambda d: d.pop("members"),
    lambda d: d["members"][0].update(key_id="0" * 16),
    lambda d: d["members"][0].update(public_key="garbage"),
    lambda d: d["members"][0].update(algorithm="sm2"),
    lambda d: d.pop("name"),
])
def test_bad_documents(t: Throwaway, mutate) -> None:
    """Wrong format, missing fields, key ids that do not match their keys and bad PEM raise ConsortiumError."""
    d = json.loads(json.dumps(t.consortium.to_dict()))
    mutate(d)
    with pytest.raises(ConsortiumError):
        Consortium.from_dict(d)


def test_bad_files(tmp_path) -> None:
    """Missing, non-JSON and non-object files raise ConsortiumError (exit code 2)."""
    with pytest.raises(ConsortiumError) as info:
        read_consortium(tmp_path / "missing.json")
    assert info.value.exit_code == 2
    (tmp_path / "a.json").write_text("{nope")
    with pytest.raises(ConsortiumError):
        read_consortium(tmp_path / "a.json")
    (tmp_path / "b.json").write_text("[]")
    with pytest.raises(ConsortiumError):
        read_consortium(tmp_path / "b.json")


def test_create_writes_keys(tmp_path) -> None:
    """write_keys after create writes NAME.pem (mode 0600) for every member, matching the listed keys."""

    c, keys = create(name="x", origin="o", members=[MemberSpec("n", "N", ["node"])])
    write_keys(keys, tmp_path)
    assert (tmp_path / "n.pem").stat().st_mode & 0o777 == 0o600
    assert read_private_key(tmp_path / "n.pem").key_id == c.members[0].key_id == keys["n"].key_id
