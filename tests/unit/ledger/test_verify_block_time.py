"""ledger.verify.chain flags block times that go backwards between blocks."""

from __future__ import annotations

import pytest

from ledger.core.block import Block, make_header, sign_header
from ledger.core.tree import CompactRange
from ledger.store.ledger_store import LedgerStore
from ledger.testing import throwaway_consortium
from ledger.verify.chain import verify_chain


def _block(t, previous, log, timestamp: str) -> tuple[Block, CompactRange]:
    header, after = make_header(previous=previous, genesis_hash=t.consortium.genesis_hash, transactions=[], codes=[],
                                log=log, timestamp=timestamp, proposer=t.consortium.nodes[0].name)
    return Block(header, (), (), tuple(sign_header(header, k) for k in t.node_keys())), after


def test_block_timed_before_the_previous_one_is_a_problem(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fully certified chain whose block 1 is timed before block 0 (a store written around the nodes' rule
    that block time never goes backwards) fails verification with a ``block_time`` problem at block 1; the
    same chain with monotonic times verifies."""
    t = throwaway_consortium(nodes=4)
    for name, times, ok in [("good", ("2026-11-23T22:15:00+08:00", "2026-11-23T22:15:00+08:00"), True),
                            ("bad", ("2026-11-23T22:15:00+08:00", "2026-11-23T21:00:00+08:00"), False)]:
        url = f"sqlite:///{tmp_path / (name + '.db')}"
        store = LedgerStore.open(url, consortium=t.consortium)
        monkeypatch.setattr("ledger.store.ledger_store.check_link", lambda *a, **k: None)
        b0, log = _block(t, None, CompactRange(), times[0])
        store.append(b0, t.consortium)
        b1, _ = _block(t, b0.header, log, times[1])
        store.append(b1, t.consortium)
        store.close()
        monkeypatch.undo()
        report = verify_chain(url, t.consortium, workers=1)
        assert report.ok is ok, report.problems
        if not ok:
            assert [(p.kind, p.height) for p in report.problems] == [("block_time", 1)]
