"""``scripts/bench-api``: exit-gate scans through gunicorn at a paced load, and offline QR verification.

Starts the embedded default stack (``python -m tools.serve``: 4 ledger nodes, fake WeChat, the API under
gunicorn) in a temporary directory on free ports, applies for one permit with a large quota for the demo
contractor (every truck of company C-01), has the four departments approve it, issues ``rate × seconds``
tickets on as many newly registered trucks (a truck with a departed ticket cannot leave again), then drives
``POST /api/v1/gate/exit`` open loop: request ``i`` is scheduled at ``t0 + i / rate`` and handed to the first
free one of ``--scanners`` threads; latency runs from the scheduled time to the answer, so a backlog shows
up in the figures (no coordinated omission).  Reports achieved scans/s, p50/p90/p99/max latency, refusals
by reason, CPU milliseconds per accepted scan of the API workers and of the nodes (from /proc, from the
load's start until every scan is final), offline ``verify_ticket`` µs per ticket on a real issued QR, and the
raw Ed25519 verify rate of the same run (shared machines drift, ratios less).  ``--unsigned`` (a consortium
wanting only decisions signed, scans without the gate's signature) and ``--plain-nodes`` (nodes without
mutual TLS) are the A/B of what signed scans and mutual TLS cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from ledger.core.crypto import PrivateKey, PublicKey
from ledger.core.encoding import CHINA_TZ, iso
from ledger.eticket import acts
from ledger.eticket.acts import decision_body
from ledger.qrticket.gatecheck import normalise_plate
from ledger.qrticket.ticket import decode_ticket, verify_ticket
from tools.bench_footprint import stack_processes
from tools.proc import Child, tail

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def raw_ed25519_per_s(seconds: float = 1.0) -> float:
    key = PrivateKey.generate()
    msg = b"x" * 200
    sig = key.sign(msg)
    pk = key.public_key
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(200):
            pk.verify(msg, sig)
        n += 200
    return n / (time.perf_counter() - t0)


class Stack:
    """``python -m tools.serve`` in a temporary directory, stopped (with everything it started) on exit."""

    def __init__(self, var: Path, workers: int, threads: int, *, unsigned: bool = False,
                 plain_nodes: bool = False) -> None:
        self.var = var
        extra: list[str] = ["--plain-nodes"] if plain_nodes else []
        if unsigned:  # a consortium that wants only the decisions signed: gate scans go unsigned
            (var / "eticket.json").write_text(json.dumps({"act_signed": list(acts.DEFAULT_ACT_SIGNED)}),
                                              encoding="utf-8")
            extra += ["--eticket-params", str(var / "eticket.json")]
        self.child = Child("the stack (tools.serve)",
                           [sys.executable, "-m", "tools.serve", "--var", str(var), "--port", "0",
                            "--node-base-port", "0", "--wechat-port", "0", "--workers", str(workers),
                            "--threads", str(threads), *extra],
                           cwd=ROOT, log=var / "serve.out")
        deadline = time.monotonic() + 120
        while not (var / "serve.ready").exists():
            if not self.child.running() or time.monotonic() > deadline:
                self.stop()
                raise SystemExit("the stack did not start:\n" + tail(var / "serve.out", 40))
            time.sleep(0.3)
        self.api = (var / "serve.ready").read_text(encoding="utf-8")  # free ports, bound by the stack itself
        self.demo = json.loads((var / "demo.json").read_text(encoding="utf-8"))

    def decision(self, dept: str, permit_id: str, decision: str, comment: str | None) -> dict[str, Any]:
        """A decision body signed with the department's own approver key (``demo.json`` ``approver_keys``)."""
        key = PrivateKey.from_pem(Path(self.demo["approver_keys"][dept]).read_bytes())
        return decision_body(key, "permit.decide", permit_id, dept, decision, comment,
                             iso(datetime.now(CHINA_TZ), timespec="seconds"))

    def cpu_by_kind(self) -> dict[str, float]:
        """CPU seconds used so far by each part of the stack (nodes, API workers, …), from /proc."""
        out: dict[str, float] = {}
        for kind, cpu, _rss in stack_processes(self.child.pid, self.var).values():
            out[kind] = out.get(kind, 0.0) + cpu
        return out

    def stop(self) -> None:
        self.child.stop(60)


