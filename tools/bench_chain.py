"""A large benchmark chain in SQLite: signed on all cores, co-signed blocks, bulk inserts, cached on disk."""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.core.block import VALID, BlockHeader, flags_digest, sign_header
from ledger.core.consortium import Consortium
from ledger.core.tree import CompactRange, hash_leaf, root_from_hashes
from ledger.store import schema
from ledger.store.keyfiles import read_consortium, write_consortium
from ledger.store.ledger_store import LedgerStore, make_engine
from ledger.testing import CST, Throwaway, iso, make_tx, throwaway_consortium

START = datetime(2026, 11, 23, 22, 0, tzinfo=CST)

# -- building the chain on all cores -----------------------------------------

_BUILD: dict[str, Any] = {}

BlockRows = list[tuple[str, bytes, bytes]]  # (tx id, body, leaf hash) per transaction


def _make_blocks(bounds: tuple[int, int]) -> list[BlockRows]:
    """Sign the transactions of blocks [lo, hi) (fork-inherited keys); bodies and leaf hashes per block."""
    t: Throwaway = _BUILD["t"]
    per: int = _BUILD["block_txs"]
    total: int = _BUILD["txs"]
    out: list[BlockRows] = []
    for b in range(*bounds):
        rows: BlockRows = []
        for i in range(b * per, min(total, (b + 1) * per)):
            tx = make_tx(t.gateway, i)
            body = tx.encode()
            rows.append((tx.tx_id, body, hash_leaf(body)))
        out.append(rows)
    return out


def build_chain_db(url: str, t: Throwaway, *, txs: int, block_txs: int, workers: int) -> int:
    """Write ``txs`` signed demo transactions in co-signed blocks of ``block_txs`` to an empty store.

    Signing runs on ``workers`` processes; the main process chains the headers,
    has every node sign them and inserts rows in large batches (one database
    transaction per ~50,000 transactions).  Returns the number of blocks.
    """
    store = LedgerStore.open(url, consortium=t.consortium)
    try:
        if store.height >= 0:
            raise SystemExit(f"{url} is not empty")
    finally:
        store.close()
    blocks = -(-txs // block_txs)
    _BUILD.update(t=t, block_txs=block_txs, txs=txs)
    step = max(1, min(20, blocks // (workers * 4) or 1))
    tasks = [(b, min(blocks, b + step)) for b in range(0, blocks, step)]
    node_keys = t.node_keys()
    proposer = t.consortium.nodes[0].name
    genesis = t.consortium.genesis_hash
    flags: dict[int, str] = {}
    log = CompactRange()
    previous: BlockHeader | None = None
    engine = make_engine(url)
    tx_rows: list[dict[str, Any]] = []
    block_rows: list[dict[str, Any]] = []
    sig_rows: list[dict[str, Any]] = []

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(schema.blocks.insert(), block_rows)
            conn.execute(schema.transactions.insert(), tx_rows)
            conn.execute(schema.signatures.insert(), sig_rows)
        block_rows.clear()
        tx_rows.clear()
        sig_rows.clear()

    t0 = time.perf_counter()
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            for chunk in pool.imap(_make_blocks, tasks):
                for rows in chunk:
                    height = 0 if previous is None else previous.height + 1
                    hashes = [r[2] for r in rows]
                    base = log.size
                    log.extend(hashes)
                    n = len(rows)
                    if n not in flags:
                        flags[n] = flags_digest([VALID] * n)
                    header = BlockHeader(
                        height=height,
                        previous_hash=genesis if previous is None else previous.hash,
                        tx_root=root_from_hashes(hashes).hex(),
                        flags_digest=flags[n],
                        tx_count=n,
                        log_size=log.size,
                        log_root=log.root().hex(),
                        timestamp=iso(START + timedelta(seconds=height * block_txs // 1000 + 1)),
                        proposer=proposer,
                    )
                    block_rows.append({**header.to_dict(), "hash": header.hash})
                    tx_rows.extend(
                        {"seq": base + i, "tx_id": tx_id, "height": height, "position": i, "type": "demo.record",
                         "code": VALID, "leaf_hash": leaf, "body": body}
                        for i, (tx_id, body, leaf) in enumerate(rows)
                    )
                    for key in node_keys:
                        s = sign_header(header, key)
                        sig_rows.append({"height": height, "key_id": s.key_id, "header_hash": header.hash,
                                         "alg": s.alg, "value": s.value})
                    previous = header
                    if len(tx_rows) >= 50_000:
                        flush()
                        _log(f"built {log.size:,} of {txs:,} transactions "
                             f"({log.size / (time.perf_counter() - t0):,.0f}/s)")
            if block_rows:
                flush()
    finally:
        engine.dispose()
    return blocks


def cached_chain(directory: Path, txs: int, block_txs: int, workers: int, rebuild: bool) -> tuple[str, Consortium]:
    """The chain of ``txs`` transactions in ``directory`` (URL, consortium): reused when complete, else built.

    The database is ``chain-<txs>-<block_txs>.db`` beside its consortium file; a ``.json`` marker is
    written last, so an interrupted build is started again.
    """
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / f"chain-{txs}-{block_txs}.db"
    done = directory / f"chain-{txs}-{block_txs}.json"
    genesis = directory / f"consortium-{txs}-{block_txs}.json"
    url = f"sqlite:///{db.resolve()}"
    if not rebuild and done.exists() and db.exists() and genesis.exists():
        _log(f"reusing {db} ({db.stat().st_size / 1e9:.2f} GB)")
        return url, read_consortium(genesis)
    for p in (done, genesis, db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        p.unlink(missing_ok=True)
    t = throwaway_consortium(parameters={"max_payload_bytes": 16384, "max_block_txs": max(block_txs, 2000)},
                             name="bench-audit")
    write_consortium(t.consortium, genesis)
    t0 = time.perf_counter()
    blocks = build_chain_db(url, t, txs=txs, block_txs=block_txs, workers=workers)
    dt = time.perf_counter() - t0
    _log(f"built {blocks:,} blocks, {txs:,} transactions in {dt:.0f} s ({txs / dt:,.0f} tx/s)")
    done.write_text(json.dumps({"txs": txs, "block_txs": block_txs, "blocks": blocks, "build_seconds": round(dt, 1),
                                "genesis_hash": t.consortium.genesis_hash}) + "\n", encoding="utf-8")
    return url, t.consortium



def _log(msg: str) -> None:
    print(f"[bench-audit] {msg}", file=sys.stderr, flush=True)
