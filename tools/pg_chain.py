"""The alternative a city would otherwise pick, for ``scripts/bench-consortium``: one central PostgreSQL that
stores the same signed transactions in a hash chain, behind a small Flask app under gunicorn.

Not shipped; a benchmark baseline only.  Each row holds the transaction's canonical JSON, its digest
(SHA-256 of that JSON), the previous row's hash and its own hash, ``SHA-256(DOMAIN ‖ prev ‖ digest)``.
Every submitted transaction goes through exactly the stateless admission a node runs
(:func:`consortium_nodes.pool.check`: decode, canonical round trip, the signer's key in the consortium and its
Ed25519 signature, the state machine's ``admit``), then one writer thread per worker appends; appends of all
workers are serialised by a PostgreSQL advisory lock held for the append's database transaction, so the
table is one chain with one writer at a time.  ``POST /v1/transactions`` answers once its transactions are
committed (they are then "final": there is nothing else to wait for), with the node's answer format, so
``tools.load`` drives it unchanged.

Configuration by environment (gunicorn ``tools.pg_chain:create_app()``): ``PG_CHAIN_DSN`` (libpq, trust auth
on loopback: no secret), ``PG_CHAIN_SCHEMA`` (made by :func:`create_chain`), ``PG_CHAIN_CONSORTIUM`` (its
consortium file) and ``PG_CHAIN_STATE_MACHINE``.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from consortium_nodes.pool import Admission, check
from ledger.core.builder import Checked
from ledger.machines import make_machine
from ledger.store.keyfiles import read_consortium

DOMAIN = b"muck-pg-chain/v1\n"
GENESIS = "0" * 64
#: the longest ``?wait=`` a status read honours, seconds
MAX_WAIT = 30.0
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


def row_hash(prev: str, digest: str) -> str:
    return hashlib.sha256(DOMAIN + bytes.fromhex(prev) + bytes.fromhex(digest)).hexdigest()


def _schema(name: str) -> str:
    if not _SCHEMA_RE.match(name):
        raise ValueError(f"schema name {name!r} is not a plain lower-case identifier")
    return name


def _lock_key(schema: str) -> int:
    return int.from_bytes(hashlib.sha256(schema.encode()).digest()[:8], "big", signed=True)


def create_chain(dsn: str, schema: str) -> None:
    """Create ``schema`` with its empty ``chain`` table (fails if the schema exists: a name per run)."""
    s = _schema(schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {s}")
        conn.execute(f"""CREATE TABLE {s}.chain (
            seq bigint PRIMARY KEY, tx_id text NOT NULL UNIQUE, tx_json text NOT NULL,
            digest text NOT NULL, prev_hash text NOT NULL, row_hash text NOT NULL)""")


def drop_chain(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {_schema(schema)} CASCADE")


def check_chain(dsn: str, schema: str) -> dict[str, Any]:
    """Recompute the chain: ``rows``, ``ok`` (every digest, link and row hash right, seq gap-free), ``head``."""
    prev, n, ok = GENESIS, 0, True
    with psycopg.connect(dsn) as conn, conn.cursor(name="walk") as cur:
        cur.execute(f"SELECT seq, tx_json, digest, prev_hash, row_hash FROM {_schema(schema)}.chain ORDER BY seq")
        for seq, tx_json, digest, prev_hash, rh in cur:
            ok = ok and seq == n + 1 and prev_hash == prev and digest == hashlib.sha256(tx_json.encode()).hexdigest() \
                and rh == row_hash(prev, digest)
            prev, n = rh, n + 1
    return {"rows": n, "ok": ok, "head": prev}


@dataclass
class _Append:
    rows: list[tuple[str, bytes]]
    done: threading.Event = field(default_factory=threading.Event)
    known: set[str] = field(default_factory=set)
    error: BaseException | None = None


class Writer:
    """One thread appending everything submitted to this process, a database transaction per gathered batch."""

    def __init__(self, dsn: str, schema: str) -> None:
        self._dsn, self._schema = dsn, _schema(schema)
        self._lock_key = _lock_key(schema)
        self._queue: queue.SimpleQueue[_Append] = queue.SimpleQueue()
        self._conn: psycopg.Connection[Any] | None = None
        threading.Thread(target=self._run, name="pg-chain-writer", daemon=True).start()

    def append(self, rows: list[tuple[str, bytes]], timeout: float = 60.0) -> set[str]:
        """Append ``rows`` (tx id, canonical bytes) once committed; returns the ids the chain already held."""
        job = _Append(rows)
        self._queue.put(job)
        if not job.done.wait(timeout):
            raise TimeoutError("the writer did not commit in time")
        if job.error is not None:
            raise job.error
        return job.known

    def _run(self) -> None:
        while True:
            jobs = [self._queue.get()]
            while True:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._commit(jobs)
            except Exception as exc:  # handed to every waiting request
                for j in jobs:
                    j.error = exc
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
            for j in jobs:
                j.done.set()

    def _commit(self, jobs: list[_Append]) -> None:
        if self._conn is None:
            self._conn = psycopg.connect(self._dsn, application_name=f"bench-{self._schema}")
        conn, s = self._conn, self._schema
        ids = list({i for j in jobs for i, _ in j.rows})
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            cur.execute(f"SELECT seq, row_hash FROM {s}.chain ORDER BY seq DESC LIMIT 1")
            last = cur.fetchone()
            seq, prev = (int(last[0]), str(last[1])) if last else (0, GENESIS)
            cur.execute(f"SELECT tx_id FROM {s}.chain WHERE tx_id = ANY(%s)", (ids,))
            on_chain = {r[0] for r in cur.fetchall()}
            seen = set(on_chain)
            with cur.copy(f"COPY {s}.chain (seq, tx_id, tx_json, digest, prev_hash, row_hash) FROM STDIN") as cp:
                for j in jobs:
                    for tx_id, body in j.rows:
                        if tx_id in seen:
                            j.known.add(tx_id)
                            continue
                        seen.add(tx_id)
                        digest = hashlib.sha256(body).hexdigest()
                        rh = row_hash(prev, digest)
                        seq += 1
                        cp.write_row((seq, tx_id, body.decode(), digest, prev, rh))
                        prev = rh


def create_app() -> Flask:
    dsn, schema = os.environ["PG_CHAIN_DSN"], _schema(os.environ["PG_CHAIN_SCHEMA"])
    consortium = read_consortium(os.environ["PG_CHAIN_CONSORTIUM"])
    machine = make_machine(os.environ.get("PG_CHAIN_STATE_MACHINE", "eticket"), consortium)
    writer = Writer(dsn, schema)
    local = threading.local()
    app = Flask(__name__)

    def conn() -> psycopg.Connection[Any]:
        c: psycopg.Connection[Any] | None = getattr(local, "conn", None)
        if c is None or c.closed:
            c = local.conn = psycopg.connect(dsn, autocommit=True, application_name=f"bench-{schema}")
        return c

    def have(ids: list[str]) -> set[str]:
        return {r[0] for r in conn().execute(f"SELECT tx_id FROM {schema}.chain WHERE tx_id = ANY(%s)", (ids,))}

    @app.post("/v1/transactions")
    def submit() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        items = body.get("transactions") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) > 5000:
            return jsonify({"reason": "malformed"}), 400
        results = [check(item, consortium, machine) for item in items]
        rows = [(r.tx.tx_id, r.tx.encode()) for r in results if isinstance(r, Checked)]
        known = writer.append(rows) if rows else set()
        out = [r if isinstance(r, Admission) else Admission(r.tx.tx_id, "known" if r.tx.tx_id in known else "accepted")
               for r in results]
        return jsonify({"results": [a.to_dict() for a in out]})

    @app.get("/v1/transactions/<tx_id>")
    def tx(tx_id: str) -> ResponseReturnValue:
        try:
            wait = min(max(float(request.args.get("wait", 0)), 0.0), MAX_WAIT)
        except ValueError:
            wait = 0.0
        deadline = time.monotonic() + wait
        while True:
            if have([tx_id]):
                return jsonify({"tx_id": tx_id, "status": "final"})
            if time.monotonic() >= deadline:
                return jsonify({"tx_id": tx_id, "status": "unknown", "reason": "not_found"}), 404
            time.sleep(0.02)

    @app.post("/v1/transactions/status")
    def statuses() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        ids = body.get("tx_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or len(ids) > 5000:
            return jsonify({"reason": "malformed"}), 400
        final = have([str(i) for i in ids])
        return jsonify({"statuses": {str(i): "final" if i in final else "unknown" for i in ids}})

    @app.get("/status")
    def status() -> ResponseReturnValue:
        row = conn().execute(f"SELECT count(*) FROM {schema}.chain").fetchone()
        return jsonify({"ready": True, "height": int(row[0]) if row else 0})

    return app
