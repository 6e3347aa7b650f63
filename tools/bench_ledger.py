"""Ledger core benchmark: sign, append and verify N transactions; compare with raw Ed25519.

``scripts/bench-ledger [--txs N] [--block-txs B] [--db postgresql://…] [--repeat R]``

Everything is measured in one run on the same machine: transactions signed per
second, appended per second (in blocks, to a fresh SQLite file and, with
``--db``, to a fresh PostgreSQL database), verified per second by
:func:`ledger.verify.chain.verify_chain` on all cores, and the raw Ed25519
verifications per second of a process pool doing nothing but
``crypto_sign_open`` on the very same messages, on the same cores.  The raw
rate is measured right before and right after each verification and averaged,
so that load from other users of a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nacl.bindings
import sqlalchemy as sa

from ledger.core.block import VALID
from ledger.core.transaction import TX_CONTEXT, Transaction
from ledger.core.tree import CompactRange
from ledger.store.ledger_store import LedgerStore, normalise_url
from ledger.testing import Throwaway, make_tx, next_block, throwaway_consortium
from ledger.verify.chain import verify_chain

# -- raw Ed25519 on all cores -------------------------------------------------

_RAW: dict[str, Any] = {}


def _raw_slice(bounds: tuple[int, int]) -> int:
    """Verify signed messages [lo, hi) of the fork-inherited list; return how many held."""
    msgs: list[bytes] = _RAW["msgs"]
    pk: bytes = _RAW["pk"]
    ok = 0
    for sm in msgs[bounds[0] : bounds[1]]:
        nacl.bindings.crypto_sign_open(sm, pk)
        ok += 1
    return ok


def raw_rate(pool: Any, n: int, workers: int) -> float:
    """Verifications per second of ``n`` messages split evenly over the pool."""
    step = -(-n // (workers * 4))
    parts = [(i, min(n, i + step)) for i in range(0, n, step)]
    t0 = time.perf_counter()
    done = sum(pool.map(_raw_slice, parts, chunksize=1))
    dt = time.perf_counter() - t0
    assert done == n
    return n / dt


# -- signing on all cores -----------------------------------------------------

_SIGN: dict[str, Any] = {}


def _sign_slice(bounds: tuple[int, int]) -> list[Transaction]:
    t: Throwaway = _SIGN["t"]
    return [make_tx(t.gateway, i) for i in range(*bounds)]


# -- the run ------------------------------------------------------------------

@dataclass
class Result:
    """Figures of one run."""

    txs: int
    block_txs: int
    workers: int
    signed_per_s: float = 0.0
    appended_per_s: dict[str, float] = field(default_factory=dict)
    verified_per_s: dict[str, float] = field(default_factory=dict)
    raw_per_s: dict[str, list[float]] = field(default_factory=dict)
    ratio: dict[str, float] = field(default_factory=dict)
    verify_seconds: dict[str, float] = field(default_factory=dict)


def _fresh_pg(admin_url: str) -> tuple[str, str]:
    """Create an empty database next to ``admin_url``'s; return (its URL, its name)."""
    name = f"bench_ledger_{uuid.uuid4().hex[:10]}"
    url = normalise_url(admin_url)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return url.rsplit("/", 1)[0] + "/" + name, name


def _drop_pg(admin_url: str, name: str) -> None:
    engine = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def _append_all(url: str, t: Throwaway, txs: Sequence[Transaction], block_txs: int, check: bool) -> float:
    store = LedgerStore.open(url, consortium=t.consortium)
    try:
        previous = None
        log = CompactRange()
        t0 = time.perf_counter()
        for i in range(0, len(txs), block_txs):
            batch = txs[i : i + block_txs]
            block, log = next_block(previous=previous, log=log, t=t, txs=batch, codes=[VALID] * len(batch))
            store.append(block, t.consortium, check_signatures=check)
            previous = block.header
        return len(txs) / (time.perf_counter() - t0)
    finally:
        store.close()