def call(session: requests.Session, method: str, url: str, token: str, body: Any = None,
         ok: tuple[int, ...] = (200, 201), retry_on: str | None = None, wait: bool = True) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Accept-Language": "en"}
    if not wait:
        headers["Prefer"] = "respond-async"
    for _ in range(100):
        key = uuid.uuid4().hex
        for attempt in range(4):  # a kept-alive connection the server closed meanwhile: again, same key
            try:
                resp = session.request(method, url, json=body, timeout=60,
                                       headers={**headers, "Idempotency-Key": key})
                break
            except requests.ConnectionError:
                if attempt == 3:
                    raise
                time.sleep(0.2)
        if retry_on is None or resp.status_code < 400 or resp.json().get("reason") != retry_on:
            break
        time.sleep(0.2)  # e.g. the truck registered without waiting is not final yet
    if resp.status_code not in ok:
        raise SystemExit(f"{method} {url}: HTTP {resp.status_code} {resp.text[:300]}")
    return resp.json()


def prepare(stack: Stack, n: int, parallel: int) -> list[dict[str, str]]:
    """One approved permit for every truck of C-01, then ``n`` issued tickets spread over the trucks."""
    api, tokens = stack.api, stack.demo["tokens"]
    s = requests.Session()
    now = datetime.now(CHINA_TZ).replace(microsecond=0)
    permit = call(s, "POST", f"{api}/api/v1/permits", tokens["contractor"], {
        "project_id": stack.demo["project_id"], "volume_m3": "1000000", "disposal_site_ids": ["S-001"],
        "company_ids": ["C-01"], "valid_from": (now - timedelta(minutes=5)).isoformat(),
        "valid_to": (now + timedelta(days=30)).isoformat()})
    for dept, token in tokens["approvers"].items():
        permit = call(s, "POST", f"{api}/api/v1/permits/{permit['id']}/decisions", token,
                      stack.decision(dept, permit["id"], "approve", "bench"))
    if permit["status"] != "approved":
        raise SystemExit(f"permit not approved: {permit}")
    # One truck per ticket: a truck with a departed ticket cannot leave again (truck_busy).  The trucks are
    # registered without waiting for finality (Prefer: respond-async); issuing retries until each is known.
    plates = [f"渝F{i:05d}" for i in range(n)]
    local = threading.local()

    def sess() -> requests.Session:
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        return s

    def register(i: int) -> None:
        call(sess(), "POST", f"{api}/api/v1/registry/truck", tokens["operator"], {
            "truck_id": f"TR-B{i:05d}", "plate": plates[i], "company_id": "C-01", "capacity_m3": "18"},
            ok=(201, 202), wait=False)

    def issue(i: int) -> dict[str, str]:
        t = call(sess(), "POST", f"{api}/api/v1/tickets", tokens["contractor"], {
            "permit_id": permit["id"], "truck_plate": plates[i], "disposal_site_id": "S-001", "volume_m3": "1"},
            retry_on="unknown_truck")
        return {"id": t["id"], "qr": t["qr"], "plate": plates[i]}

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(register, range(n)))
        return list(pool.map(issue, range(n)))


def exit_bodies(tickets: list[dict[str, str]], key: PrivateKey | None) -> list[dict[str, Any]]:
    """Each ticket's exit scan, signed beforehand by the exit gate's own key (``demo.json`` ``device_keys``:
    a consortium that wants gate scans signed refuses them unsigned), so signing is not in the timed path."""
    at = iso(datetime.now(CHINA_TZ), timespec="seconds")
    out: list[dict[str, Any]] = []
    for t in tickets:
        body: dict[str, Any] = {"qr": t["qr"], "plate": t["plate"], "covered": True}
        if key is not None:
            payload = acts.exit_payload(decode_ticket(t["qr"])[0].ticket_id, "P-001-G1", normalise_plate(t["plate"]),
                                        True, at)
            body.update(gate_id="P-001-G1", time=at, act_sig=acts.act_signature(key, "gate.exit", payload))
        out.append(body)
    return out


