"""Issue 6, "Tests": tampering with any table of a node, reordering blocks, dropping a transaction, or a node that
rewrites history after a checkpoint is caught by the audit and pinned to the right node and block.

One real consortium for the module: 4 node processes on loopback, solo ordering, the e-ticket rules.  It is loaded
with transactions, the regulator keeps a checkpoint co-signed by the nodes, and the chain grows on.  Then every
node's SQLite database is snapshotted (SQLite's online backup, while the nodes run).  ``ledger audit`` reads the
databases named in the nodes' configuration files, so each test audits fresh copies of the four snapshots (with a
consortium description pointing at the copies) after tampering with one of them: every case starts from the intact
chain, and the running nodes stay intact for the audit API, which compares their live heads.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger.cli import main as ledger_cli
from ledger.cli.audit import _machine_factory
from ledger.core import checkpoint as cp
from ledger.core.block import Block, BlockHeader, sign_header
from ledger.core.builder import rebuild
from ledger.core.consortium import Consortium
from ledger.core.tree import CompactRange
from ledger.store import schema
from ledger.store.keyfiles import read_private_key
from ledger.store.ledger_store import LedgerStore
from ledger.verify.audit import audit_nodes
from ledger.verify.chain import verify_chain
from tests.functional.tls_fixtures import HTTP, NODE_MEMBER
from tools.load import run_load
from tools.local_consortium import LocalConsortium

pytestmark = pytest.mark.slow

#: Tables of a node's database that hold no ledger data, and why no audit can or should judge them.
NON_LEDGER_TABLES = {
    "node_pool": "the node's admission queue (consortium_nodes.pool): transactions accepted but not yet ordered; "
                 "rows are deleted once ordered, and whatever is in it is validated again when a block is built",
    "node_batch_copies": "the node's copies of the batches of its newest blocks (consortium_nodes.batch_copies), "
                         "for a solo leader that lost its order log; every node checks a batch's signature and "
                         "rebuilds its block when it is ordered again",
}


@dataclass(frozen=True)
class Chain:
    """The module's intact chain: the running consortium, snapshots of its databases and the kept checkpoint."""

    local: LocalConsortium
    desc: dict[str, Any]
    consortium: Consortium
    snapshots: dict[str, Path]
    kept: str  # the checkpoint the regulator kept: co-signed by the nodes, older than the head
    kept_size: int
    blocks: list[tuple[int, int, int]]  # (height, tx_count, log_size) of every block
    h: int  # a block well before the kept checkpoint with at least 3 transactions; h + 1 is before it too

    @property
    def names(self) -> list[str]:
        return [n["name"] for n in self.desc["nodes"]]

    def block_of_size(self, size: int) -> int:
        """The block whose log head is ``size`` transactions."""
        return next(h for h, _n, s in self.blocks if s == size)

    def start(self, height: int) -> int:
        """The log index of a block's first transaction."""
        _h, n, s = self.blocks[height]
        return s - n


def _settled(local: LocalConsortium, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Wait until every node holds the same head, final, with an empty pool."""
    deadline = time.monotonic() + timeout
    while True:
        st = local.status()
        if (len({s.get("head") for s in st}) == 1
                and all(s.get("final_height") == s.get("height") and s.get("pool") == 0 for s in st)):
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.3)


def _snapshot(src: Path, dst: Path) -> Path:
    """A consistent copy of a live SQLite database (online backup), as one self-contained file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(src)) as s, closing(sqlite3.connect(dst)) as d:
        s.backup(d)
        d.execute("PRAGMA journal_mode=DELETE")
    return dst


