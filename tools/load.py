"""A steady stream of valid signed transactions against a running consortium, with latency figures."""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from ledger.core.crypto import PrivateKey
from ledger.core.transaction import Transaction
from ledger.store.keyfiles import read_private_key
from ledger.testing import CST, iso, make_tx
from tools.local_consortium import desc_session

TxFactory = Callable[[int], Transaction]

#: connections per node the finality followers keep alive between them
FOLLOW_POOL = 256


def tx_factory(kind: str, key: PrivateKey, run_id: str) -> TxFactory:
    """Transactions valid under the consortium's state machine (``null`` or ``eticket``)."""
    if kind == "eticket":
        # Registrations with fresh ids: valid under the e-ticket rules, and they touch the state.
        def make_org(i: int) -> Transaction:
            payload = {"org_id": f"L{run_id[-8:]}-{i}", "name": f"压测运输企业{i}", "kind": "transport"}
            return Transaction.create(key=key, type="registry.org", payload=payload, actor="operator:load",
                                      timestamp=iso(datetime.now(CST)))

        return make_org

    def make(i: int) -> Transaction:
        return make_tx(key, i, at=datetime.now(CST))

    return make


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_load(desc_path: Path, *, seconds: float, rate: float, batch: int = 50,
             wait_final: bool = True, sample_every: int = 10, senders: int = 1) -> dict[str, Any]:
    """Offer ``rate`` tx/s for ``seconds`` round-robin over the nodes; measure submit-to-final latency.

    Open loop: transaction ``i`` is due at ``start + i / rate``.  Every ``flush`` interval (at most
    50 ms, or the time ``batch`` transactions take at this rate) the due transactions are signed and
    sent in requests of at most ``batch``.  Every ``sample_every``-th transaction is followed to
    finality by a waiter thread; its latency runs from its due time (so time spent waiting in this
    client, or behind a slow request, counts) to the answer "final".  At the end every accepted
    transaction is checked to be final on a node (``lost`` counts those that are not).

    ``senders`` is how many requests may be outstanding at once (each on its own connection): with 1, the
    default, a request is sent only once the previous one answered; with more, a slow answer (a server that
    answers once committed) does not hold back the transactions due after it.
    """
    desc = json.loads(desc_path.read_text(encoding="utf-8"))
    key = read_private_key(desc["gateway_key"])
    make = tx_factory(desc.get("state_machine", "null"), key, run_id=f"{time.time_ns():x}")
    urls = [n["url"] for n in desc["nodes"]]
    def new_session() -> requests.Session:
        return desc_session(desc, "gateway")

    session = new_session()
    latencies: list[float] = []
    lat_lock = threading.Lock()
    waiters: list[threading.Thread] = []
    accepted: list[str] = []
    rejected: dict[str, int] = {}
    errors = 0
    counter = itertools.count()

    # The followers share one session whose pool keeps a connection per waiting follower alive (a session
    # of their own per follower reconnected to each node it was sent to: a TLS handshake each time).
    followers = desc_session(desc, "gateway", pool=FOLLOW_POOL)

    def follow(url: str, tx_id: str, t0: float) -> None:
        try:
            r = followers.get(f"{url}/v1/transactions/{tx_id}", params={"wait": 20}, timeout=30)
            if r.status_code == 200 and r.json().get("status") == "final":
                with lat_lock:
                    latencies.append(time.monotonic() - t0)
        except requests.RequestException:
            pass

    flush = min(0.05, batch / rate)
    total = int(seconds * rate)
    start = time.monotonic()
    sent = 0
    tick = 0
    rr = itertools.cycle(urls)
    state_lock = threading.Lock()
    sender_sessions: queue.SimpleQueue[requests.Session] = queue.SimpleQueue()
    for _ in range(senders - 1):
        sender_sessions.put(new_session())
    sender_sessions.put(session)
    pool = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="load-send") if senders > 1 else None

    def send(first: int, txs: list[Transaction]) -> None:
        nonlocal errors
        s = sender_sessions.get()
        results = None
        url = ""
        body = {"transactions": [t.to_dict() for t in txs]}
        try:
            for _ in range(len(urls)):  # clients may submit to any node: fail over
                with state_lock:
                    url = next(rr)
                try:
                    r = s.post(f"{url}/v1/transactions", json=body, timeout=10)
                    results = r.json()["results"]
                    break
                except (requests.RequestException, ValueError, KeyError):
                    continue
        finally:
            sender_sessions.put(s)
        with state_lock:
            if results is None:
                errors += len(txs)
                return
            for tx, res in zip(txs, results, strict=True):
                if res["status"] in ("accepted", "known"):
                    accepted.append(tx.tx_id)
                else:
                    rejected[res.get("reason", "?")] = rejected.get(res.get("reason", "?"), 0) + 1
            for i, tx in enumerate(txs):
                if (first + i) % sample_every == 0:
                    due_at = start + (first + i) / rate
                    th = threading.Thread(target=follow, args=(url, tx.tx_id, due_at), daemon=True)
                    th.start()
                    waiters.append(th)

    jobs: list[Future[None]] = []
    while sent < total:
        tick += 1
        pause = start + tick * flush - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        due = min(int((time.monotonic() - start) * rate), total) - sent
        while due > 0:  # everything due now, in requests of at most `batch`
            n = min(due, batch)
            txs = [make(next(counter)) for _ in range(n)]
            if pool is None:
                send(sent, txs)
            else:
                jobs.append(pool.submit(send, sent, txs))
            sent += n
            due -= n
    if pool is not None:
        for job in jobs:
            job.result()
        pool.shutdown()
    elapsed = time.monotonic() - start
    for th in waiters:
        th.join(timeout=30)
    followers.close()
    lost = 0
    final_at = time.monotonic()
    if wait_final and accepted:
        lost = count_not_final(urls, accepted, http=new_session())
    return {
        "offered_rate": rate,
        "seconds": round(elapsed, 2),
        "submitted": sent,
        "accepted": len(accepted),
        "rejected": rejected,
        "errors": errors,
        "lost": lost,
        "latency_p50_s": round(_pct(latencies, 0.5), 4),
        "latency_p99_s": round(_pct(latencies, 0.99), 4),
        "latency_samples": len(latencies),
        "drain_seconds": round(time.monotonic() - final_at, 2),
        "tx_ids_sample": accepted[:3],
        "accepted_ids": accepted,
    }


def count_not_final(urls: list[str], tx_ids: list[str], *, timeout: float = 60.0,
                    http: requests.Session | None = None) -> int:
    """How many of ``tx_ids`` are not final on any reachable node after ``timeout`` (asked over ``http``:
    a session with a member's client certificate for TLS nodes)."""
    deadline = time.monotonic() + timeout
    missing = list(tx_ids)
    s = http or requests.Session()
    while missing and time.monotonic() < deadline:
        still: list[str] = []
        for url in urls:
            try:
                for i in range(0, len(missing), 1000):
                    chunk = missing[i : i + 1000]
                    r = s.post(f"{url}/v1/transactions/status", json={"tx_ids": chunk}, timeout=30)
                    st = r.json()["statuses"]
                    still.extend(t for t in chunk if st.get(t) != "final")
                break
            except (requests.RequestException, ValueError, KeyError):
                continue
        else:
            still = missing
        missing = still
        if missing:
            time.sleep(0.5)
    return len(missing)