def drive(api: str, token: str, tickets: list[dict[str, Any]], rate: float, scanners: int,
          asynchronous: bool = False) -> dict[str, Any]:
    """Open-loop exit scans (``tickets``: their request bodies, :func:`exit_bodies`): ticket ``i`` is due at
    ``t0 + i / rate``; latency from the due time."""
    work: queue.Queue[tuple[float, dict[str, Any]] | None] = queue.Queue()
    results: list[tuple[float, float, int, str | None]] = []  # (due, done, status, reason)
    tx_ids: list[str] = []  # of the scans answered 202 (their verdict comes later)
    lock = threading.Lock()
    t0 = time.perf_counter() + 0.5
    for i, t in enumerate(tickets):
        work.put((t0 + i / rate, t))
    for _ in range(scanners):
        work.put(None)

    def scanner() -> None:
        sess = requests.Session()
        headers = {"Authorization": f"Bearer {token}", "Accept-Language": "en"}
        if asynchronous:  # answered once checked like an offline gate and submitted, before finality (202)
            headers["Prefer"] = "respond-async"
        while (item := work.get()) is not None:
            due, t = item
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            try:
                # an Idempotency-Key per scan, as miniprogram_stub.client.ApiClient.gate_exit sends
                resp = sess.post(f"{api}/api/v1/gate/exit", json=t,
                                 headers={**headers, "Idempotency-Key": uuid.uuid4().hex}, timeout=60)
                status = resp.status_code
                body = resp.json() if resp.content else {}
                reason = None if status in (200, 202) else str(body.get("reason", f"http_{status}"))
                if status == 202:
                    with lock:
                        tx_ids.append(str(body["tx_id"]))
            except requests.RequestException as exc:
                status, reason = 0, type(exc).__name__
            done = time.perf_counter()
            with lock:
                results.append((due, done, status, reason))

    threads = [threading.Thread(target=scanner, daemon=True) for _ in range(scanners)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    lat = [(done - due) * 1000 for due, done, _s, _r in results]
    ok = [r for r in results if r[2] in (200, 202)]
    end = max(r[1] for r in results)
    offered_span = (len(tickets) - 1) / rate if len(tickets) > 1 else 1.0
    return {
        "tx_ids_202": tx_ids,
        "scans": len(results),
        "accepted": len(ok),
        "refusals": dict(Counter(r[3] for r in results if r[2] not in (200, 202))),
        "offered_per_s": rate,
        "achieved_per_s": round(len(results) / (end - t0), 1),
        "accepted_per_s": round(len(ok) / (end - t0), 1),
        "run_s": round(end - t0, 2),
        "offered_span_s": round(offered_span, 2),
        "latency_ms": {"p50": round(pct(lat, 50), 1), "p90": round(pct(lat, 90), 1),
                       "p99": round(pct(lat, 99), 1), "max": round(max(lat), 1),
                       "mean": round(statistics.fmean(lat), 1)},
    }


def confirm(api: str, token: str, tx_ids: list[str], timeout: float = 120.0) -> dict[str, Any]:
    """The ledger's verdicts on scans answered before the block: poll ``GET /api/v1/gate/scans/<tx_id>``
    until every one is final; how many were valid and how long after the last answer the last one took."""
    t0 = time.perf_counter()
    pending, verdicts = list(tx_ids), Counter[str]()
    sess = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    while pending and time.perf_counter() - t0 < timeout:
        left = []
        for tx_id in pending:
            body = sess.get(f"{api}/api/v1/gate/scans/{tx_id}", headers=headers, timeout=30).json()
            if body.get("final"):
                verdicts[str(body["verdict"])] += 1
            else:
                left.append(tx_id)
        pending = left
        if pending:
            time.sleep(0.2)
    return {"answered_202": len(tx_ids), "verdicts": dict(verdicts), "not_final": len(pending),
            "all_final_after_s": round(time.perf_counter() - t0, 2)}


def offline_verify_us(api: str, qr: str, n: int) -> float:
    """``verify_ticket`` on a real issued QR with the published keys, best of 3 rounds."""
    keys_doc = requests.get(f"{api}/api/v1/keys", timeout=10).json()
    keys = {k["key_id"]: PublicKey.from_pem(k["public_key_pem"]) for k in keys_doc["keys"]}
    at = decode_ticket(qr)[0].valid_from + timedelta(minutes=1)
    verify_ticket(qr, keys, at=at)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            verify_ticket(qr, keys, at=at)
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench-api", description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=100.0, help="offered exit scans per second (default 100)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the paced load (default 10)")
    p.add_argument("--scanners", type=int, default=50, help="concurrent scanner threads (default 50)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2, as scripts/serve)")
    p.add_argument("--threads", type=int, default=16, help="gunicorn threads per worker (default 16)")
    p.add_argument("--issue-parallel", type=int, default=48, help="concurrent ticket issuers in the set-up")
    p.add_argument("--verify-n", type=int, default=5000, help="offline verifications per round")
    p.add_argument("--async", dest="asynchronous", action="store_true",
                   help="scan with Prefer: respond-async (answer before ledger finality)")
    p.add_argument("--unsigned", action="store_true",
                   help="a consortium that wants only the decisions signed; exit scans without the gate's "
                        "signature (A/B: what signed scans cost)")
    p.add_argument("--plain-nodes", action="store_true",
                   help="nodes on plain HTTP (loopback), without mutual TLS (A/B: what mutual TLS costs)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    n = max(1, round(args.rate * args.seconds))
    var = Path(tempfile.mkdtemp(prefix="bench-api-"))
    started = time.monotonic()
    stack = None
    try:
        print(f"[bench-api] starting the stack in {var}", file=sys.stderr, flush=True)
        stack = Stack(var, args.workers, args.threads, unsigned=args.unsigned, plain_nodes=args.plain_nodes)
        t = time.monotonic()
        tickets = prepare(stack, n, args.issue_parallel)
        setup_s = time.monotonic() - t
        print(f"[bench-api] {n} tickets issued in {setup_s:.1f} s; exit scans at {args.rate:g}/s "
              f"for {args.seconds:g} s with {args.scanners} scanners", file=sys.stderr, flush=True)
        raw_before = raw_ed25519_per_s()
        gate_key = stack.demo.get("device_keys", {}).get("gate:exit:P-001")
        signer = PrivateKey.from_pem(Path(gate_key).read_bytes()) if gate_key and not args.unsigned else None
        bodies = exit_bodies(tickets, signer)
        cpu_before = stack.cpu_by_kind()
        load = drive(stack.api, stack.demo["tokens"]["exit_gate"], bodies, args.rate, args.scanners,
                     args.asynchronous)
        raw_after = raw_ed25519_per_s()
        ledger = confirm(stack.api, stack.demo["tokens"]["exit_gate"], load.pop("tx_ids_202"))
        cpu_after = stack.cpu_by_kind()  # the load and its scans' way to finality
        cpu_ms = {k: round((cpu_after[k] - cpu_before.get(k, 0.0)) * 1000 / max(1, load["accepted"]), 2)
                  for k in sorted(cpu_after) if k in ("api", "node")}
        verify_us = offline_verify_us(stack.api, tickets[0]["qr"], args.verify_n)
        raw = (raw_before + raw_after) / 2
        result = {
            "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version()},
            "stack": {"gunicorn_workers": args.workers, "gunicorn_threads": args.threads, "nodes": 4,
                      "ordering": "solo", "nodes_tls": "plain HTTP" if args.plain_nodes else "mutual TLS",
                      "exit_scans": "unsigned" if args.unsigned else "signed by the gate"},
            "cpu_ms_per_accepted_scan": cpu_ms,
            "exit_mode": "respond-async (202 before finality)" if args.asynchronous else "wait for finality",
            "tickets_issued": n,
            "setup_s": round(setup_s, 1),
            "exit": load,
            "ledger_verdicts": ledger,
            "goal_p99_under_150ms_at_100_per_s": bool(args.rate >= 100 and load["latency_ms"]["p99"] < 150
                                                     and load["achieved_per_s"] >= 0.95 * args.rate),
            "offline_verify_ticket_us": round(verify_us, 1),
            "goal_offline_under_1ms": verify_us < 1000,
            "raw_ed25519_verify_per_s": int(raw),
            "raw_ed25519_per_s_before_after": [int(raw_before), int(raw_after)],
            "offline_verify_vs_raw_ratio": round(verify_us / (1e6 / raw), 2),
            "scans_per_s_vs_raw_verify_per_s": round(load["achieved_per_s"] / raw, 5),
            "total_s": round(time.monotonic() - started, 1),
        }
    finally:
        if stack is not None:
            stack.stop()
        if args.keep:
            print(f"[bench-api] kept {var}", file=sys.stderr)
        else:
            shutil.rmtree(var, ignore_errors=True)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        e, lat = result["exit"], result["exit"]["latency_ms"]
        m = result["machine"]
        print(f"machine              {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}")
        st = result["stack"]
        print(f"stack                4 nodes (solo, {st['nodes_tls']}), gunicorn {args.workers} workers × "
              f"{args.threads} threads; scans {st['exit_scans']}")
        print(f"exit mode            {result['exit_mode']}")
        print(f"exit scans           {e['scans']} offered at {args.rate:g}/s by {args.scanners} scanners: "
              f"{e['achieved_per_s']}/s achieved, {e['accepted']} accepted")
        print(f"latency (ms)         p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}")
        print(f"refusals             {e['refusals'] or 'none'}")
        print("CPU ms / scan        " + "  ".join(f"{k} {v}" for k, v in result["cpu_ms_per_accepted_scan"].items())
              + "  (all nodes together; from the load's start until every scan is final)")
        v = result["ledger_verdicts"]
        if v["answered_202"]:
            print(f"ledger verdicts      {v['verdicts']} of {v['answered_202']} answered 202; not final "
                  f"{v['not_final']}; all final {v['all_final_after_s']} s after the load")
        print(f"offline verify       {result['offline_verify_ticket_us']} µs/ticket "
              f"(goal < 1 ms: {result['goal_offline_under_1ms']})")
        print(f"raw Ed25519 verify   {result['raw_ed25519_verify_per_s']}/s "
              f"(offline verify = {result['offline_verify_vs_raw_ratio']} raw verifies)")
        print(f"goal p99 < 150 ms at 100/s: {result['goal_p99_under_150ms_at_100_per_s']}   "
              f"(set-up {result['setup_s']} s, total {result['total_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