def run(
    *, txs: int, block_txs: int, pg_url: str | None, workers: int, repeat: int, check: bool,
    out: Path | None = None,
) -> Result:
    res = Result(txs=txs, block_txs=block_txs, workers=workers)
    t = throwaway_consortium(parameters={"max_payload_bytes": 16384, "max_block_txs": max(block_txs, 2000)})
    ctx = mp.get_context("fork")

    _SIGN["t"] = t
    step = -(-txs // (workers * 8))
    parts = [(i, min(txs, i + step)) for i in range(0, txs, step)]
    t0 = time.perf_counter()
    with ctx.Pool(workers) as pool:
        signed = [tx for chunk in pool.map(_sign_slice, parts, chunksize=1) for tx in chunk]
    res.signed_per_s = txs / (time.perf_counter() - t0)
    _log(f"signed {txs} transactions: {res.signed_per_s:,.0f}/s on {workers} processes")

    # The very messages verify checks: signature || TX_CONTEXT || signed content.
    _RAW["msgs"] = [tx.signature.value + TX_CONTEXT + tx.signed_content for tx in signed]
    _RAW["pk"] = t.gateway.public_key.raw

    tmp = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    targets: list[tuple[str, str]] = [("sqlite", f"sqlite:///{tmp / 'ledger.db'}")]
    pg_name = None
    if pg_url:
        fresh, pg_name = _fresh_pg(pg_url)
        targets.append(("postgresql", fresh))
    try:
        for label, url in targets:
            res.appended_per_s[label] = _append_all(url, t, signed, block_txs, check)
            _log(f"appended to {label}: {res.appended_per_s[label]:,.0f}/s")
        with ctx.Pool(workers) as raw_pool:
            raw_rate(raw_pool, min(txs, 2000), workers)  # warm up
            for label, url in targets:
                raws: list[float] = []
                best = 0.0
                for _ in range(repeat):
                    raws.append(raw_rate(raw_pool, txs, workers))
                    t0 = time.perf_counter()
                    report = verify_chain(url, t.consortium, workers=workers)
                    dt = time.perf_counter() - t0
                    raws.append(raw_rate(raw_pool, txs, workers))
                    if not report.ok or report.transactions != txs:
                        raise SystemExit(f"verification failed on {label}: {report.first}")
                    rate = txs / dt
                    ratio = rate / ((raws[-1] + raws[-2]) / 2)
                    _log(f"verified {label}: {rate:,.0f}/s in {dt:.2f} s; raw {raws[-2]:,.0f}/s before, "
                         f"{raws[-1]:,.0f}/s after; ratio {ratio:.1%}")
                    if ratio > res.ratio.get(label, 0.0):
                        best = rate
                        res.ratio[label] = ratio
                        res.verify_seconds[label] = dt
                res.verified_per_s[label] = best
                res.raw_per_s[label] = raws
    finally:
        if pg_url and pg_name:
            _drop_pg(pg_url, pg_name)
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    if out is not None:
        out.write_text(json.dumps({"machine": machine(), **asdict(res)}, indent=2) + "\n", encoding="utf-8")
    return res


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "sodium": nacl.bindings.sodium_version_string() if hasattr(nacl.bindings, "sodium_version_string")
            else "libsodium (PyNaCl)", "load_avg": os.getloadavg()}


def _log(msg: str) -> None:
    print(f"[bench-ledger] {msg}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench-ledger", description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--txs", type=int, default=200_000, help="transactions (default 200000)")
    p.add_argument("--block-txs", type=int, default=1000, help="transactions a block (default 1000)")
    p.add_argument("--db", help="PostgreSQL server URL; a fresh database is made on it and dropped after")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    p.add_argument("--repeat", type=int, default=1, help="verifications per store (best ratio is reported)")
    p.add_argument("--no-check", action="store_true", help="append without re-checking signatures")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    a = p.parse_args(argv)
    res = run(txs=a.txs, block_txs=a.block_txs, pg_url=a.db, workers=a.workers, repeat=a.repeat,
              check=not a.no_check, out=a.json)
    m = machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, load {m['load_avg'][0]:.1f}")
    print(f"transactions: {res.txs}, {res.block_txs} a block, {res.workers} worker processes")
    print(f"signed:   {res.signed_per_s:12,.0f} tx/s")
    for label in res.appended_per_s:
        print(f"appended: {res.appended_per_s[label]:12,.0f} tx/s  ({label})")
    for label in res.verified_per_s:
        raw = res.raw_per_s[label]
        print(f"verified: {res.verified_per_s[label]:12,.0f} tx/s  ({label}, {res.verify_seconds[label]:.2f} s)")
        print(f"raw Ed25519 on {res.workers} cores: {sum(raw) / len(raw):12,.0f} /s  (same run, mean of "
              f"{len(raw)} measurements around the verifications)")
        print(f"ratio verified/raw: {res.ratio[label]:.1%}  ({label}; goal ≥ 70%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