def _db_path(node: dict[str, Any]) -> Path:
    return Path(json.loads(Path(node["config"]).read_text(encoding="utf-8"))["db"].removeprefix("sqlite:///"))


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    root = tmp_path_factory.mktemp("audit-tamper")
    local = LocalConsortium(root=root / "consortium")
    local.up(nodes=4, ordering="solo", state_machine="eticket", base_port=0)
    local.mount(HTTP, NODE_MEMBER)
    try:
        loaded = run_load(local.desc_path, seconds=2.0, rate=100, batch=5)
        assert loaded["accepted"] >= 150 and loaded["lost"] == 0, loaded
        desc = local.describe()
        r = HTTP.post(desc["nodes"][1]["url"] + "/v1/checkpoints/new", timeout=30)
        assert r.status_code == 200, r.text
        kept = r.json()["note"]
        grown = run_load(local.desc_path, seconds=0.6, rate=50, batch=5)  # history goes on after the checkpoint
        assert grown["accepted"] > 0 and grown["lost"] == 0, grown
        _settled(local)
        snapshots = {n["name"]: _snapshot(_db_path(n), root / "pristine" / f"{n['name']}.db") for n in desc["nodes"]}
        heads = set()
        for path in snapshots.values():
            with closing(sqlite3.connect(path)) as c:
                heads.add(c.execute("select hash from ledger_blocks order by height desc limit 1").fetchone()[0])
                blocks = [tuple(r) for r in c.execute(
                    "select height, tx_count, log_size from ledger_blocks order by height")]
        assert len(heads) == 1, "the snapshots hold one chain"
        kept_size = cp.Checkpoint.parse_body(cp.split_note(kept)[0]).size
        assert blocks[-1][2] > kept_size, "the chain grew after the kept checkpoint"
        for path in snapshots.values():  # every node stored the co-signed checkpoint it witnessed
            with closing(sqlite3.connect(path)) as c:
                assert c.execute("select count(*) from ledger_checkpoints where size=?", (kept_size,)).fetchone()[0]
        candidates = [h for h, n, s in blocks[1:-1] if n >= 3 and blocks[h + 1][2] <= kept_size]
        assert candidates, blocks
        yield Chain(local=local, desc=desc, consortium=local.consortium(), snapshots=snapshots, kept=kept,
                    kept_size=kept_size, blocks=blocks, h=candidates[len(candidates) // 2])
    finally:
        for name in [n["name"] for n in local.describe()["nodes"]]:
            local.stop(name, kill=True)  # their data is thrown away: no need to wait for a graceful stop
        local.down()


def test_node_status_shows_the_newest_certificate(chain: Chain) -> None:
    """Every node's ``GET /status`` carries the certificate of its newest final block (the dashboard's "last
    certificate"): its height is the final height, its header hash is that block's, and its signers are the
    members whose signatures the node serves for that block, at least a quorum; the other keys are unchanged."""
    consortium = chain.consortium
    for n in chain.desc["nodes"]:
        st = HTTP.get(n["url"] + "/status", timeout=5).json()
        assert {"node", "height", "head", "final_height", "transactions", "log_root", "pool", "diverged", "fault",
                "ready"} <= set(st)
        cert = st["certificate"]
        assert cert["height"] == st["final_height"] == len(chain.blocks) - 1
        assert (cert["quorum"], cert["nodes"]) == (consortium.quorum, len(consortium.nodes))
        sigs = HTTP.get(n["url"] + f"/v1/blocks/{cert['height']}/signatures", timeout=5).json()
        assert cert["header_hash"] == sigs["header_hash"] == st["head"]
        names = {m.key_id: m.name for m in consortium.nodes}
        assert cert["signers"] == [m.name for m in consortium.nodes
                                   if m.key_id in {s["key_id"] for s in sigs["signatures"]}]
        assert len(cert["signers"]) >= consortium.quorum and set(cert["signers"]) <= set(names.values())


# -- copies of the four databases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Copies:
    desc: Path  # a consortium description whose nodes' configurations name the copies
    dbs: dict[str, Path]
    kept: Path  # the regulator's kept checkpoint file (``ledger audit --checkpoint``)

    def url(self, name: str) -> str:
        return f"sqlite:///{self.dbs[name]}"


def copies(chain: Chain, where: Path) -> Copies:
    """Fresh copies of the intact databases and a description of the consortium pointing at them."""
    desc = json.loads(json.dumps(chain.desc))
    dbs: dict[str, Path] = {}
    for n in desc["nodes"]:
        d = where / n["name"]
        d.mkdir(parents=True)
        db = d / "ledger.db"
        shutil.copyfile(chain.snapshots[n["name"]], db)
        cfg = json.loads(Path(n["config"]).read_text(encoding="utf-8"))
        cfg["db"] = f"sqlite:///{db}"
        (d / "node.json").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
        n.update(config=str(d / "node.json"), data_dir=str(d), pid=None)
        dbs[n["name"]] = db
    (where / "consortium.json").write_text(json.dumps(desc, ensure_ascii=False), encoding="utf-8")
    kept = where / "kept-checkpoint.txt"
    kept.write_text(chain.kept, encoding="utf-8")
    return Copies(desc=where / "consortium.json", dbs=dbs, kept=kept)


def tamper(path: Path, change: Callable[[sqlite3.Connection], None]) -> None:
    with closing(sqlite3.connect(path)) as c:
        change(c)
        c.commit()


def cli_args(cs: Copies) -> list[str]:
    return ["audit", "--nodes", str(cs.desc), "--checkpoint", str(cs.kept), "--json", "--workers", "1"]


def audit_in_process(cs: Copies, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    """``ledger audit --nodes DESC --checkpoint FILE --json``: its exit status and report (``ledger.cli.main.main``,
    which ``python -m ledger`` exits with, run here to spare an interpreter start per case)."""
    capsys.readouterr()
    status = ledger_cli.main(cli_args(cs))
    return status, json.loads(capsys.readouterr().out)


def audit_process(cs: Copies) -> tuple[int, dict[str, Any]]:
    """The same, as its own process."""
    done = subprocess.run([sys.executable, "-m", "ledger", *cli_args(cs)], capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def assert_pinned(report: dict[str, Any], victim: str, height: int, position: int | None,
                  kind: str | None = None) -> dict[str, Any]:
    """The audit fails, names ``victim`` and no other node, and pins its first problem to the block (and
    transaction); the advice names it too.  Returns the victim's entry."""
    assert report["ok"] is False
    assert report["bad_nodes"] == [victim], (report["bad_nodes"], report["nodes"])
    entry = report["nodes"][victim]
    first = entry["first_problem"]
    assert first is not None, entry
    assert (first["height"], first["position"]) == (height, position), first
    if kind is not None:
        assert first["kind"] == kind, first
    assert first["message"]
    assert entry["ok"] is False
    for name, other in report["nodes"].items():
        if name != victim:
            assert other["ok"] and other["first_problem"] is None and other["checkpoint"]["ok"], (name, other)
    assert victim in report["advice"] and f"block {height}" in report["advice"]
    return dict(entry)


# -- tampering with every column of every table -------------------------------------------------------------


@dataclass(frozen=True)
class Spot:
    """Where the cases tamper: block ``h``, its transaction ``p``, and the block the kept checkpoint ends at."""

    h: int
    p: int
    kept_size: int
    kept_block: int


@dataclass(frozen=True)
class Case:
    table: str
    column: str
    victim: str
    what: str
    change: Callable[[sqlite3.Connection, Spot], None]
    expect: Callable[[Spot], tuple[int, int | None, str] | None]  # None: the database cannot even be opened
    variant: str = ""

    @property
    def id(self) -> str:
        return f"{self.table}.{self.column}{'-' + self.variant if self.variant else ''}"


def _block(column: str, expr: str) -> Callable[[sqlite3.Connection, Spot], None]:
    return lambda c, s: c.execute(f"update ledger_blocks set {column} = {expr} where height = ?", (s.h,))


def _tx(column: str, expr: str) -> Callable[[sqlite3.Connection, Spot], None]:
    return lambda c, s: c.execute(f"update ledger_transactions set {column} = {expr} where height = ? and "
                                  "position = ?", (s.h, s.p))


def _first_key(c: sqlite3.Connection, height: int) -> str:
    return str(c.execute("select min(key_id) from ledger_signatures where height = ?", (height,)).fetchone()[0])


def _sig(column: str, expr: str) -> Callable[[sqlite3.Connection, Spot], None]:
    return lambda c, s: c.execute(f"update ledger_signatures set {column} = {expr} where height = ? and key_id = ?",
                                  (s.h, _first_key(c, s.h)))


def _cp(column: str, expr: str) -> Callable[[sqlite3.Connection, Spot], None]:
    return lambda c, s: c.execute(f"update ledger_checkpoints set {column} = {expr} where size = ?", (s.kept_size,))


def _tx_body(c: sqlite3.Connection, s: Spot) -> None:
    seq, body = c.execute("select seq, body from ledger_transactions where height = ? and position = ?",
                          (s.h, s.p)).fetchone()
    new = body.replace(b'"kind":"transport"', b'"kind":"transpore"', 1)
    assert new != body
    c.execute("update ledger_transactions set body = ? where seq = ?", (new, seq))


def _sig_value(c: sqlite3.Connection, s: Spot) -> None:
    key = _first_key(c, s.h)
    value = bytearray(c.execute("select value from ledger_signatures where height = ? and key_id = ?",
                                (s.h, key)).fetchone()[0])
    value[7] ^= 0x01
    c.execute("update ledger_signatures set value = ? where height = ? and key_id = ?", (bytes(value), s.h, key))


def _sig_height(c: sqlite3.Connection, s: Spot) -> None:
    """Swap one member's signatures of blocks h and h + 1 (the rows' height column)."""
    both = {r[0] for r in c.execute("select key_id from ledger_signatures where height = ?", (s.h,))} & {
        r[0] for r in c.execute("select key_id from ledger_signatures where height = ?", (s.h + 1,))}
    key = min(both)
    c.execute("update ledger_signatures set height = -1 where height = ? and key_id = ?", (s.h, key))
    c.execute("update ledger_signatures set height = ? where height = ? and key_id = ?", (s.h, s.h + 1, key))
    c.execute("update ledger_signatures set height = ? where height = -1 and key_id = ?", (s.h + 1, key))


def _cp_note(c: sqlite3.Connection, s: Spot) -> None:
    """Put another root into the stored note's body, keeping its signature lines."""
    note = c.execute("select note from ledger_checkpoints where size = ?", (s.kept_size,)).fetchone()[0]
    lines = note.split("\n")
    lines[2] = base64.b64encode(b"\x07" * 32).decode()
    c.execute("update ledger_checkpoints set note = ? where size = ?", ("\n".join(lines), s.kept_size))


def _meta_genesis(c: sqlite3.Connection, s: Spot) -> None:
    """Change the stored genesis document (another name for the consortium)."""
    doc = json.loads(c.execute("select value from ledger_meta where key = 'genesis'").fetchone()[0])
    doc["name"] += "-forged"
    c.execute("update ledger_meta set value = ? where key = 'genesis'", (json.dumps(doc, ensure_ascii=False),))


Z64 = "'" + "0" * 64 + "'"


def _at(kind: str, *, tx: bool = False) -> Callable[[Spot], tuple[int, int | None, str]]:
    return lambda s: (s.h, s.p if tx else None, kind)


CASES: list[Case] = [
    # ledger_blocks (one row a block; the header fields are re-hashed and must carry the certificate)
    Case("ledger_blocks", "height", "zhujian", "block h's row moved far past the head",
         _block("height", "height + 100000"), _at("missing_block")),
    Case("ledger_blocks", "hash", "zhujian", "block h's stored hash column", _block("hash", Z64), _at("header_hash")),
    Case("ledger_blocks", "version", "zhujian", "block h's header version", _block("version", "version + 1"),
         _at("certificate")),
    Case("ledger_blocks", "previous_hash", "zhujian", "block h's link", _block("previous_hash", "'" + "1" * 64 + "'"),
         _at("link")),
    Case("ledger_blocks", "tx_root", "zhujian", "block h's Merkle root", _block("tx_root", Z64), _at("certificate")),
    Case("ledger_blocks", "flags_digest", "zhujian", "block h's flags digest", _block("flags_digest", Z64),
         _at("certificate")),
    Case("ledger_blocks", "tx_count", "zhujian", "block h's transaction count", _block("tx_count", "tx_count - 1"),
         _at("certificate")),
    Case("ledger_blocks", "log_size", "zhujian", "block h's log size", _block("log_size", "log_size + 1"),
         _at("certificate")),
    Case("ledger_blocks", "log_root", "zhujian", "block h's log root", _block("log_root", Z64), _at("certificate")),
    Case("ledger_blocks", "timestamp", "zhujian", "block h's time",
         _block("timestamp", "'2026-01-01T00:00:00.000+08:00'"), _at("certificate")),
    Case("ledger_blocks", "proposer", "zhujian", "block h's proposer",
         _block("proposer", "case when proposer = 'jiaotong' then 'shengtai' else 'jiaotong' end"), _at("certificate")),
    # ledger_transactions (one row a transaction; seq is its index in the log)
    Case("ledger_transactions", "seq", "jiaotong", "a transaction's log index", _tx("seq", "seq + 1000000"),
         _at("missing_tx", tx=True)),
    Case("ledger_transactions", "tx_id", "jiaotong", "a transaction's id", _tx("tx_id", Z64), _at("tx_id", tx=True)),
    Case("ledger_transactions", "height", "jiaotong", "a transaction moved to the next block",
         _tx("height", "height + 1"), _at("missing_tx", tx=True)),
    Case("ledger_transactions", "position", "jiaotong", "a transaction's position", _tx("position", "position + 50"),
         _at("order", tx=True)),
    Case("ledger_transactions", "type", "jiaotong", "a transaction's type column", _tx("type", "'registry.project'"),
         _at("type", tx=True)),
    Case("ledger_transactions", "code", "jiaotong", "a transaction's validation code",
         _tx("code", "case when code = 'valid' then 'forbidden' else 'valid' end"), _at("flags", tx=True)),
    Case("ledger_transactions", "leaf_hash", "jiaotong", "a transaction's stored leaf hash",
         _tx("leaf_hash", "zeroblob(32)"), _at("leaf_hash", tx=True)),
    Case("ledger_transactions", "body", "jiaotong", "one byte of a transaction's payload", _tx_body,
         _at("tx_id", tx=True)),
    # ledger_signatures (the blocks' certificates)
    Case("ledger_signatures", "height", "shengtai", "a member's signatures of blocks h and h + 1 swapped", _sig_height,
         _at("certificate")),
    Case("ledger_signatures", "key_id", "shengtai", "a signature's key id", _sig("key_id", "'ffffffffffffffff'"),
         _at("certificate")),
    Case("ledger_signatures", "header_hash", "shengtai", "a signature's header hash", _sig("header_hash", Z64),
         _at("certificate")),
    Case("ledger_signatures", "alg", "shengtai", "a signature's algorithm", _sig("alg", "'sm2'"), _at("certificate")),
    Case("ledger_signatures", "value", "shengtai", "one bit of a signature", _sig_value, _at("certificate")),
    # ledger_checkpoints (the co-signed checkpoints the node witnessed; pinned to the block they end at)
    Case("ledger_checkpoints", "size", "chengguan", "a stored checkpoint's size", _cp("size", "size + 1000000"),
         lambda s: (s.kept_block, None, "stored_checkpoint")),
    Case("ledger_checkpoints", "root", "chengguan", "a stored checkpoint's root", _cp("root", Z64),
         lambda s: (s.kept_block, None, "stored_checkpoint")),
    Case("ledger_checkpoints", "note", "chengguan", "the root inside a stored checkpoint's signed note", _cp_note,
         lambda s: (s.kept_block, None, "stored_checkpoint")),
    # ledger_meta (the genesis document and its hash)
    Case("ledger_meta", "key", "zhujian", "the genesis hash row renamed",
         lambda c, s: c.execute("update ledger_meta set key = 'genesis_hash_was' where key = 'genesis_hash'"),
         lambda s: (0, None, "genesis")),
    Case("ledger_meta", "value", "zhujian", "the stored genesis document", _meta_genesis,
         lambda s: (0, None, "genesis"), variant="genesis"),
    Case("ledger_meta", "value", "zhujian", "the recorded genesis hash",
         lambda c, s: c.execute(f"update ledger_meta set value = {Z64} where key = 'genesis_hash'"),
         lambda s: (0, None, "genesis"), variant="genesis_hash"),
    # ledger_alembic_version (the schema revision): the database cannot be opened; the audit says which
    Case("ledger_alembic_version", "version_num", "jiaotong", "the schema revision row",
         lambda c, s: c.execute("update ledger_alembic_version set version_num = 'ffff'"), lambda s: None),
]


def test_every_table_and_column_of_a_node_database_has_a_tamper_case(chain: Chain) -> None:
    """The cases below cover every column of every ledger table (``ledger.store.schema`` plus the schema revision
    table), and a node's database holds nothing else than those and the non-ledger tables named here."""
    with closing(sqlite3.connect(chain.snapshots[chain.names[0]])) as c:
        found = {t: {r[1] for r in c.execute(f"pragma table_info({t})")}
                 for (t,) in c.execute("select name from sqlite_master where type = 'table'")}
    ledger_tables = {t.name: {col.name for col in t.columns} for t in schema.metadata.sorted_tables}
    ledger_tables["ledger_alembic_version"] = {"version_num"}
    assert set(found) == set(ledger_tables) | set(NON_LEDGER_TABLES)
    assert {t: cols for t, cols in found.items() if t in ledger_tables} == ledger_tables
    covered: dict[str, set[str]] = {}
    for x in CASES:
        covered.setdefault(x.table, set()).add(x.column)
    assert covered == ledger_tables


def test_intact_copies_audit_clean_and_the_kept_checkpoint_moves_on(chain: Chain, tmp_path: Path) -> None:
    """Baseline for every case: the untouched copies audit clean through ``python -m ledger audit`` (exit 0,
    every node verified, re-executed and consistent with the kept checkpoint), and the kept checkpoint file is
    replaced by the newest co-signed one, which extends it."""
    cs = copies(chain, tmp_path)
    status, report = audit_process(cs)
    assert status == 0 and report["ok"] is True, report
    assert report["bad_nodes"] == [] and report["disagreements"] == []
    for entry in report["nodes"].values():
        assert entry["verified"] and entry["reexecuted"] and entry["checkpoint"]["ok"]
        assert entry["blocks"] == len(chain.blocks) and entry["transactions"] == chain.blocks[-1][2]
    newer = cs.kept.read_text(encoding="utf-8")
    assert newer == report["checkpoint"]
    assert cp.Checkpoint.parse_body(cp.split_note(newer)[0]).size >= chain.kept_size


@pytest.mark.parametrize("case", CASES, ids=lambda x: x.id)
def test_tampered_column_is_caught_and_pinned_to_the_node_and_block(
    case: Case, chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One column of one row of one node's database changed (see ``Case.what``): ``ledger audit`` exits 1,
    ``ok`` is false, that node and only that node is in ``bad_nodes``, its first problem is the block (and the
    transaction, where there is one) that was changed, and the regulator's kept checkpoint is not replaced."""
    spot = Spot(h=chain.h, p=1, kept_size=chain.kept_size, kept_block=chain.block_of_size(chain.kept_size))
    cs = copies(chain, tmp_path)
    tamper(cs.dbs[case.victim], lambda c: case.change(c, spot))
    status, report = audit_in_process(cs, capsys)
    assert status == 1
    assert cs.kept.read_text(encoding="utf-8") == chain.kept
    expected = case.expect(spot)
    if expected is None:
        assert report["ok"] is False and report["bad_nodes"] == [case.victim], report
        assert "cannot open" in report["nodes"][case.victim]["error"]
        assert all(report["nodes"][n]["ok"] for n in chain.names if n != case.victim)
        return
    height, position, kind = expected
    entry = assert_pinned(report, case.victim, height, position, kind)
    if position is not None and kind != "missing_tx":  # a missing transaction's id is not in that database
        with closing(sqlite3.connect(chain.snapshots[case.victim])) as c:
            tx_id = c.execute("select tx_id from ledger_transactions where height = ? and position = ?",
                              (height, position)).fetchone()[0]
        assert entry["first_problem"]["tx_id"] in (tx_id, "0" * 64)


# -- reordered blocks, a dropped transaction -------------------------------------------------------------------


def _swap_blocks(c: sqlite3.Connection, h: int) -> None:
    """Store blocks h and h + 1 the other way round, each with its transactions (log indexes renumbered in the
    new order) and its signatures."""
    a = [r[0] for r in c.execute("select seq from ledger_transactions where height = ? order by seq", (h,))]
    b = [r[0] for r in c.execute("select seq from ledger_transactions where height = ? order by seq", (h + 1,))]
    c.execute("update ledger_transactions set seq = -seq - 1 where height in (?, ?)", (h, h + 1))
    start = a[0]
    for i, seq in enumerate(b):
        c.execute("update ledger_transactions set seq = ?, height = ? where seq = ?", (start + i, h, -seq - 1))
    for i, seq in enumerate(a):
        c.execute("update ledger_transactions set seq = ?, height = ? where seq = ?",
                  (start + len(b) + i, h + 1, -seq - 1))
    for table in ("ledger_blocks", "ledger_signatures"):
        c.execute(f"update {table} set height = -1 where height = ?", (h,))
        c.execute(f"update {table} set height = ? where height = ?", (h, h + 1))
        c.execute(f"update {table} set height = ? where height = -1", (h + 1,))


def test_two_blocks_swapped_on_one_node(chain: Chain, tmp_path: Path) -> None:
    """Blocks h and h + 1 swapped on one node (rows, transactions and certificates moved together): the audit
    process exits 1, names that node alone, pins it to block h (its link no longer holds), reports that its
    block h differs from the other three nodes', and that its log departs from a healthy node's at block h's
    first transaction."""
    victim, h = "jiaotong", chain.h
    cs = copies(chain, tmp_path)
    tamper(cs.dbs[victim], lambda c: _swap_blocks(c, h))
    status, report = audit_process(cs)
    assert status == 1
    entry = assert_pinned(report, victim, h, None, "link")
    assert report["disagreements"] == [{"height": h, "majority": report["disagreements"][0]["majority"], "votes": 3,
                                         "nodes": [victim]}]
    diff = entry["differs_from"]
    assert diff["node"] != victim and (diff["index"], diff["height"], diff["position"]) == (chain.start(h), h, 0)
    assert cs.kept.read_text(encoding="utf-8") == chain.kept


def _drop(c: sqlite3.Connection, h: int, p: int, *, hide: bool) -> None:
    """Delete transaction p of block h; with ``hide``, close the gap (later rows of the block move up one
    position and log index), so the block's rows look complete and only its header counts them."""
    seq = c.execute("select seq from ledger_transactions where height = ? and position = ?", (h, p)).fetchone()[0]
    c.execute("delete from ledger_transactions where seq = ?", (seq,))
    if hide:
        for (later,) in c.execute("select seq from ledger_transactions where height = ? and position > ? "
                                  "order by seq", (h, p)).fetchall():
            c.execute("update ledger_transactions set seq = seq - 1, position = position - 1 where seq = ?", (later,))


@pytest.mark.parametrize("hide", [False, True], ids=["row-deleted", "gap-closed"])
def test_one_transaction_dropped_on_one_node(chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             hide: bool) -> None:
    """Transaction 1 of block h deleted on one node: the audit exits 1 and names that node alone at block h.
    With the row simply deleted its own verification names the missing transaction; when the gap was closed
    (later rows renumbered) no database alone can tell which one went, and the audit names it by comparing the
    node's log with a healthy node's (``differs_from``: block h, transaction 1)."""
    victim, h, n = "shengtai", chain.h, chain.blocks[chain.h][1]
    cs = copies(chain, tmp_path)
    tamper(cs.dbs[victim], lambda c: _drop(c, h, 1, hide=hide))
    status, report = audit_in_process(cs, capsys)
    assert status == 1
    entry = assert_pinned(report, victim, h, n - 1 if hide else 1, "missing_tx")
    diff = entry["differs_from"]
    assert (diff["index"], diff["height"], diff["position"]) == (chain.start(h) + 1, h, 1)
    with closing(sqlite3.connect(chain.snapshots[victim])) as c:
        dropped = c.execute("select tx_id from ledger_transactions where height = ? and position = 1", (h,)).fetchone()
    assert diff["tx_id"] == dropped[0]
    assert report["disagreements"] == []  # the headers were left alone


def _cut(c: sqlite3.Connection, h: int, *, checkpoints: bool) -> None:
    """Delete every block after h with its transactions and signatures (and, with ``checkpoints``, the stored
    checkpoints that cover them)."""
    size = c.execute("select log_size from ledger_blocks where height = ?", (h,)).fetchone()[0]
    for table in ("ledger_blocks", "ledger_transactions", "ledger_signatures"):
        c.execute(f"delete from {table} where height > ?", (h,))
    if checkpoints:
        c.execute("delete from ledger_checkpoints where size > ?", (size,))


@pytest.mark.parametrize("checkpoints", [False, True], ids=["checkpoints-kept", "checkpoints-deleted-too"])
def test_chain_cut_short_after_the_checkpoint_on_one_node(
    chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str], checkpoints: bool
) -> None:
    """One node's chain cut after block h (blocks, transactions and signatures deleted: what is left verifies).
    The checkpoints it had co-signed give it away: the audit exits 1 and names that node alone at block h + 1,
    the first block it no longer has.  When those checkpoint rows were deleted too, the regulator's kept
    checkpoint still does: its log is shorter than the kept checkpoint, and the audit says where it ends."""
    victim, h = "chengguan", chain.h
    cs = copies(chain, tmp_path)
    tamper(cs.dbs[victim], lambda c: _cut(c, h, checkpoints=checkpoints))
    assert verify_chain(cs.url(victim), chain.consortium, workers=1).ok is checkpoints
    status, report = audit_in_process(cs, capsys)
    assert status == 1
    entry = assert_pinned(report, victim, h + 1, None, "checkpoint" if checkpoints else "stored_checkpoint")
    kept = entry["checkpoint"]
    assert kept["ok"] is False and kept["size"] == chain.blocks[h][2] < kept["old_size"] == chain.kept_size
    assert report["disagreements"] == [] and "differs_from" not in entry  # what is left is the others' prefix


# -- a node that rewrites its history after the checkpoint -------------------------------------------------------


def forge_history(chain: Chain, cs: Copies, victim: str, h: int, p: int) -> None:
    """Rewrite one node's chain the way only someone holding every member's key can: transaction p of block h
    dropped, every block from h on rebuilt through the rules and re-signed by every node member, and the stored
    checkpoints re-issued for the new log.  The result is a self-consistent chain."""
    consortium = chain.consortium
    keys_dir = Path(chain.desc["keys_dir"])
    keys = [(m.name, read_private_key(keys_dir / f"{m.name}.pem")) for m in consortium.nodes]
    factory = _machine_factory(chain.desc["state_machine"])
    assert factory is not None
    machine = factory(consortium)
    forged = cs.dbs[victim].with_suffix(".forged")
    src = LedgerStore.open(cs.url(victim), create=False)
    dst = LedgerStore.open(f"sqlite:///{forged}", consortium=consortium)
    try:
        checkpointed = {size for size, _root, _note in src.checkpoints()}
        previous: BlockHeader | None = None
        log = CompactRange()
        for height in range(src.height + 1):
            block = src.block(height)
            assert block is not None
            txs = tuple(t for i, t in enumerate(block.transactions) if not (height == h and i == p))
            built = rebuild(Block(block.header, txs, ()), previous, log, consortium, machine)
            if height < h:
                assert built.block.header == block.header
            header = built.block.header
            dst.append(built.block.with_signatures(sign_header(header, k) for _n, k in keys), consortium)
            if block.header.log_size in checkpointed:
                note = cp.sign(cp.Checkpoint(consortium.origin, header.log_size, bytes.fromhex(header.log_root)),
                               keys)
                dst.add_checkpoint(header.log_size, header.log_root, note)
            previous, log = header, built.log
    finally:
        src.close()
        dst.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{cs.dbs[victim]}{suffix}").unlink(missing_ok=True)
    _snapshot(forged, cs.dbs[victim])


def test_history_rewritten_after_the_checkpoint_is_caught_by_the_kept_checkpoint(chain: Chain, tmp_path: Path) -> None:
    """A node rewrites its history after the regulator kept a checkpoint: transaction 1 of an old block dropped,
    every later header re-hashed and re-signed by all four member keys, its checkpoints re-issued.  Its chain
    verifies and re-executes on its own, and audited alone without the kept checkpoint it passes.  With the kept
    checkpoint the consistency proof fails: the audit process exits 1, names that node alone, says the log does
    not extend the kept checkpoint, and pins where its log departs from the others' (block h, transaction 1)."""
    victim, h = "zhujian", chain.h
    cs = copies(chain, tmp_path)
    forge_history(chain, cs, victim, h, 1)
    alone = verify_chain(cs.url(victim), chain.consortium, workers=1)
    assert alone.ok, alone.problems[:3]
    factory = _machine_factory(chain.desc["state_machine"])
    solo = audit_nodes({victim: cs.url(victim)}, chain.consortium, machine_factory=factory, workers=1)
    assert solo["ok"] is True and solo["nodes"][victim]["reexecuted"] is True, solo

    status, report = audit_process(cs)
    assert status == 1
    entry = assert_pinned(report, victim, h, 1, "checkpoint")
    assert entry["verified"] is True and entry["reexecuted"] is True
    kept = entry["checkpoint"]
    assert kept["ok"] is False and "NOT extend" in kept["message"] and kept["old_size"] == chain.kept_size
    assert "NOT extend" in entry["first_problem"]["message"]
    assert entry["differs_from"]["height"] == h and entry["differs_from"]["position"] == 1
    assert report["disagreements"][0]["height"] == h and report["disagreements"][0]["nodes"] == [victim]
    assert cs.kept.read_text(encoding="utf-8") == chain.kept, "a failed audit keeps the old checkpoint"

    # The regulator auditing that node alone: only the kept checkpoint can tell, and it bounds the block.
    solo = audit_nodes({victim: cs.url(victim)}, chain.consortium, machine_factory=factory,
                       kept_checkpoint=chain.kept, workers=1)
    assert solo["ok"] is False and solo["bad_nodes"] == [victim]
    first = solo["nodes"][victim]["first_problem"]
    # (the block of its own chain whose log reaches the kept checkpoint's size: one block on, as it dropped one)
    assert first["kind"] == "checkpoint" and h <= first["height"] <= chain.block_of_size(chain.kept_size) + 1


def test_audit_api_with_the_kept_checkpoint_catches_the_rewrite(chain: Chain, tmp_path: Path) -> None:
    """``GET /api/v1/audit?kept_checkpoint=…`` (the ledger adapter over the consortium description, the running
    nodes for the live heads, in-process): ok with the intact copies; after one node rewrote its history
    consistently, 200 with ``ok`` false, that node alone in ``bad_nodes``, its kept-checkpoint proof failed
    and its first problem at the block where its log departs."""
    from ticket_api.app import create_app
    from ticket_api.testing import app_config

    victim, h = "jiaotong", chain.h
    cs = copies(chain, tmp_path / "nodes")
    app = create_app(app_config(f"sqlite:///{tmp_path / 'api.db'}", SERVICES="ticket_api.adapter:make_services",
                                LEDGER_LOCAL=str(cs.desc)))
    token = app.extensions["ticket_api"].tokens.issue(role="regulator", tenant="city", subject="auditor-1").token
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Accept-Language": "en"}

    intact = client.get("/api/v1/audit", query_string={"kept_checkpoint": chain.kept}, headers=headers)
    assert intact.status_code == 200, intact.get_data(as_text=True)
    assert intact.json["ok"] is True and intact.json["mode"] == "full" and intact.json["bad_nodes"] == []

    forge_history(chain, cs, victim, h, 1)
    resp = client.get("/api/v1/audit", query_string={"kept_checkpoint": chain.kept}, headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.json
    assert body["mode"] == "full" and body["agree"] is True  # the live nodes are fine: their databases tell
    entry = assert_pinned(body, victim, h, 1, "checkpoint")
    assert entry["checkpoint"]["ok"] is False
