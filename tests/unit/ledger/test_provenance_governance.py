"""Provenance exports of a chain whose membership changed by vote (docs/PROVENANCE.md "Membership changes"):
ledger.verify.provenance_governance lists the changes with their signed proposal and votes, and
scripts/verify-export replays them from the genesis (the core's rules), so records and a checkpoint under a key
voted in verify, while a removed or altered governance record fails with its own line.  The chain is built by the
core itself (build_block, Governed) into a SQLite store per test."""

from __future__ import annotations

import base64
import copy
import importlib.machinery
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ledger.core import checkpoint as cp
from ledger.core import membership_line
from ledger.core.block import BlockHeader, sign_header
from ledger.core.builder import NullStateMachine, build_block
from ledger.core.card import make_card
from ledger.core.consortium import Member
from ledger.core.crypto import PrivateKey
from ledger.core.governance import PROPOSE, VOTE
from ledger.core.governed import Governed
from ledger.core.transaction import Transaction
from ledger.core.tree import CompactRange, MerkleLog, hash_leaf
from ledger.core.validity import Validity
from ledger.store.demo_chain import make_tx
from ledger.store.ledger_store import LedgerStore
from ledger.testing import Throwaway, throwaway_consortium
from ledger.verify.provenance import build_export, verify_export
from ledger.verify.provenance_governance import governance_changes

ROOT = Path(__file__).resolve().parents[3]
YEAR = Validity(not_before="2026-01-01T00:00:00+08:00", not_after="2027-06-01T00:00:00+08:00")
T = "2026-12-01T09:00:0{}+08:00"


