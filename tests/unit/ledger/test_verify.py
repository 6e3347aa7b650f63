"""ledger.verify.chain and `ledger verify`: tamper one row straight in the database (SQLite and
PostgreSQL) and verification must name the right block, transaction and kind of problem."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ledger_assets import ASSETS, load_tamper_module

from ledger.store.keyfiles import read_consortium, write_consortium
from ledger.store.ledger_store import LedgerStore
from ledger.testing import build_chain, throwaway_consortium
from ledger.verify.chain import verify_chain
from ledger.verify.report import Problem, Report

LEDGER = str(Path(sys.executable).with_name("ledger"))
TAMPERS = {x.name: x for x in load_tamper_module().TAMPERS}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LEDGER, *args], capture_output=True, text=True, timeout=120, check=False)


def expected_line(height: int, position: int | None, kind: str, tx_id: str | None) -> str:
    where = f"block {height}" if position is None else f"block {height}, transaction {position}"
    if position is not None and tx_id is not None:
        where += f" ({tx_id})"
    return f"FAILED at {where}: {kind}:"


@pytest.fixture(scope="module")
def chain_t(tamper_mod: ModuleType) -> Any:
    return tamper_mod.seeded_consortium()


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampered_row_is_named(db_url: str, name: str, tamper_mod: ModuleType, chain_t: Any, tmp_path) -> None:
    """After one tampered row, verify_chain (several chunks, two workers) and the `ledger verify`
    CLI (exit 1) both name the first bad block, the transaction where there is one, and the kind."""
    x = TAMPERS[name]
    tamper_mod.build(db_url, chain_t).close()
    tamper_mod.tamper(db_url, x)
    report = verify_chain(db_url, chain_t.consortium, workers=2, chunk_txs=10)
    assert not report.ok
    first = report.first
    assert first is not None
    assert (first.height, first.position, first.kind) == (x.height, x.position, x.kind), first
    assert report.problems[0] == first
    assert first.message
    consortium_file = tmp_path / "consortium.json"
    write_consortium(chain_t.consortium, consortium_file)
    cp = run_cli("verify", "--db", db_url, "--consortium", str(consortium_file))
    assert cp.returncode == 1, cp.stderr
    assert cp.stdout.startswith(expected_line(x.height, x.position, x.kind, first.tx_id)), cp.stdout


def test_untouched_chain_verifies(db_url: str, tamper_mod: ModuleType, chain_t: Any) -> None:
    """An untouched chain verifies with no problems, and `ledger verify` exits 0 (text and JSON)."""
    tamper_mod.build(db_url, chain_t).close()
    report = verify_chain(db_url, workers=2, chunk_txs=7)
    assert report.ok and report.first is None
    assert (report.blocks, report.transactions) == (tamper_mod.BLOCKS, tamper_mod.BLOCKS * tamper_mod.TXS)
    store = LedgerStore.open(db_url, create=False)
    try:
        head = store.head()
        assert head is not None
        assert report.head == head.hash and report.log_root == store.log().root().hex() == head.log_root
    finally:
        store.close()
    cp = run_cli("verify", "--db", db_url)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert cp.stdout.startswith(f"OK: {tamper_mod.BLOCKS} blocks, {tamper_mod.BLOCKS * tamper_mod.TXS} transactions")
    cp = run_cli("verify", "--db", db_url, "--json", "--workers", "1")
    assert cp.returncode == 0
    doc = json.loads(cp.stdout)
    assert doc["ok"] is True and doc["first_problem"] is None and doc["transactions"] == 48


def test_missing_database_exits_2_with_one_line(tmp_path) -> None:
    """`ledger verify` on a missing SQLite path exits 2 with exactly one line on stderr, and creates nothing."""
    path = tmp_path / "nope.db"
    cp = run_cli("verify", "--db", str(path))
    assert cp.returncode == 2
    assert cp.stdout == ""
    lines = cp.stderr.splitlines()
    assert len(lines) == 1 and "no ledger database" in lines[0] and str(path) in lines[0]
    assert not path.exists()


def test_other_trusted_consortium_is_a_genesis_problem(sqlite_url: str) -> None:
    """Verifying against another consortium than the chain's reports a genesis problem at block 0."""
    t = throwaway_consortium(nodes=1)
    s = LedgerStore.open(sqlite_url, consortium=t.consortium)
    build_chain(t, blocks=2, txs_per_block=2, store=s)
    s.close()
    report = verify_chain(sqlite_url, throwaway_consortium(nodes=1).consortium, workers=1)
    assert report.first is not None
    assert (report.first.kind, report.first.height) == ("genesis", 0)
    assert any(p.kind == "link" for p in report.problems)


def test_empty_chain_and_store_without_genesis(sqlite_url: str) -> None:
    """An empty chain with a genesis verifies; a database without one reports 'genesis'."""
    t = throwaway_consortium(nodes=1)
    LedgerStore.open(sqlite_url).close()
    r = verify_chain(sqlite_url, workers=1)
    assert not r.ok and r.first is not None and r.first.kind == "genesis"
    LedgerStore.open(sqlite_url, consortium=t.consortium).close()
    r = verify_chain(sqlite_url, workers=1)
    assert r.ok and r.blocks == 0 and r.transactions == 0


