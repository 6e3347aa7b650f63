#!/usr/bin/env python3
"""Make small, deterministic tampered ledger chains (SQLite) for the verify tests.

Run from the repository root::

    .venv/bin/python tests/assets/make_tampered_chains.py

It writes ``tests/assets/chains/<name>.db`` (each well under 200 KB), the
consortium they were built with (``consortium.json``) and ``manifest.json``
saying, for every file, what was tampered and where ``ledger verify`` must
point (block height, transaction position or null, problem kind).

The tamper functions are also imported by ``tests/unit/ledger/test_verify.py``
to tamper freshly built chains on SQLite and PostgreSQL the same way.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ledger.core.block import VALID
from ledger.core.consortium import DEPARTMENTS, Consortium, Member
from ledger.core.crypto import ED25519, PrivateKey
from ledger.core.transaction import Transaction
from ledger.core.tree import CompactRange
from ledger.store import schema
from ledger.store.keyfiles import write_consortium
from ledger.store.ledger_store import LedgerStore
from ledger.store.schema import make_engine
from ledger.testing import CST, Throwaway, iso, next_block

HERE = Path(__file__).resolve().parent
OUT = HERE / "chains"

#: The shape of every test chain: BLOCKS blocks of TXS transactions.
BLOCKS = 6
TXS = 8


# -- a deterministic consortium and chain -------------------------------------

def seeded_consortium(name: str = "tamper-test") -> Throwaway:
    """Four department nodes and a gateway, with keys derived from their names."""
    keys: dict[str, PrivateKey] = {}
    members = []
    for member_name, org, roles in [*((n, o, ("node", "approver")) for n, o in DEPARTMENTS),
                                    ("gateway", "治理中心接口服务", ("gateway",))]:
        key = PrivateKey(alg=ED25519, seed=hashlib.sha256(f"{name}/{member_name}".encode()).digest())
        keys[member_name] = key
        members.append(Member(name=member_name, org=org, roles=frozenset(roles), public_key=key.public_key))
    consortium = Consortium(name=name, origin=f"muck-ledger.example/{name}", members=tuple(members))
    return Throwaway(consortium=consortium, keys=keys)


def det_tx(key: PrivateKey, i: int) -> Transaction:
    """Demo transaction ``i`` with a nonce and time fixed by ``i``."""
    at = datetime(2026, 11, 23, 22, 0, tzinfo=CST) + timedelta(seconds=i)
    return Transaction.create(
        key=key,
        type="ticket.issue",
        payload={"ticket_id": f"T{i:06d}", "plate": "渝A12345", "volume_m3": 15, "site": "巴福镇消纳场"},
        actor=f"gate:{i % 5}",
        timestamp=iso(at),
        nonce=hashlib.sha256(f"nonce/{i}".encode()).hexdigest()[:32],
    )


def build(url: str, t: Throwaway, *, blocks: int = BLOCKS, txs: int = TXS) -> LedgerStore:
    """A fresh store at ``url`` holding ``blocks`` co-signed blocks of ``txs`` transactions."""
    store = LedgerStore.open(url, consortium=t.consortium)
    previous = None
    log = CompactRange()
    n = 0
    for _ in range(blocks):
        batch = [det_tx(t.gateway, n + j) for j in range(txs)]
        n += txs
        block, log = next_block(previous=previous, log=log, t=t, txs=batch, codes=[VALID] * txs)
        store.append(block, t.consortium)
        previous = block.header
    return store


# -- tampering, straight in the database ---------------------------------------

TX = schema.transactions
BL = schema.blocks
SG = schema.signatures


def _seq(conn: sa.Connection, height: int, position: int) -> int:
    return int(conn.execute(
        sa.select(TX.c.seq).where(TX.c.height == height, TX.c.position == position)
    ).scalar_one())


def _body(conn: sa.Connection, seq: int) -> bytes:
    return bytes(conn.execute(sa.select(TX.c.body).where(TX.c.seq == seq)).scalar_one())


def body_content_byte(conn: sa.Connection, h: int, p: int) -> None:
    """Change one byte of the signed content (the volume 15 → 16) of one transaction."""
    seq = _seq(conn, h, p)
    body = _body(conn, seq)
    new = body.replace(b'"volume_m3":15', b'"volume_m3":16', 1)
    assert new != body and len(new) == len(body)
    conn.execute(TX.update().where(TX.c.seq == seq).values(body=new))


def body_signature_byte(conn: sa.Connection, h: int, p: int) -> None:
    """Change one base64 character of the transaction's own signature."""
    seq = _seq(conn, h, p)
    body = bytearray(_body(conn, seq))
    i = body.rindex(b'"value":"') + len(b'"value":"') + 10
    body[i] = ord("A") if body[i] != ord("A") else ord("B")
    conn.execute(TX.update().where(TX.c.seq == seq).values(body=bytes(body)))


