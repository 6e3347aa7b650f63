"""Deterministic demo chains: numbered demo transactions in blocks co-signed by every node key.

What ``ledger demo`` appends to a store, and what :mod:`ledger.testing` builds test chains from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ledger.core.block import VALID, Block, BlockHeader, make_header, sign_header
from ledger.core.consortium import Consortium
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ, iso
from ledger.core.transaction import Transaction
from ledger.core.tree import CompactRange
from ledger.store.ledger_store import LedgerStore

#: When demo chains start: a busy night's first minutes.
DEMO_START = datetime(2026, 11, 23, 22, 0, tzinfo=CHINA_TZ)


def make_tx(key: PrivateKey, i: int, *, at: datetime | None = None, size: int = 0) -> Transaction:
    """A small, valid, signed demo transaction numbered ``i``."""
    at = at or DEMO_START + timedelta(milliseconds=i)
    payload: dict[str, Any] = {"n": i, "plate": "渝A12345", "volume_m3": 15}
    if size:
        payload["pad"] = "x" * size
    return Transaction.create(
        key=key, type="demo.record", payload=payload, actor=f"test:{i % 7}", timestamp=iso(at)
    )


def cosigned_block(
    *,
    previous: BlockHeader | None,
    log: CompactRange,
    consortium: Consortium,
    node_keys: Sequence[PrivateKey],
    txs: Sequence[Transaction],
    codes: Sequence[str] | None = None,
    timestamp: str | None = None,
) -> tuple[Block, CompactRange]:
    """Build the block after ``previous`` and sign its header with each of ``node_keys``."""
    codes = list(codes) if codes is not None else [VALID] * len(txs)
    height = 0 if previous is None else previous.height + 1
    ts = timestamp or iso(DEMO_START + timedelta(seconds=height))
    header, after = make_header(
        previous=previous,
        genesis_hash=consortium.genesis_hash,
        transactions=txs,
        codes=codes,
        log=log,
        timestamp=ts,
        proposer=consortium.nodes[0].name,
    )
    sigs = tuple(sign_header(header, k) for k in node_keys)
    return Block(header, tuple(txs), tuple(codes), sigs), after


def build_chain(
    consortium: Consortium,
    keys: Mapping[str, PrivateKey],
    *,
    blocks: int,
    txs_per_block: int,
    store: LedgerStore | None = None,
    start: int = 0,
) -> list[Block]:
    """``blocks`` co-signed blocks of demo transactions signed by ``keys["gateway"]``, appended to ``store``."""
    previous = store.head() if store is not None else None
    log = store.compact_range() if store is not None else CompactRange()
    node_keys = [keys[m.name] for m in consortium.nodes]
    out: list[Block] = []
    n = start
    for _ in range(blocks):
        txs = [make_tx(keys["gateway"], n + j) for j in range(txs_per_block)]
        n += txs_per_block
        block, log = cosigned_block(previous=previous, log=log, consortium=consortium, node_keys=node_keys, txs=txs)
        if store is not None:
            store.append(block, consortium, check_signatures=False)
        out.append(block)
        previous = block.header
    return out
