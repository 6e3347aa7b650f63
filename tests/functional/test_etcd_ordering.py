"""EtcdOrderer against a real 3-member etcd cluster on loopback: order, waiting reads, failover, limits."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from consortium_nodes.etcd_orderer import (
    MAX_BATCH_BYTES,
    BatchesForgottenError,
    BatchTooLargeError,
    EtcdOrderer,
)
from consortium_nodes.ordering import Batch, OrderingError
from tools.etcd_cluster import EtcdCluster
from tools.proc import free_ports

try:
    from .etcd_fixtures import ensure_all_running, requires_etcd, run_python, running_cluster
except ImportError:  # tests/functional is not a package: pytest put it on sys.path
    from etcd_fixtures import ensure_all_running, requires_etcd, run_python, running_cluster

pytestmark = requires_etcd

APPENDER = """
import json, sys
from consortium_nodes.etcd_orderer import EtcdOrderer
endpoints, chain, who, count = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
with EtcdOrderer(endpoints=endpoints, chain=chain) as o:
    seqs = [o.append(proposer=who, timestamp="2025-06-07T16:10:00+08:00",
                     txs=[json.dumps({"who": who, "i": i}).encode()]) for i in range(count)]
print(json.dumps(seqs))
"""


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with running_cluster(tmp_path_factory.mktemp("etcd") / "cluster") as cluster:
        yield cluster


@pytest.fixture()
def cluster(module_cluster: EtcdCluster) -> EtcdCluster:
    ensure_all_running(module_cluster)
    return module_cluster


def _orderer(cluster: EtcdCluster, chain: str, **options: object) -> EtcdOrderer:
    return EtcdOrderer.connect(endpoints=cluster.endpoints, chain=chain, **options)


def _tx(who: str, i: int) -> bytes:
    return json.dumps({"who": who, "i": i}).encode()


def _read_all(orderer: EtcdOrderer, after: int = -1) -> list[Batch]:
    out: list[Batch] = []
    while True:
        got = orderer.read(after, limit=50)
        if not got:
            return out
        out.extend(got)
        after = got[-1].seq


def test_concurrent_appends_from_threads_and_processes_get_unique_consecutive_seqs(
    cluster: EtcdCluster,
) -> None:
    """Appends from 4 threads and 3 processes at once get distinct, consecutive seqs from 0, and reading
    back yields every batch exactly once, in seq order, with the content its proposer appended."""
    per_worker = 20
    procs = [
        run_python(APPENDER, json.dumps(cluster.endpoints), "concurrent", f"proc{p}", str(per_worker))
        for p in range(3)
    ]
    results: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    with _orderer(cluster, "concurrent") as orderer:

        def worker(who: str) -> None:
            try:
                results[who] = [
                    orderer.append(proposer=who, timestamp="t", txs=[_tx(who, i)]) for i in range(per_worker)
                ]
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(f"thread{t}",)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for p, proc in enumerate(procs):
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            results[f"proc{p}"] = json.loads(out)
        assert not errors

        total = 7 * per_worker
        all_seqs = sorted(s for seqs in results.values() for s in seqs)
        assert all_seqs == list(range(total))
        assert orderer.head() == total - 1

        batches = _read_all(orderer)
        assert [b.seq for b in batches] == list(range(total))
        for who, seqs in results.items():
            assert seqs == sorted(seqs)  # one proposer's appends keep its own order
            for i, seq in enumerate(seqs):
                assert batches[seq].proposer == who
                assert batches[seq].txs == (_tx(who, i),)


@pytest.mark.parametrize("wait_mode", ["watch", "poll"])
def test_read_with_wait_returns_promptly_on_append_and_empty_after_timeout(
    cluster: EtcdCluster, wait_mode: str
) -> None:
    """A read waiting for new batches returns within a fraction of a second of an append (by etcd watch or
    by polling), and returns [] once ``wait`` has passed without a batch."""
    chain = f"wait-{wait_mode}"
    with _orderer(cluster, chain, wait_mode=wait_mode) as reader, _orderer(cluster, chain) as writer:
        start = time.monotonic()
        assert reader.read(-1, wait=0.4) == []
        assert 0.35 <= time.monotonic() - start < 2.0

        got: list[Batch] = []
        returned_at: list[float] = []

        def wait_for_batch() -> None:
            got.extend(reader.read(-1, wait=10))
            returned_at.append(time.monotonic())

        t = threading.Thread(target=wait_for_batch)
        t.start()
        time.sleep(0.3)
        appended_at = time.monotonic()
        seq = writer.append(proposer="a", timestamp="t", txs=[b"{}"])
        t.join(10)
        assert [b.seq for b in got] == [seq] == [0]
        assert returned_at[0] - appended_at < 0.5


class _Appenders:
    """Three threads appending one-transaction batches through ``orderer`` until the block ends; ``returned``:
    ``(seq, who, i)`` of every append that returned, ``failures`` the errors that stopped a thread."""

    def __init__(self, orderer: EtcdOrderer, threads: int = 3) -> None:
        self.orderer = orderer
        self.returned: list[tuple[int, str, int]] = []
        self.failures: list[BaseException] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, args=(f"w{t}",)) for t in range(threads)]

    def _work(self, who: str) -> None:
        i = 0
        while not self._stop.is_set():
            try:
                seq = self.orderer.append(proposer=who, timestamp="t", txs=[_tx(who, i)])
            except OrderingError as exc:
                self.failures.append(exc)
                return
            with self.lock:
                self.returned.append((seq, who, i))
            i += 1

    def count(self) -> int:
        with self.lock:
            return len(self.returned)

    def until(self, count: int, timeout: float = 30.0) -> None:
        """Wait until ``count`` appends returned."""
        deadline = time.monotonic() + timeout
        while self.count() < count:
            assert time.monotonic() < deadline, f"only {self.count()} of {count} appends returned"
            time.sleep(0.05)

    def __enter__(self) -> _Appenders:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def assert_ordered_once(self) -> list[Batch]:
        """The order has no gaps and holds every returned append exactly once at its seq, and nothing else."""
        head = self.orderer.head()
        batches = _read_all(self.orderer)
        assert [b.seq for b in batches] == list(range(head + 1))  # no gaps, no duplicate seqs
        for seq, who, i in self.returned:
            assert batches[seq].proposer == who and batches[seq].txs == (_tx(who, i),)
        assert len(self.returned) == head + 1  # and nothing appended that no caller got back
        return batches


def test_leader_kill_during_appends_loses_and_duplicates_nothing(cluster: EtcdCluster) -> None:
    """kill -9 of the etcd leader while 3 threads append: ordering continues after the election, every
    append that returned is present exactly once at its seq, and the order has no gaps or duplicates."""
    with _orderer(cluster, "failover", request_timeout=1.0) as orderer:
        with _Appenders(orderer) as load:
            time.sleep(0.7)
            leader = cluster.leader()
            cluster.kill(leader)
            before_kill = load.count()
            new_leader = cluster.leader()
            time.sleep(1.5)
        assert not load.failures, load.failures
        assert new_leader != leader
        assert load.count() > before_kill + 5, "ordering did not continue after the election"
        cluster.restart(leader)
        batches = load.assert_ordered_once()
        contents = [(b.proposer, b.txs) for b in batches]
        assert len(set(contents)) == len(contents)  # no batch written twice


def test_rolling_restart_restarts_every_member_while_appends_go_on(cluster: EtcdCluster) -> None:
    """A rolling restart (what a changed trusted CA bundle takes: etcd reads it only when it starts) restarts
    every member once, one at a time, the leader last: each member runs as a new process afterwards, the
    cluster is healthy with a leader, appends from 3 threads go on through it (none fails, some return while
    members restart) and the order has every returned append exactly once, without gaps."""
    before = cluster.pids
    leader = cluster.leader()
    with _orderer(cluster, "rolling", request_timeout=1.0) as orderer:
        with _Appenders(orderer) as load:
            load.until(10)
            at_start = load.count()
            order = cluster.rolling_restart()
            at_end = load.count()
            load.until(at_end + 10)
        assert not load.failures, load.failures
        assert sorted(order) == sorted(cluster.names) and order[-1] == leader
        after = cluster.pids
        assert all(after[n] is not None and after[n] != before[n] for n in cluster.names), (before, after)
        cluster.wait_healthy(timeout=5)
        assert cluster.leader() in cluster.names
        assert at_end > at_start, "no append returned while the members restarted"
        load.assert_ordered_once()



def test_forget_removes_old_batches_and_reads_continue_after_them(cluster: EtcdCluster) -> None:
    """forget(upto) deletes batch keys <= upto from etcd, keeps the head, lets reads continue from
    upto, and a reader still behind gets BatchesForgottenError instead of a silent gap."""
    with _orderer(cluster, "forget") as orderer:
        for i in range(10):
            orderer.append(proposer="a", timestamp="t", txs=[_tx("a", i)])
        orderer.forget(5)
        assert orderer.head() == 9
        assert [b.seq for b in orderer.read(5)] == [6, 7, 8, 9]
        with pytest.raises(BatchesForgottenError, match="catch up from peers"):
            orderer.read(2)
        client = orderer._clients()[0]
        keys = [kv["key"] for _v, kv in client.get_prefix(orderer.prefix + "batch/")]
        assert keys == [f"{orderer.prefix}batch/{s:012d}".encode() for s in range(6, 10)]
        assert orderer.append(proposer="a", timestamp="t", txs=[b"{}"]) == 10
        assert [b.seq for b in orderer.read(9)] == [10]


def test_batch_over_size_limit_is_refused_and_nothing_written(cluster: EtcdCluster) -> None:
    """A batch whose record exceeds MAX_BATCH_BYTES raises BatchTooLargeError naming the limit and writes
    nothing; a batch just under the limit is accepted by etcd (the limit fits etcd's 1.5 MiB)."""
    with _orderer(cluster, "size") as orderer:
        with pytest.raises(BatchTooLargeError, match=r"over the etcd ordering limit of 1500000 bytes"):
            orderer.append(proposer="a", timestamp="t", txs=[b'"' + b"x" * MAX_BATCH_BYTES + b'"'])
        assert orderer.head() == -1
        assert orderer.read(-1) == []

        near = b'"' + b"y" * (MAX_BATCH_BYTES - 200) + b'"'
        assert orderer.append(proposer="a", timestamp="t", txs=[near]) == 0
        assert orderer.read(-1)[0].txs == (near,)


def test_unreachable_etcd_raises_ordering_error_after_bounded_retries(tmp_path: Path) -> None:
    """With no etcd member reachable, calls retry for ``retry_for`` seconds and then raise OrderingError
    naming the operation and every endpoint tried."""
    endpoints = [f"http://127.0.0.1:{p}" for p in free_ports(2)]
    orderer = EtcdOrderer(endpoints=endpoints, chain="nowhere", retry_for=0.8, request_timeout=0.3)
    start = time.monotonic()
    with pytest.raises(
        OrderingError, match=r"etcd unavailable for (read head|append) after 0.8 s over 2 endpoint"
    ) as err:
        orderer.append(proposer="a", timestamp="t", txs=[b"{}"])
    assert time.monotonic() - start < 3
    assert all(e in str(err.value) for e in endpoints)
    orderer.close()


def _alive(pid: int) -> bool:
    """True if ``pid`` runs (an exited child of a non-reaping PID 1 stays a zombie: not alive)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_shell_up_and_down_run_a_detached_cluster_usable_by_prefix(tmp_path: Path) -> None:
    """``python -m tools.etcd_cluster up`` leaves a healthy cluster running after it exits and
    describes it in cluster.json (pids, URLs); an orderer with ``prefix=`` works on it; ``down`` kills
    every member by pid."""
    base = tmp_path / "etcd"
    try:
        up = run_python("from tools.etcd_cluster import main; raise SystemExit(main())",
                        "up", "--dir", str(base), "--members", "3")  # fmt: skip
        _out, err = up.communicate(timeout=60)
        assert up.returncode == 0, err
        desc = json.loads((base / "cluster.json").read_text(encoding="utf-8"))
        pids = [m["pid"] for m in desc["members"]]
        assert len(pids) == 3 and all(_alive(p) for p in pids)
        with EtcdOrderer.connect(endpoints=desc["endpoints"], prefix="/muck/abcdef0123456789") as orderer:
            assert orderer.append(proposer="a", timestamp="t", txs=[b"{}"]) == 0
            assert orderer.prefix == "/muck/abcdef0123456789/"
        down = run_python("from tools.etcd_cluster import main; raise SystemExit(main())",
                          "down", "--dir", str(base))  # fmt: skip
        _out, err = down.communicate(timeout=60)
        assert down.returncode == 0, err
        assert not any(_alive(p) for p in pids)
    finally:
        EtcdCluster.stop_dir(base)
