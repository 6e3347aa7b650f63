"""Test helpers shipped with the package: throwaway consortia and chains of N blocks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.core.block import Block, BlockHeader
from ledger.core.consortium import DEPARTMENTS, Consortium, new_consortium
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ, iso
from ledger.core.transaction import Transaction
from ledger.core.tree import CompactRange
from ledger.store import demo_chain
from ledger.store.demo_chain import cosigned_block, make_tx
from ledger.store.keyfiles import write_keys
from ledger.store.ledger_store import LedgerStore

__all__ = ["CST", "DEPARTMENTS", "Throwaway", "build_chain", "iso", "make_tx", "next_block", "throwaway_consortium"]

CST = CHINA_TZ


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
    """``nodes`` department nodes (城管, 住建, 交通, 生态环境, then extra), plus a ``gateway``; keys written
    to ``keys_dir`` as ``NAME.pem`` when given."""
    consortium, keys = new_consortium(nodes=nodes, parameters=parameters, name=name)
    if keys_dir is not None:
        write_keys(keys, keys_dir)
    return Throwaway(consortium=consortium, keys=keys)


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
    keys = t.node_keys()[: signers if signers is not None else len(t.node_keys())]
    return cosigned_block(previous=previous, log=log, consortium=t.consortium, node_keys=keys, txs=txs,
                          codes=codes, timestamp=timestamp)


def build_chain(
    t: Throwaway,
    *,
    blocks: int,
    txs_per_block: int,
    store: LedgerStore | None = None,
    start: int = 0,
) -> list[Block]:
    """Build ``blocks`` co-signed blocks of demo transactions, appending them to ``store`` if given."""
    return demo_chain.build_chain(t.consortium, t.keys, blocks=blocks, txs_per_block=txs_per_block, store=store,
                                  start=start)