def _script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("verify_export_script", str(ROOT / "scripts" / "verify-export"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


VE = _script()


def _gov(key: PrivateKey, kind: str, payload: dict[str, object], i: int) -> Transaction:
    return Transaction.create(key=key, type=kind, payload=payload, actor="department:governance",
                              timestamp=T.format(i))


class Chain:
    """Blocks 0: 城管 proposes rotating 生态环境's node key; 1: 住建 and 生态环境 (its current key) approve (in force
    from block 2); 2: a record under the new key and one under the old key (refused ``key_rotated``)."""

    def __init__(self, tmp_path: Path) -> None:
        self.t: Throwaway = throwaway_consortium(nodes=4)
        t = self.t
        self.old, self.new = t.keys["shengtai"], PrivateKey.generate()
        card = make_card(self.new, name="shengtai", org="生态环境局", roles=("node", "approver"),
                         validity=YEAR).to_dict()
        machine = self.machine = Governed(NullStateMachine(), t.consortium)
        self.store = LedgerStore.open(f"sqlite:///{tmp_path / 'ledger.db'}", consortium=t.consortium)
        prev: BlockHeader | None = None
        log = CompactRange()
        self.late = [make_tx(self.new, 3), make_tx(self.old, 4)]
        blocks: Sequence[list[Transaction]] = [
            [_gov(t.keys["chengguan"], PROPOSE, {"proposal_id": "r", "action": "rotate_key", "member": "shengtai",
                                                 "card": card}, 0)],
            [_gov(t.keys[n], VOTE, {"proposal_id": "r", "approve": True}, 1) for n in ("zhujian", "shengtai")],
            self.late,
        ]
        for h, txs in enumerate(blocks):
            built = build_block(raw_txs=[tx.encode() for tx in txs], proposer="chengguan", timestamp=T.format(5),
                                previous=prev, log=log, consortium=t.consortium, machine=machine,
                                seen=lambda ids: set())
            signers = t.node_keys() if h < 2 else [*t.node_keys()[:3], self.new]
            store_block = built.block.with_signatures([sign_header(built.block.header, k) for k in signers])
            self.store.append(store_block, machine.at(h))
            prev, log = built.block.header, built.log
        self.size = self.store.log().size

    def note(self, *keys: tuple[str, PrivateKey], members: bool = False) -> str:
        """A checkpoint of the whole log; ``members``: with the membership line a node computes (its eras, each
        from the log size at the end of its deciding block)."""
        eras = [(0 if e.since == 0 else self._log_size(e.since - 1), e.version, e.consortium)
                for e in self.machine.history.until(2).eras]
        lines = (membership_line.extension_line(2, eras),) if members else ()
        body = cp.Checkpoint(self.t.consortium.origin, self.size, self.store.log().root(self.size), lines)
        return cp.sign(body, list(keys))

    def _log_size(self, height: int) -> int:
        header = self.store.header(height)
        assert header is not None
        return header.log_size

    def export(self, note: str | None = None, tx_ids: Sequence[str] | None = None) -> dict[str, Any]:
        k = self.t.keys
        note = note or self.note(("chengguan", k["chengguan"]), ("zhujian", k["zhujian"]), ("shengtai", self.new))
        return build_export(store=self.store, consortium=self.t.consortium, subject={"kind": "demo", "id": "x"},
                            tx_ids=list(tx_ids or [self.late[0].tx_id]), checkpoint_note=note)


@pytest.fixture
def chain(tmp_path: Path) -> Any:
    c = Chain(tmp_path)
    yield c
    c.store.close()


def _run(export: dict[str, Any], chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
         ) -> tuple[int, list[str]]:
    (tmp_path / "export.json").write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "genesis.json").write_text(json.dumps(chain.t.consortium.to_dict(), ensure_ascii=False),
                                           encoding="utf-8")
    code = VE.main([str(tmp_path / "export.json"), "--consortium", str(tmp_path / "genesis.json"), "--allow-v1"])
    return int(code), capsys.readouterr().out.splitlines()


def test_the_export_lists_each_applied_change_with_its_proposal_and_votes(chain: Chain) -> None:
    """One change: the rotation, its proposal and the two approving votes in log order, in force from the first
    transaction of block 2 (the log size at the end of block 1), each with an inclusion proof."""
    changes = governance_changes(chain.store, chain.t.consortium, chain.size)
    assert [(c["proposal_id"], c["action"]) for c in changes] == [("r", "rotate_key")]
    records = changes[0]["records"]
    assert [r["type"] for r in records] == [PROPOSE, VOTE, VOTE]
    assert [r["index"] for r in records] == [0, 1, 2]
    header = chain.store.header(1)
    assert header is not None and changes[0]["in_force_from"] == header.log_size == 3
    log = chain.store.log()
    assert all(bytes.fromhex(r["proof"]["leaf"]) == hash_leaf(base64.b64decode(r["body"])) == log.leaf(r["index"])
               for r in records)
    assert governance_changes(chain.store, chain.t.consortium, 2) == []  # the deciding block is after size 2


def test_a_record_and_a_checkpoint_under_the_rotated_key_verify(chain: Chain, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The record submitted under 生态环境's new key, in a log co-signed with that key as one of the quorum of
    three, verifies: verify-export replays the vote and puts the new key in force from block 2."""
    export = chain.export()
    assert "governance" in export
    code, out = _run(export, chain, tmp_path, capsys)
    assert code == 0, out
    assert out[0].startswith("OK: (completeness not provable in format v1) 1 records") and "shengtai" in out[0]


def test_a_removed_vote_fails_with_the_quorum_short(chain: Chain, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Without 住建's vote the rotation had 2 of 4 node approvals, 3 needed: that line first, and the checkpoint
    under the new key no longer has a quorum either."""
    export = chain.export()
    del export["governance"][0]["records"][1]
    code, out = _run(export, chain, tmp_path, capsys)
    assert code == 1
    assert out[0] == "FAILED: governance 0 (r): 2 of 4 node members approved, 3 needed (a vote removed?)", out
    assert out[-1].startswith("FAILED: checkpoint: checkpoint has 2 valid node signatures; 3 needed (shengtai")


def test_a_removed_consent_of_the_rotated_member_fails(chain: Chain, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A rotation needs the member's own current key: without 生态环境's vote, its own line first (then the
    quorum short by that vote too, and the record under a key no applied change brought; the checkpoint is
    co-signed by the three unchanged nodes here)."""
    k = chain.t.keys
    note = chain.note(*((n, k[n]) for n in ("chengguan", "zhujian", "jiaotong")))
    export = chain.export(note)
    del export["governance"][0]["records"][2]
    code, out = _run(export, chain, tmp_path, capsys)
    assert code == 1
    assert out[0] == ("FAILED: governance 0 (r): the rotation lacks the approval of shengtai's current key "
                      "(a vote removed?)"), out
    assert out[1] == "FAILED: governance 0 (r): 2 of 4 node members approved, 3 needed (a vote removed?)", out
    assert out[2] == f"FAILED: record 0 ({chain.late[0].tx_id[:16]}): submitter is not a consortium member", out


def test_a_removed_proposal_or_change_fails(chain: Chain, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Without the proposal the change does not begin with it; without the whole change the record under the new
    key is by no member the export knows (the checkpoint signed by unchanged nodes)."""
    k = chain.t.keys
    note = chain.note(*((n, k[n]) for n in ("chengguan", "zhujian", "jiaotong")))
    export = chain.export(note)
    no_proposal = copy.deepcopy(export)
    del no_proposal["governance"][0]["records"][0]
    code, out = _run(no_proposal, chain, tmp_path, capsys)
    assert code == 1 and out[0] == ("FAILED: governance 0 (r) record 0: the change does not begin with its signed "
                                    "proposal (proposal removed?)"), out
    del export["governance"]
    code, out = _run(export, chain, tmp_path, capsys)
    assert code == 1 and out == [f"FAILED: record 0 ({chain.late[0].tx_id[:16]}): submitter is not a consortium "
                                 "member"], out


def test_an_altered_governance_record_fails(chain: Chain, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A vote's readable payload changed fails as differing from its signed body; its body changed fails the tx
    id, the signature and the inclusion proof."""
    export = chain.export()
    altered = copy.deepcopy(export)
    altered["governance"][0]["records"][1]["payload"]["approve"] = False
    code, out = _run(altered, chain, tmp_path, capsys)
    assert code == 1 and out[0] == "FAILED: governance 0 (r) record 1: field payload differs from the signed body"
    body = base64.b64decode(export["governance"][0]["records"][1]["body"]).replace(b'"r"', b'"q"', 1)
    export["governance"][0]["records"][1]["body"] = base64.b64encode(body).decode()
    code, out = _run(export, chain, tmp_path, capsys)
    assert code == 1 and out[0] == "FAILED: governance 0 (r) record 1: tx id does not match its content", out


def test_a_record_under_the_old_key_after_the_rotation_fails(chain: Chain, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The old key's transaction in block 2 (the nodes refused it as key_rotated) is named as not in force."""
    export = chain.export(tx_ids=[chain.late[0].tx_id, chain.late[1].tx_id])
    code, out = _run(export, chain, tmp_path, capsys)
    assert code == 1
    assert out == [f"FAILED: record 1 ({chain.late[1].tx_id[:16]}): submitter key {chain.old.key_id} (member "
                   "shengtai) is not a member key in force at log index 4 (put in force later, or rotated out or "
                   "retired by governance)"]


def _entries(txs: Sequence[Transaction]) -> tuple[list[dict[str, Any]], int, bytes]:
    """In-memory log of ``txs``: their export entries, the log size and root."""
    log = MerkleLog()
    log.extend([hash_leaf(tx.encode()) for tx in txs])
    entries = [{"tx_id": tx.tx_id, "index": i, "type": tx.type, "timestamp": tx.timestamp, "actor": tx.actor,
                "payload": dict(tx.payload), "body": base64.b64encode(tx.encode()).decode(),
                "proof": {"leaf": log.leaf(i).hex(), "index": i, "hashes": [h.hex() for h in log.inclusion(i)]}}
               for i, tx in enumerate(txs)]
    return entries, log.size, log.root()


def _genesis(t: Throwaway) -> Any:
    doc = t.consortium.to_dict()
    return VE.membership([VE.member_entry(m) for m in doc["members"]], doc["parameters"], doc["policy"])


def test_replay_refuses_a_gateway_proposal_and_follows_the_quorum_parameter() -> None:
    """In memory: the gateway (no node role) may not propose adding a member; after a vote sets
    governance_quorum to ``all``, three approvals of four no longer add one, four do, in force after the block."""
    t = throwaway_consortium(nodes=4)
    newcomer = PrivateKey.generate()
    card = make_card(newcomer, name="shuiwu", org="水务局", roles=("node",), validity=YEAR).to_dict()
    add = {"proposal_id": "add", "action": "add_member", "card": card}
    entries, size, root = _entries([_gov(t.gateway, PROPOSE, add, 0)])
    _eras, problems = VE.replay(_genesis(t), [{"proposal_id": "add", "action": "add_member", "in_force_from": 1,
                                                 "records": entries}], size, root)
    assert problems == ["governance 0 (add) record 0: member gateway may not propose or vote (not a node member "
                        "in force)", "governance 0 (add): 0 of 4 node members approved, 3 needed (a vote removed?)"]
    nodes = [t.keys[m.name] for m in t.consortium.nodes]
    txs = [_gov(nodes[0], PROPOSE, {"proposal_id": "q", "action": "set_parameters",
                                    "parameters": {"governance_quorum": "all"}}, 0),
           *(_gov(k, VOTE, {"proposal_id": "q", "approve": True}, 1) for k in nodes[1:3]),
           _gov(nodes[0], PROPOSE, add, 2),
           *(_gov(k, VOTE, {"proposal_id": "add", "approve": True}, 3) for k in nodes[1:4])]
    entries, size, root = _entries(txs)
    quorum = {"proposal_id": "q", "action": "set_parameters", "in_force_from": 3, "records": entries[:3]}
    three = {"proposal_id": "add", "action": "add_member", "in_force_from": 6, "records": entries[3:6]}
    eras, problems = VE.replay(_genesis(t), [quorum, three], size, root)
    assert problems == ["governance 1 (add): 3 of 4 node members approved, 4 needed (a vote removed?)"]
    four = {**three, "in_force_from": 7, "records": entries[3:7]}
    eras, problems = VE.replay(_genesis(t), [quorum, four], size, root)
    assert problems == []
    assert [start for start, _ in eras] == [0, 3, 7]
    assert newcomer.key_id not in VE.in_force(eras, 6)["by_key"] and newcomer.key_id in VE.in_force(eras, 7)["by_key"]


def test_the_ledgers_own_verifier_replays_the_changes_with_the_core(chain: Chain) -> None:
    """ledger.verify.provenance.verify_export (the core's Governance replaying the exported votes) accepts the
    genuine export, whose checkpoint counts the new key, and names a removed vote or an altered vote."""
    export = chain.export()
    assert verify_export(export, consortium=chain.t.consortium) == []
    no_vote = copy.deepcopy(export)
    del no_vote["governance"][0]["records"][1]
    problems = verify_export(no_vote, consortium=chain.t.consortium)
    assert problems[0] == "governance (r): not applied by the replay (a vote removed?)", problems
    assert problems[-1].startswith("checkpoint: "), problems
    altered = copy.deepcopy(export)
    altered["governance"][0]["records"][2]["payload"]["approve"] = False
    problems = verify_export(altered, consortium=chain.t.consortium)
    assert problems[0] == "governance (r): a field differs from the signed body", problems


def _unchanged_nodes(chain: Chain, members: bool = True) -> str:
    k = chain.t.keys
    return chain.note(*((n, k[n]) for n in ("chengguan", "zhujian", "jiaotong")), members=members)


def test_a_checkpoint_with_the_membership_line_proves_the_replayed_membership(
        chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The membership line (version 1: the rotation, in force from log index 3) matches what verify-export and the
    ledger's own verifier replay from the export: OK, naming the co-signed version."""
    export = chain.export(chain.note(("chengguan", chain.t.keys["chengguan"]), ("zhujian", chain.t.keys["zhujian"]),
                                     ("shengtai", chain.new), members=True))
    code, out = _run(export, chain, tmp_path, capsys)
    assert code == 0, out
    assert out[0].endswith("; membership version 1 as co-signed"), out
    assert verify_export(export, consortium=chain.t.consortium) == []


def test_a_left_out_rotation_fails_against_the_membership_line(chain: Chain, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """An export of a record under 生态环境's old key (before the line's era ends, so the old key verifies) with the
    rotation left out: without the membership line nothing notices (OK, saying the membership is not proven, a
    warning on stderr); with it, one line: the export makes version 0, the checkpoint's is 1; exit status 1."""
    for members in (False, True):
        export = chain.export(_unchanged_nodes(chain, members), tx_ids=[chain.late[1].tx_id])
        del export["governance"]
        code = VE.main([*_files(export, chain, tmp_path), "--allow-v1"])
        out, err = capsys.readouterr()
        if not members:
            assert code == 0 and out.endswith("; membership not proven (no muck-ledger/membership/v1 line in the "
                                              "checkpoint)\n"), out
            assert "warning: the checkpoint has no muck-ledger/membership/v1 line" in err
            continue
        assert code == 1
        assert out.splitlines() == ["FAILED: membership: the export's governance changes make membership version 0, "
                                    "the checkpoint's co-signed membership is version 1 (a membership change removed "
                                    "or added?)"], out
        assert verify_export(export, consortium=chain.t.consortium) == [
            "membership: the export's governance changes make membership version 0, the checkpoint's co-signed "
            "membership is version 1 (a membership change removed or added?)"]


def test_a_moved_in_force_from_fails_against_the_membership_line(chain: Chain, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The rotation claimed in force one transaction later (log index 4, inside block 2): the replay alone accepts
    it, the co-signed digest, which binds each era's first log index, does not (the export's record: the signed
    proposal, valid in either era)."""
    proposal = chain.export()["governance"][0]["records"][0]["tx_id"]
    export = chain.export(_unchanged_nodes(chain), tx_ids=[proposal])
    export["governance"][0]["in_force_from"] = 4
    code, out = _run(export, chain, tmp_path, capsys)
    assert code == 1
    why = ("membership: the membership history the export's governance changes give is not the checkpoint's "
           "co-signed one (a change removed, reordered or altered, or a wrong in_force_from?)")
    assert out == [f"FAILED: {why}"], out
    assert verify_export(export, consortium=chain.t.consortium) == [why]


def _files(export: dict[str, Any], chain: Chain, tmp_path: Path) -> list[str]:
    (tmp_path / "export.json").write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "genesis.json").write_text(json.dumps(chain.t.consortium.to_dict(), ensure_ascii=False),
                                           encoding="utf-8")
    return [str(tmp_path / "export.json"), "--consortium", str(tmp_path / "genesis.json")]


def test_a_left_out_retirement_fails_in_the_replay_against_the_cores_digest() -> None:
    """In memory: a gateway-like member added, then retired by three node votes each; the export's changes with
    the retirement left out replay without a problem, but give version 1, not the 2 of the core's line; the
    intact changes give the core's digest exactly."""
    t = throwaway_consortium(nodes=4)
    newcomer = PrivateKey.generate()
    card = make_card(newcomer, name="jiance", org="监测站", roles=("regulator",), validity=YEAR).to_dict()
    nodes = [t.keys[m.name] for m in t.consortium.nodes]
    retire = {"proposal_id": "out", "action": "retire_member", "member": "jiance"}
    txs = [_gov(nodes[0], PROPOSE, {"proposal_id": "in", "action": "add_member", "card": card}, 0),
           *(_gov(k, VOTE, {"proposal_id": "in", "approve": True}, 1) for k in nodes[1:3]),
           _gov(nodes[1], PROPOSE, retire, 2),
           *(_gov(k, VOTE, {"proposal_id": "out", "approve": True}, 3) for k in (nodes[0], nodes[3]))]
    entries, size, root = _entries(txs)
    add = {"proposal_id": "in", "action": "add_member", "in_force_from": 3, "records": entries[:3]}
    out = {"proposal_id": "out", "action": "retire_member", "in_force_from": 6, "records": entries[3:6]}
    added = t.consortium.amended(members=[*t.consortium.members, Member(  # an older genesis: plain members
        name="jiance", org="监测站", roles=frozenset({"regulator"}), public_key=newcomer.public_key)])
    line = membership_line.parse_line([membership_line.extension_line(
        9, [(0, 0, t.consortium), (3, 1, added), (6, 2, t.consortium)])])
    assert line is not None
    eras, problems = VE.replay(_genesis(t), [add, out], size, root)
    assert problems == [] and VE.membership_check(eras, line, None, False) is None
    eras, problems = VE.replay(_genesis(t), [add], size, root)
    assert problems == []
    assert VE.membership_check(eras, line, None, False) == (
        "the export's governance changes make membership version 1, the checkpoint's co-signed membership is "
        "version 2 (a membership change removed or added?)")


def test_a_malformed_membership_line_is_unusable_input(chain: Chain, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A co-signed checkpoint whose membership line is not ``<height> <version> <base64 digest>``: verify-export
    exits 2 naming the line; the ledger's own verifier reports it as a membership problem."""
    k = chain.t.keys
    body = cp.Checkpoint(chain.t.consortium.origin, chain.size, chain.store.log().root(chain.size),
                         ("muck-ledger/membership/v1 2 one AAAA",))
    note = cp.sign(body, [(n, k[n]) for n in ("chengguan", "zhujian", "jiaotong")])
    export = chain.export(note, tx_ids=[chain.export()["governance"][0]["records"][0]["tx_id"]])
    code = VE.main([*_files(export, chain, tmp_path), "--allow-v1"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", out
    assert "unusable input" in err and "muck-ledger/membership/v1" in err, err
    assert verify_export(export, consortium=chain.t.consortium) == [
        "membership: malformed membership line in the checkpoint"]