def code_to_rejected(conn: sa.Connection, h: int, p: int) -> None:
    """Change a validation code from valid to a business rejection."""
    conn.execute(TX.update().where(TX.c.height == h, TX.c.position == p).values(code="rejected"))


def code_to_bad_signature(conn: sa.Connection, h: int, p: int) -> None:
    """Mark a well-signed transaction as bad_signature."""
    conn.execute(TX.update().where(TX.c.height == h, TX.c.position == p).values(code="bad_signature"))


def header_timestamp(conn: sa.Connection, h: int, p: int | None = None) -> None:
    """Change a header column (the block's timestamp) of one block."""
    conn.execute(BL.update().where(BL.c.height == h).values(timestamp="2026-11-23T23:59:59.000+08:00"))


def header_tx_root(conn: sa.Connection, h: int, p: int | None = None) -> None:
    """Change the header's tx_root column."""
    conn.execute(BL.update().where(BL.c.height == h).values(tx_root="00" * 32))


def header_signature(conn: sa.Connection, h: int, p: int | None = None) -> None:
    """Flip a bit of one node's stored signature over a header."""
    key_id, value = conn.execute(
        sa.select(SG.c.key_id, SG.c.value).where(SG.c.height == h).order_by(SG.c.key_id).limit(1)
    ).one()
    v = bytearray(value)
    v[5] ^= 0x01
    conn.execute(SG.update().where(SG.c.height == h, SG.c.key_id == key_id).values(value=bytes(v)))


def leaf_hash_column(conn: sa.Connection, h: int, p: int) -> None:
    """Change the stored leaf hash (which the store serves proofs from)."""
    conn.execute(TX.update().where(TX.c.height == h, TX.c.position == p).values(leaf_hash=b"\x00" * 32))


def delete_tx(conn: sa.Connection, h: int, p: int) -> None:
    """Delete one transaction row."""
    conn.execute(TX.delete().where(TX.c.height == h, TX.c.position == p))


def delete_block(conn: sa.Connection, h: int, p: int | None = None) -> None:
    """Delete one block row (its transactions and signatures stay)."""
    conn.execute(BL.delete().where(BL.c.height == h))


def _swap(conn: sa.Connection, table: sa.Table, col: sa.Column[Any], key: sa.Column[Any],
          ka: Any, kb: Any, va: Any, vb: Any, temp: Any) -> None:
    conn.execute(table.update().where(key == ka).values({col.name: temp}))
    conn.execute(table.update().where(key == kb).values({col.name: va}))
    conn.execute(table.update().where(col == temp).values({col.name: vb}))


def swap_tx_seq(conn: sa.Connection, h: int, p: int, q: int) -> None:
    """Reorder two transactions of a block by swapping their log indexes (seq)."""
    a, b = _seq(conn, h, p), _seq(conn, h, q)
    conn.execute(TX.update().where(TX.c.seq == a).values(seq=-1))
    conn.execute(TX.update().where(TX.c.seq == b).values(seq=a))
    conn.execute(TX.update().where(TX.c.seq == -1).values(seq=b))


def swap_tx_positions(conn: sa.Connection, h: int, p: int, q: int) -> None:
    """Reorder two transactions of a block by swapping their positions."""
    a, b = _seq(conn, h, p), _seq(conn, h, q)
    conn.execute(TX.update().where(TX.c.seq == a).values(position=q))
    conn.execute(TX.update().where(TX.c.seq == b).values(position=p))


def swap_tx_seq_and_positions(conn: sa.Connection, h: int, p: int, q: int) -> None:
    """Swap both seq and position of two transactions: the rows are self-consistent,
    only the block's Merkle root (and the log head) can tell."""
    swap_tx_seq(conn, h, p, q)
    a, b = _seq(conn, h, p), _seq(conn, h, q)  # now each row has the other's seq
    conn.execute(TX.update().where(TX.c.seq == a).values(position=-1))
    conn.execute(TX.update().where(TX.c.seq == b).values(position=p))
    conn.execute(TX.update().where(TX.c.position == -1).values(position=q))


def swap_blocks(conn: sa.Connection, h: int, k: int) -> None:
    """Reorder two block rows by swapping their heights."""
    conn.execute(BL.update().where(BL.c.height == h).values(height=-1))
    conn.execute(BL.update().where(BL.c.height == k).values(height=h))
    conn.execute(BL.update().where(BL.c.height == -1).values(height=k))


@dataclass(frozen=True)
class Tamper:
    """One way of tampering a chain and where verify must point."""

    name: str
    what: str
    apply: Callable[[sa.Connection], None]
    height: int
    position: int | None
    kind: str


