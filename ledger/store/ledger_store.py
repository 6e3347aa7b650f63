"""Durable, append-only storage of one node's chain (SQLAlchemy 2.0; SQLite or PostgreSQL)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger.core.block import Block, BlockHeader, HeaderSignature, check_link, make_header, node_signer
from ledger.core.consortium import Consortium
from ledger.core.transaction import Transaction, parse_time
from ledger.core.tree import CompactRange, MerkleLog, hash_leaf
from ledger.errors import DuplicateTransaction, Forbidden, InvalidBlock, LedgerError, StoreError
from ledger.store import schema
from ledger.store.schema import make_engine, migrate, normalise_url, param_mark

#: Validation codes that say the signature itself failed (re-checked by verify).
#: Codes that say the transaction's signature or size check failed: such a transaction must really fail it.
#: ``forbidden`` is not one of them: the role policy *and* the business rules (a gate of another project)
#: give it to well-signed transactions, so it only requires a good signature; re-execution settles the rest.
SIGNATURE_CODES = frozenset({"bad_signature", "unknown_signer", "oversize_payload", "key_rotated", "member_retired"})


_BLOCK_COLUMNS = ("height", "hash", "version", "previous_hash", "tx_root", "flags_digest", "tx_count", "log_size",
                  "log_root", "timestamp", "proposer")
_TX_COLUMNS = ("seq", "tx_id", "height", "position", "type", "code", "leaf_hash", "body")
_SIG_COLUMNS = ("height", "key_id", "header_hash", "alg", "value")


@dataclass(frozen=True)
class StoredTx:
    """A transaction as the chain holds it."""

    tx: Transaction
    tx_id: str
    height: int
    position: int
    seq: int
    code: str
    body: bytes


class LedgerStore:
    """The chain of one node.  Only inserts; ledger rows are never updated or deleted.

    Every append runs in one database transaction: a block that fails a check
    raises a typed error and leaves nothing behind.
    """

    def __init__(self, *, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._lock = threading.RLock()
        self._log: MerkleLog | None = None
        self._head: BlockHeader | None = None
        self._head_loaded = False

    # -- opening -----------------------------------------------------------
    @classmethod
    def open(
        cls, url: str, *, consortium: Consortium | None = None, create: bool = True
    ) -> LedgerStore:
        """Open (and migrate) the store at ``url``; record or check the genesis document.

        With ``create=False`` a missing SQLite file is an error instead of a new chain.
        """
        full = normalise_url(url)
        if not create and full.startswith("sqlite:///") and not Path(full[len("sqlite:///"):]).exists():
            raise StoreError(f"no ledger database at {url}")
        engine: Engine | None = None
        try:
            engine = make_engine(url)
            migrate(engine)
        except sa.exc.SQLAlchemyError as exc:
            if engine is not None:
                engine.dispose()
            first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise StoreError(f"cannot open ledger database {url}: {first}") from exc
        store = cls(engine=engine, url=url)
        if consortium is not None:
            try:
                store.bind_consortium(consortium)
            except BaseException:
                engine.dispose()
                raise
        return store

    def close(self) -> None:
        self.engine.dispose()

    def bind_consortium(self, consortium: Consortium) -> None:
        """Write the genesis document once; refuse a different one later."""
        doc = json.dumps(consortium.to_dict(), ensure_ascii=False, sort_keys=True)
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(schema.meta.c.value).where(schema.meta.c.key == "genesis_hash")
            ).scalar()
            if row is None:
                conn.execute(
                    schema.meta.insert(),
                    [
                        {"key": "genesis_hash", "value": consortium.genesis_hash},
                        {"key": "genesis", "value": doc},
                    ],
                )
            elif row != consortium.genesis_hash:
                raise StoreError(
                    f"database belongs to genesis {row[:16]}…, not {consortium.genesis_hash[:16]}…"
                )

    def stored_consortium(self) -> Consortium | None:
        """The genesis document recorded in this database, if any."""
        with self.engine.connect() as conn:
            doc = conn.execute(
                sa.select(schema.meta.c.value).where(schema.meta.c.key == "genesis")
            ).scalar()
        return None if doc is None else Consortium.from_dict(json.loads(doc))

    # -- reading -----------------------------------------------------------
    @staticmethod
    def _header(row: Any) -> BlockHeader:
        return BlockHeader(
            height=row.height,
            previous_hash=row.previous_hash,
            tx_root=row.tx_root,
            flags_digest=row.flags_digest,
            tx_count=row.tx_count,
            log_size=row.log_size,
            log_root=row.log_root,
            timestamp=row.timestamp,
            proposer=row.proposer,
            version=row.version,
        )

    def head(self) -> BlockHeader | None:
        """The newest block header, or None for an empty chain."""
        with self._lock:
            if not self._head_loaded:
                with self.engine.connect() as conn:
                    row = conn.execute(
                        sa.select(schema.blocks).order_by(schema.blocks.c.height.desc()).limit(1)
                    ).first()
                self._head = None if row is None else self._header(row)
                self._head_loaded = True
            return self._head

    @property
    def height(self) -> int:
        """Height of the head block, -1 when empty."""
        h = self.head()
        return -1 if h is None else h.height

    def header(self, height: int) -> BlockHeader | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(schema.blocks).where(schema.blocks.c.height == height)).first()
        return None if row is None else self._header(row)

    def headers(self, start: int = 0, end: int | None = None) -> Iterator[BlockHeader]:
        """Headers with ``start <= height < end`` in order."""
        q = sa.select(schema.blocks).where(schema.blocks.c.height >= start)
        if end is not None:
            q = q.where(schema.blocks.c.height < end)
        with self.engine.connect() as conn:
            for row in conn.execute(q.order_by(schema.blocks.c.height)):
                yield self._header(row)

    def signatures(self, height: int) -> list[HeaderSignature]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(schema.signatures)
                .where(schema.signatures.c.height == height)
                .order_by(schema.signatures.c.key_id)
            ).all()
        return [HeaderSignature(key_id=r.key_id, alg=r.alg, value=r.value) for r in rows]

    def block(self, height: int) -> Block | None:
        """The whole block at ``height`` with its transactions, codes and signatures."""
        header = self.header(height)
        if header is None:
            return None
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(schema.transactions.c.body, schema.transactions.c.code)
                .where(schema.transactions.c.height == height)
                .order_by(schema.transactions.c.position)
            ).all()
        txs = tuple(Transaction.decode(r.body) for r in rows)
        return Block(header, txs, tuple(r.code for r in rows), tuple(self.signatures(height)))

    def blocks(self, start: int, end: int) -> Iterator[Block]:
        for h in range(start, end):
            b = self.block(h)
            if b is None:
                return
            yield b

    def get_tx(self, tx_id: str) -> StoredTx | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                sa.select(schema.transactions).where(schema.transactions.c.tx_id == tx_id)
            ).first()
        if r is None:
            return None
        return StoredTx(
            tx=Transaction.decode(r.body), tx_id=r.tx_id, height=r.height, position=r.position,
            seq=r.seq, code=r.code, body=r.body,
        )

    def known_tx_ids(self, tx_ids: Iterable[str]) -> set[str]:
        """Which of ``tx_ids`` the chain already holds (driver-level queries of up to 500 ids: this runs
        for every submission and every block)."""
        ids = list(tx_ids)
        if not ids:
            return set()
        return schema.values_present(self.engine, schema.transactions.name, "tx_id", ids)

    def log(self) -> MerkleLog:
        """The RFC 9162 log of every transaction, loaded once and kept up to date."""
        with self._lock:
            if self._log is None:
                log = MerkleLog()
                with self.engine.connect() as conn:
                    result = conn.execution_options(yield_per=10000).execute(
                        sa.select(schema.transactions.c.leaf_hash).order_by(schema.transactions.c.seq)
                    )
                    for (h,) in result:
                        log.append(bytes(h))
                self._log = log
            return self._log

    def log_from_bodies(self) -> MerkleLog:
        """The log rebuilt from the stored transaction bodies themselves (for audits: it
        does not trust the ``leaf_hash`` column that speeds up the node's own proofs)."""
        log = MerkleLog()
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=10000).execute(
                sa.select(schema.transactions.c.body).order_by(schema.transactions.c.seq)
            )
            for (body,) in result:
                log.append(hash_leaf(bytes(body)))
        return log

    def compact_range(self) -> CompactRange:
        log = self.log()
        rng = CompactRange()
        # Rebuild the peaks from the perfect subtrees of the log (O(log n)).
        size, lo = log.size, 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size & (1 << level):
                rng.peaks.append(log.subtree(lo, lo + (1 << level)))
                lo += 1 << level
        rng.size = size
        return rng

    # -- writing -----------------------------------------------------------
    def append(
        self,
        block: Block,
        consortium: Consortium,
        *,
        check_signatures: bool = True,
        header_checked: bool = False,
        leaf_hashes: Sequence[bytes] | None = None,
        also: Callable[[Connection], None] | None = None,
    ) -> None:
        """Append ``block`` after the head, atomically: one database transaction, one commit.

        Recomputes the header from the transactions and codes (Merkle root,
        flags digest, log head), checks the link to the head, rejects a
        transaction id the chain already holds and, with ``check_signatures``,
        every transaction signature against its validation code.  Raises
        :class:`WrongPreviousHash`, :class:`InvalidBlock`, :class:`DuplicateTransaction`
        or a signature error; nothing is written then.

        ``header_checked`` is for a caller that has just computed this header itself from
        these transactions on this store's head (a node's ``build_block``): the header is
        not recomputed and duplicates are left to the unique index on ``tx_id`` (still an
        :class:`InvalidBlock`, nothing written); ``leaf_hashes`` then passes the leaf hashes
        it computed for that header (ignored without ``header_checked``).  ``also`` runs further writes of the
        caller in the same database transaction (a node removes the block's transactions
        from its durable pool there).
        """
        with self._lock:
            head = self.head()
            check_link(block.header, head, consortium.genesis_hash)
            if len(block.codes) != len(block.transactions):
                raise InvalidBlock("one validation code per transaction is required")
            if len(block.transactions) > consortium.max_block_txs:
                raise InvalidBlock(
                    f"block has {len(block.transactions)} transactions; "
                    f"the limit is {consortium.max_block_txs}"
                )
            if leaf_hashes is not None and len(leaf_hashes) != len(block.transactions):
                raise InvalidBlock("one leaf hash per transaction is required")
            ids = [tx.tx_id for tx in block.transactions]
            if len(set(ids)) != len(ids):
                raise DuplicateTransaction(f"block {block.height} holds a transaction twice")
            if not header_checked:
                dup = self.known_tx_ids(ids)
                if dup:
                    raise DuplicateTransaction(f"transaction {sorted(dup)[0]} is already on the chain")
            if check_signatures:
                for tx, code in zip(block.transactions, block.codes, strict=True):
                    _check_tx_against_code(tx, code, consortium)
            log = self.log()
            bodies = [tx.encode() for tx in block.transactions]
            # Leaf hashes from the caller are taken only together with its header (header_checked).
            reuse = header_checked and leaf_hashes is not None
            hashes = list(leaf_hashes or ()) if reuse else [hash_leaf(b) for b in bodies]
            if not header_checked:
                expected, _after = make_header(
                    previous=head,
                    genesis_hash=consortium.genesis_hash,
                    transactions=block.transactions,
                    codes=block.codes,
                    log=self.compact_range(),
                    timestamp=block.header.timestamp,
                    proposer=block.header.proposer,
                    leaf_hashes=hashes,
                )
                if expected != block.header:
                    raise InvalidBlock(
                        f"block {block.height} header does not match its transactions "
                        f"(tx_root/flags/log head recomputed differ)"
                    )
            elif block.header.log_size != log.size + len(bodies):
                raise InvalidBlock(f"block {block.height} was built on a log of another size")
            base = log.size
            h = block.header
            try:
                with self.engine.begin() as conn:
                    # Driver-level statements with plain tuples: no per-row Core/ORM parameter processing.
                    mark = param_mark(conn)
                    conn.exec_driver_sql(
                        f"INSERT INTO {schema.blocks.name} ({', '.join(_BLOCK_COLUMNS)}) "
                        f"VALUES ({', '.join([mark] * len(_BLOCK_COLUMNS))})",
                        (h.height, h.hash, h.version, h.previous_hash, h.tx_root, h.flags_digest, h.tx_count,
                         h.log_size, h.log_root, h.timestamp, h.proposer),
                    )
                    if bodies:
                        conn.exec_driver_sql(
                            f"INSERT INTO {schema.transactions.name} ({', '.join(_TX_COLUMNS)}) "
                            f"VALUES ({', '.join([mark] * len(_TX_COLUMNS))})",
                            [
                                (base + i, ids[i], h.height, i, tx.type, block.codes[i], hashes[i], bodies[i])
                                for i, tx in enumerate(block.transactions)
                            ],
                        )
                    # A new height has no stored signatures yet: insert them all.
                    sig_rows = {s.key_id: (h.height, s.key_id, h.hash, s.alg, s.value) for s in block.signatures}
                    if sig_rows:
                        conn.exec_driver_sql(
                            f"INSERT INTO {schema.signatures.name} ({', '.join(_SIG_COLUMNS)}) "
                            f"VALUES ({', '.join([mark] * len(_SIG_COLUMNS))})",
                            list(sig_rows.values()),
                        )
                    if also is not None:
                        also(conn)
            except sa.exc.IntegrityError as exc:
                raise InvalidBlock(f"block {h.height} conflicts with stored rows: {exc.orig}") from exc
            except sa.exc.SQLAlchemyError as exc:
                raise StoreError(f"cannot write block {h.height}: {exc}") from exc
            log.extend(hashes)
            self._head = h
            self._head_loaded = True

    def _insert_signatures(
        self, conn: Connection, header: BlockHeader, sigs: Sequence[HeaderSignature]
    ) -> None:
        if not sigs:
            return
        have = set(
            conn.execute(
                sa.select(schema.signatures.c.key_id).where(schema.signatures.c.height == header.height)
            ).scalars()
        )
        rows = [
            {"height": header.height, "key_id": s.key_id, "header_hash": header.hash,
             "alg": s.alg, "value": s.value}
            for s in sigs
            if s.key_id not in have
        ]
        if rows:
            conn.execute(schema.signatures.insert(), rows)

    def add_signatures(self, height: int, sigs: Sequence[HeaderSignature], consortium: Consortium) -> int:
        """Store node signatures that verify over the stored header; return how many were new."""
        header = self.header(height)
        if header is None:
            raise StoreError(f"no block at height {height}")
        msg = header.signing_message
        at = parse_time(header.timestamp)
        good = [s for s in sigs if node_signer(s, msg, consortium, at) is not None]
        with self._lock, self.engine.begin() as conn:
            before = conn.execute(
                sa.select(sa.func.count())
                .select_from(schema.signatures)
                .where(schema.signatures.c.height == height)
            ).scalar_one()
            self._insert_signatures(conn, header, good)
            after = conn.execute(
                sa.select(sa.func.count())
                .select_from(schema.signatures)
                .where(schema.signatures.c.height == height)
            ).scalar_one()
        return int(after - before)

    def store_signatures(self, items: Sequence[tuple[int, str, HeaderSignature]]) -> int:
        """Store node signatures ``(height, header_hash, signature)`` that the caller has already
        verified over the stored header of that height (whose hash it gives).  One statement and one
        commit for all; a signature already stored is skipped.  Returns how many rows were offered."""
        if not items:
            return 0
        rows = [
            {"height": height, "key_id": s.key_id, "header_hash": header_hash, "alg": s.alg, "value": s.value}
            for height, header_hash, s in items
        ]
        table = schema.signatures
        dialect = self.engine.dialect.name
        try:
            with self._lock, self.engine.begin() as conn:
                if dialect == "sqlite":
                    from sqlalchemy.dialects import sqlite

                    conn.execute(sqlite.insert(table).on_conflict_do_nothing(), rows)
                    return len(rows)
                if dialect == "postgresql":
                    from sqlalchemy.dialects import postgresql

                    conn.execute(postgresql.insert(table).on_conflict_do_nothing(), rows)
                    return len(rows)
                fresh = [
                    r for r in rows
                    if conn.execute(
                        sa.select(table.c.key_id).where(table.c.height == r["height"], table.c.key_id == r["key_id"])
                    ).first() is None
                ]
                if fresh:
                    conn.execute(table.insert(), fresh)
                return len(fresh)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot store signatures: {exc}") from exc

    def add_checkpoint(self, size: int, root: str, note: str) -> None:
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(schema.checkpoints.c.size).where(schema.checkpoints.c.size == size)
            ).first()
            if exists is None:
                conn.execute(schema.checkpoints.insert(), {"size": size, "root": root, "note": note})

    def checkpoints(self) -> list[tuple[int, str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(schema.checkpoints).order_by(schema.checkpoints.c.size)).all()
        return [(r.size, r.root, r.note) for r in rows]

    def tx_count(self) -> int:
        return self.log().size


def _check_tx_against_code(tx: Transaction, code: str, consortium: Consortium) -> None:
    """A transaction marked valid (or failed on business rules) must be well signed;
    one marked with a signature code must really fail that check."""
    try:
        tx.check(consortium)
        failed: LedgerError | None = None
    except LedgerError as exc:
        failed = exc
    if code in SIGNATURE_CODES:
        if failed is None:
            raise InvalidBlock(f"transaction {tx.tx_id} is marked {code} but its signature holds")
    elif failed is not None and not (code == "forbidden" and isinstance(failed, Forbidden)):
        raise failed
