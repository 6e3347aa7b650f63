"""Test helpers shipped with the package: throwaway consortia and chains of N blocks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ledger.block import VALID, Block, BlockHeader, make_header, sign_header
from ledger.consortium import Consortium, MemberSpec, create
from ledger.crypto import PrivateKey
from ledger.store import LedgerStore
from ledger.transaction import Transaction
from ledger.tree import CompactRange

CST = timezone(timedelta(hours=8))

#: The four approving departments of the load model, as node members.
DEPARTMENTS: tuple[tuple[str, str], ...] = (
    ("chengguan", "城市管理局"),
    ("zhujian", "住房和城乡建设委员会"),
    ("jiaotong", "交通运输局"),
    ("shengtai", "生态环境局"),
)


def iso(t: datetime) -> str:
    """ISO 8601 in China Standard Time, millisecond precision (e.g. 2026-11-23T22:15:00.000+08:00)."""
    return t.astimezone(CST).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Throwaway:
    """A consortium with its private keys, for tests and demos."""

    consortium: Consortium
    keys: Mapping[str, PrivateKey]

    @property
    def gateway(self) -> PrivateKey:
        return self.keys["gateway"]

    def node_keys(self) -> list[PrivateKey]:
        return [self.keys[m.name] for m in self.consortium.nodes]


def throwaway_consortium(
    *,
    nodes: int = 4,
    parameters: Mapping[str, Any] | None = None,
    keys_dir: str | Path | None = None,
    name: str = "test-chain",
) -> Throwaway:
    """``nodes`` department nodes (城管, 住建, 交通, 生态环境, then extra), plus a ``gateway``."""
    specs = []
    for i in range(nodes):
        if i < len(DEPARTMENTS):
            n, org = DEPARTMENTS[i]
        else:
            n, org = f"node{i}", f"成员单位{i}"
        specs.append(MemberSpec(name=n, org=org, roles=("node", "approver")))
    specs.append(MemberSpec(name="gateway", org="治理中心接口服务", roles=("gateway",)))
    consortium, keys = create(
        name=name,
        origin=f"muck-ledger.example/{name}",
        members=specs,
        parameters=parameters,
        keys_dir=keys_dir,
    )
    return Throwaway(consortium=consortium, keys=keys)


def make_tx(key: PrivateKey, i: int, *, at: datetime | None = None, size: int = 0) -> Transaction:
    """A small, valid, signed demo transaction numbered ``i``."""
    at = at or datetime(2026, 11, 23, 22, 0, tzinfo=CST) + timedelta(milliseconds=i)
    payload: dict[str, Any] = {"n": i, "plate": "渝A12345", "volume_m3": 15}
    if size:
        payload["pad"] = "x" * size
    return Transaction.create(
        key=key, type="demo.record", payload=payload, actor=f"test:{i % 7}", timestamp=iso(at)
    )


def next_block(
    *,
    previous: BlockHeader | None,
    log: CompactRange,
    t: Throwaway,
    txs: Sequence[Transaction],
    codes: Sequence[str] | None = None,
    signers: int | None = None,
    timestamp: str | None = None,
) -> tuple[Block, CompactRange]:
    """Build and co-sign the block after ``previous`` (all nodes sign unless ``signers`` says)."""
    codes = list(codes) if codes is not None else [VALID] * len(txs)
    height = 0 if previous is None else previous.height + 1
    ts = timestamp or iso(datetime(2026, 11, 23, 22, 0, tzinfo=CST) + timedelta(seconds=height))
    header, after = make_header(
        previous=previous,
        genesis_hash=t.consortium.genesis_hash,
        transactions=txs,
        codes=codes,
        log=log,
        timestamp=ts,
        proposer=t.consortium.nodes[0].name,
    )
    keys = t.node_keys()[: signers if signers is not None else len(t.node_keys())]
    sigs = tuple(sign_header(header, k) for k in keys)
    return Block(header, tuple(txs), tuple(codes), sigs), after


def build_chain(
    t: Throwaway,
    *,
    blocks: int,
    txs_per_block: int,
    store: LedgerStore | None = None,
    start: int = 0,
) -> list[Block]:
    """Build ``blocks`` co-signed blocks of demo transactions, appending them to ``store`` if given."""
    previous = store.head() if store is not None else None
    log = store.compact_range() if store is not None else CompactRange()
    out: list[Block] = []
    n = start
    for _ in range(blocks):
        txs = [make_tx(t.gateway, n + j) for j in range(txs_per_block)]
        n += txs_per_block
        block, log = next_block(previous=previous, log=log, t=t, txs=txs)
        if store is not None:
            store.append(block, t.consortium, check_signatures=False)
        out.append(block)
        previous = block.header
    return out