TAMPERS: tuple[Tamper, ...] = (
    Tamper("body_content", "one byte of transaction 3's signed content in block 2",
           lambda c: body_content_byte(c, 2, 3), 2, 3, "tx_id"),
    Tamper("body_signature", "one character of transaction 5's signature in block 4",
           lambda c: body_signature_byte(c, 4, 5), 4, 5, "signature"),
    Tamper("code_rejected", "validation code of transaction 1 in block 3 set to 'rejected'",
           lambda c: code_to_rejected(c, 3, 1), 3, None, "flags"),
    Tamper("code_bad_signature", "validation code of transaction 6 in block 1 set to 'bad_signature'",
           lambda c: code_to_bad_signature(c, 1, 6), 1, 6, "validation_code"),
    Tamper("header_timestamp", "timestamp column of block 3's header",
           lambda c: header_timestamp(c, 3), 3, None, "certificate"),
    Tamper("header_tx_root", "tx_root column of block 1's header",
           lambda c: header_tx_root(c, 1), 1, None, "certificate"),
    Tamper("header_signature", "one bit of a node signature over block 2's header",
           lambda c: header_signature(c, 2), 2, None, "certificate"),
    Tamper("leaf_hash", "stored leaf hash of transaction 2 in block 5",
           lambda c: leaf_hash_column(c, 5, 2), 5, 2, "leaf_hash"),
    Tamper("delete_tx", "row of transaction 4 in block 2 deleted",
           lambda c: delete_tx(c, 2, 4), 2, 4, "missing_tx"),
    Tamper("delete_last_tx", "row of the last transaction (7) in block 1 deleted",
           lambda c: delete_tx(c, 1, TXS - 1), 1, TXS - 1, "missing_tx"),
    Tamper("delete_block", "row of block 3 deleted",
           lambda c: delete_block(c, 3), 3, None, "missing_block"),
    Tamper("delete_head_block", "row of the head block 5 deleted",
           lambda c: delete_block(c, BLOCKS - 1), BLOCKS - 1, None, "extra_tx"),
    Tamper("swap_tx_seq", "log indexes (seq) of transactions 2 and 6 of block 4 swapped",
           lambda c: swap_tx_seq(c, 4, 2, 6), 4, 2, "order"),
    Tamper("swap_tx_positions", "positions of transactions 1 and 3 of block 0 swapped",
           lambda c: swap_tx_positions(c, 0, 1, 3), 0, 1, "order"),
    Tamper("swap_tx_rows", "seq and position of transactions 0 and 5 of block 2 swapped",
           lambda c: swap_tx_seq_and_positions(c, 2, 0, 5), 2, None, "tx_root"),
    Tamper("swap_blocks", "heights of blocks 2 and 3 swapped",
           lambda c: swap_blocks(c, 2, 3), 2, None, "link"),
)

#: The tampers written as asset files (a few, to keep the repository small).
ASSETS = ("body_content", "body_signature", "code_rejected", "header_timestamp", "delete_tx",
          "delete_block", "swap_tx_seq", "swap_blocks")


def tamper(url: str, which: Tamper) -> None:
    """Apply one tamper to the database at ``url`` in one transaction."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            which.apply(conn)
    finally:
        engine.dispose()


def _compact(path: Path) -> None:
    """Fold the WAL into the file and switch it to a rollback journal, then VACUUM."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute("VACUUM")
    finally:
        con.close()


def main(out: Path = OUT) -> int:
    out.mkdir(parents=True, exist_ok=True)
    t = seeded_consortium()
    write_consortium(t.consortium, out / "consortium.json")
    manifest: dict[str, Any] = {
        "about": "Tampered copies of one deterministic chain; made by tests/assets/make_tampered_chains.py",
        "blocks": BLOCKS,
        "txs_per_block": TXS,
        "consortium": "consortium.json",
        "chains": [],
    }
    by_name = {x.name: x for x in TAMPERS}
    for name in ("intact", *ASSETS):
        path = out / f"{name}.db"
        for p in out.glob(f"{name}.db*"):
            p.unlink()
        url = f"sqlite:///{path}"
        build(url, t).close()
        entry: dict[str, Any] = {"file": path.name, "tampered": None, "expect": None}
        if name != "intact":
            x = by_name[name]
            tamper(url, x)
            entry["tampered"] = x.what
            entry["expect"] = {"height": x.height, "position": x.position, "kind": x.kind}
        _compact(path)
        size = path.stat().st_size
        assert size < 200_000, f"{path} is {size} bytes"
        manifest["chains"].append(entry)
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                       encoding="utf-8")
    print(f"wrote {len(manifest['chains'])} chains to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