def test_report_ordering() -> None:
    """Problems are ordered by block, then header problems, then transactions by position (0 included),
    then block-level consequences; Report.first agrees with the sorted list."""
    r = Report(problems=[
        Problem("tx_root", 3, "m"), Problem("tx_id", 3, "m", position=0), Problem("certificate", 3, "m"),
        Problem("signature", 2, "m", position=5), Problem("log", 4, "m"), Problem("order", 3, "m", position=2),
    ])
    assert r.first == Problem("signature", 2, "m", position=5)
    r.problems = [p for p in r.problems if p.height == 3]
    assert r.first is not None and r.first.kind == "certificate"
    r.problems = [p for p in r.problems if p.kind != "certificate"]
    assert r.first is not None and (r.first.kind, r.first.position) == ("tx_id", 0)
    assert r.to_dict()["first_problem"]["kind"] == "tx_id"


def test_assets_point_where_the_manifest_says(tmp_path) -> None:
    """Every chain in tests/assets/chains is verified (from a copy) and the first problem is
    the manifest's block, transaction and kind; the intact chain verifies."""
    chains = ASSETS / "chains"
    manifest = json.loads((chains / "manifest.json").read_text(encoding="utf-8"))
    consortium = read_consortium(chains / manifest["consortium"])
    assert len(manifest["chains"]) >= 5
    for entry in manifest["chains"]:
        src = chains / entry["file"]
        assert src.stat().st_size < 200_000
        dst = tmp_path / entry["file"]
        shutil.copyfile(src, dst)
        report = verify_chain(str(dst), consortium, workers=2)
        want = entry["expect"]
        if want is None:
            assert report.ok, (entry, report.problems[:3])
            continue
        first = report.first
        assert first is not None, entry
        assert (first.height, first.position, first.kind) == (want["height"], want["position"], want["kind"]), entry


def test_asset_through_cli(tmp_path) -> None:
    """`ledger verify --consortium` on a tampered asset prints the manifest's block and transaction."""
    chains = ASSETS / "chains"
    manifest = json.loads((chains / "manifest.json").read_text(encoding="utf-8"))
    entry = next(e for e in manifest["chains"] if e["expect"] and e["expect"]["position"] is not None)
    dst = tmp_path / entry["file"]
    shutil.copyfile(chains / entry["file"], dst)
    cp = run_cli("verify", "--db", str(dst), "--consortium", str(chains / manifest["consortium"]))
    want = entry["expect"]
    assert cp.returncode == 1
    assert cp.stdout.startswith(f"FAILED at block {want['height']}, transaction {want['position']}")
    assert f": {want['kind']}:" in cp.stdout.splitlines()[0]


def test_assets_are_reproducible(tmp_path, tamper_mod: ModuleType) -> None:
    """make_tampered_chains.py is deterministic: regenerating gives the same manifest and consortium."""
    if os.environ.get("LEDGER_SKIP_ASSET_REBUILD"):
        pytest.skip("asset rebuild disabled")
    tamper_mod.main(tmp_path)
    chains = ASSETS / "chains"
    assert (tmp_path / "manifest.json").read_text() == (chains / "manifest.json").read_text()
    assert (tmp_path / "consortium.json").read_text() == (chains / "consortium.json").read_text()


def test_rule_refused_forbidden_tx_verifies_and_badly_signed_one_does_not(sqlite_url: str) -> None:
    """A well-signed transaction that the business rules refused with ``forbidden`` (a gate of another
    project) is stored with that code, appended with full checks and verifies; a transaction marked
    ``forbidden`` whose signature does not verify is named as a signature problem."""
    from dataclasses import replace

    from ledger.core.transaction import Signature
    from ledger.core.tree import CompactRange
    from ledger.testing import make_tx, next_block

    t = throwaway_consortium(nodes=1)
    s = LedgerStore.open(sqlite_url, consortium=t.consortium)
    good = make_tx(t.gateway, 1)
    block, log = next_block(previous=None, log=CompactRange(), t=t, txs=[good, make_tx(t.gateway, 2)],
                            codes=["forbidden", "valid"])
    s.append(block, t.consortium, check_signatures=True)
    assert verify_chain(sqlite_url, workers=1).ok
    forged = replace(make_tx(t.gateway, 3), signature=Signature("ed25519", bytes(64)))
    bad, _ = next_block(previous=block.header, log=log, t=t, txs=[forged], codes=["forbidden"])
    s.append(bad, t.consortium, check_signatures=False)
    s.close()
    report = verify_chain(sqlite_url, workers=1)
    assert not report.ok and report.first is not None
    assert (report.first.kind, report.first.height) == ("signature", 1)


@pytest.mark.parametrize("name", ["leaf_hash", "swap_tx_positions"])
def test_an_audit_finding_names_the_signer_of_its_transaction(sqlite_url: str, name: str,
                                                             tamper_mod: ModuleType, chain_t: Any) -> None:
    """An audit finding about one stored transaction names who signed it (``signer``: key id and member, as in
    provenance exports), read from the node's copy."""
    from ledger.verify.audit import audit_nodes

    x = TAMPERS[name]
    tamper_mod.build(sqlite_url, chain_t).close()
    tamper_mod.tamper(sqlite_url, x)
    report = audit_nodes({"n": sqlite_url}, chain_t.consortium, machine_factory=None)
    first = report["nodes"]["n"]["first_problem"]
    assert first["position"] == x.position and first["tx_id"]
    signer = first["signer"]
    member = chain_t.consortium.member(signer["key_id"])
    assert signer == {"key_id": member.public_key.key_id, "member": member.name}
