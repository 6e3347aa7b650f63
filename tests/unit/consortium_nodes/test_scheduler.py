"""The tick scheduler on real Nodes wired in memory: one tick per interval from the elected node only."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from node_fakes import Cluster, ElectionBoard

from consortium_nodes.scheduler import FixedElection, Scheduler
from ledger.core.transaction import Transaction


def _ticks(cluster: Cluster) -> list[Transaction]:
    """Every system.tick the orderer holds, in order, each once: a transaction the durable pool proposed
    again (not in a block 15 s after it was ordered, which the fake clock reaches) has the same id, and the
    builder puts only its first copy on the chain."""
    out, seen = [], set()
    for batch in cluster.orderer.read(-1, limit=10_000):
        for raw in batch.txs:
            tx = Transaction.from_dict(json.loads(raw))
            if tx.type == "system.tick" and tx.tx_id not in seen:
                seen.add(tx.tx_id)
                out.append(tx)
    return out


def _round(cluster: Cluster, seconds: float = 0.0) -> None:
    """Advance every clock, run each node's scheduler once and order what they submitted."""
    cluster.now += timedelta(seconds=seconds)
    for node in cluster.nodes.values():
        if node.scheduler is not None:
            node.scheduler.step()
        node.batcher.step()


def test_solo_leader_ticks_once_per_interval(cluster: Cluster) -> None:
    """The solo orderer's node ticks at each interval boundary, once per interval, signed by its key and
    naming it; the other nodes never tick; /status shows the scheduler with the last tick in +08:00."""
    leader = cluster.add("chengguan", election=FixedElection(leader=True), tick_interval=60)
    other = cluster.add("zhujian", election=FixedElection(leader=False), tick_interval=60)
    _round(cluster)  # it takes over mid-interval: the first tick waits for the next boundary
    assert _ticks(cluster) == []
    for _ in range(6):
        _round(cluster, 20)
    ticks = _ticks(cluster)
    assert len(ticks) == 2  # 120 s: two boundaries crossed
    assert {t.submitter for t in ticks} == {leader.key.key_id}
    assert {t.actor for t in ticks} == {"system:scheduler:chengguan"}
    slots = [int(t.time.timestamp() // 60) for t in ticks]
    assert len(set(slots)) == len(slots)
    st = leader.status()["scheduler"]
    assert st["leader"] is True and st["ticks"] == 2 and st["last_tick"].endswith("+08:00")
    assert other.status()["scheduler"]["leader"] is False and other.status()["scheduler"]["ticks"] == 0


def test_resubmitting_a_slot_is_the_same_transaction(cluster: Cluster) -> None:
    """The tick of one slot is one transaction: built twice by the same node it has the same id."""
    node = cluster.add("chengguan", election=FixedElection(leader=True), tick_interval=60)
    assert node.scheduler is not None
    a = node.scheduler.tick_tx(cluster.now, 7)
    b = node.scheduler.tick_tx(cluster.now, 7)
    assert a.tx_id == b.tx_id and node.scheduler.tick_tx(cluster.now, 8).tx_id != a.tx_id


def test_takeover_when_the_leader_dies(cluster: Cluster) -> None:
    """Of three nodes campaigning one leads; when it dies (stops renewing) another takes over after the
    lease lapses and ticks continue; never two ticks in one interval."""
    board = ElectionBoard(cluster, ttl=3.0)
    elections = {n: board.election(n) for n in ("chengguan", "zhujian", "jiaotong")}
    for n, e in elections.items():
        cluster.add(n, election=e, tick_interval=2)
    for _ in range(10):
        _round(cluster, 1)
    first = board.holder
    assert first is not None
    assert [n for n, node in cluster.nodes.items() if node.scheduler and node.scheduler.leader] == [first]
    before = len(_ticks(cluster))
    assert before >= 4
    elections[first].dead = True
    cluster.nodes[first].scheduler = None  # the process is gone
    for _ in range(12):
        _round(cluster, 1)
    assert board.holder not in (None, first)
    ticks = _ticks(cluster)
    assert len(ticks) >= before + 3
    assert cluster.t.keys[board.holder].key_id in {t.submitter for t in ticks[before:]}
    slots = [int(t.time.timestamp() // 2) for t in ticks]
    assert len(set(slots)) == len(slots)


def test_run_resigns_at_stop(cluster: Cluster) -> None:
    """The scheduler's thread leaves its loop when the stop event is set and gives up the leadership."""
    board = ElectionBoard(cluster)
    node = cluster.add("chengguan")
    stop = threading.Event()
    sched = Scheduler(name="chengguan", key=node.key, election=board.election("chengguan"), interval=1,
                      submit=node.submit, clock=lambda: cluster.now, stop=stop)
    t = threading.Thread(target=sched.run)
    t.start()
    stop.set()
    t.join(timeout=5)
    assert not t.is_alive() and board.holder is None
