"""Checkpoints of the log: coordinating co-signed ones, witnessing peers' ones, keeping shared ones."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from consortium_nodes.errors import PeerError
from consortium_nodes.peers import PeerLink
from ledger.core import checkpoint as cp
from ledger.core.consortium import Consortium
from ledger.core.crypto import PrivateKey
from ledger.errors import LedgerError
from ledger.store.ledger_store import LedgerStore

log = logging.getLogger("consortium_nodes.node")


def merge_cosigned(mine: str, theirs: str) -> str:
    """``mine`` with the signature lines of ``theirs`` it lacks (both must have the same body)."""
    body_a, sigs_a = cp.split_note(mine)
    body_b, sigs_b = cp.split_note(theirs)
    if body_a != body_b:
        raise LedgerError("a witness returned a different checkpoint", reason="checkpoint_mismatch")
    seen = {(s.name, s.key_hash) for s in sigs_a}
    lines = [s.line() for s in sigs_a] + [s.line() for s in sigs_b if (s.name, s.key_hash) not in seen]
    return body_a + "\n" + "".join(lines)


def note_size(note: str) -> int:
    return cp.Checkpoint.parse_body(cp.split_note(note)[0]).size


class Checkpoints:
    """This node as a checkpoint coordinator and as a witness of the others' (state: the store only)."""

    def __init__(
        self, *, name: str, consortium: Consortium | Callable[[], Consortium], key: PrivateKey, store: LedgerStore,
        peers: PeerLink,
        final_height: Callable[[], int], extension: Callable[[int], str | None] | None = None,
    ) -> None:
        self._name = name
        #: the state machine's checkpoint line for a height (the object map, ledger.eticket.heads), if any
        self._extension = extension
        #: the membership in force (a callable: governance votes change it)
        self._members = consortium if callable(consortium) else (lambda: consortium)
        self._key = key
        self._store = store
        self._peers = peers
        self._final_height = final_height

    @property
    def _consortium(self) -> Consortium:
        return self._members()

    def _verifiers(self) -> dict[str, Any]:
        return {m.name: m.public_key for m in self._consortium.nodes}

    def make(self) -> str:
        """Coordinate a checkpoint of the log at the newest final block, co-signed by a quorum of nodes.

        Each peer acts as a witness: it co-signs only when the checkpoint
        matches its own log.  The co-signed note is stored and shared.
        """
        final = self._final_height()
        header = self._store.header(final) if final >= 0 else None
        if header is None:
            raise LedgerError("no final block to checkpoint yet", reason="not_ready")
        tree = self._store.log()
        line = self._extension(final) if self._extension is not None else None
        note = cp.sign(cp.Checkpoint(self._consortium.origin, header.log_size, tree.root(header.log_size),
                                     extensions=(line,) if line else ()),
                       [(self._name, self._key)])
        for name in self._peers.urls:
            try:
                note = merge_cosigned(note, self._peers.cosign(name, note))
            except (PeerError, LedgerError) as exc:
                log.info("peer %s did not co-sign: %s", name, exc)
        c, _signers = cp.verify(note, self._verifiers(), quorum=self._consortium.quorum,
                                origin=self._consortium.origin)
        self._store.add_checkpoint(c.size, c.root.hex(), note)
        self._peers.share_checkpoint(note)
        return note

    def periodic(self) -> None:
        """Make a checkpoint if the final log grew since the latest one (a failure is logged)."""
        final = self._final_height()
        header = self._store.header(final) if final >= 0 else None
        latest = self.latest()
        size = -1 if latest is None else note_size(latest)
        if header is None or header.log_size <= size:
            return
        try:
            self.make()
        except LedgerError as exc:
            log.warning("node %s: checkpoint not co-signed: %s", self._name, exc.message)

    def cosign(self, note: str) -> str:
        """Witness: add our signature if the checkpoint matches our own log, else refuse."""
        body, _ = cp.split_note(note)
        c = cp.Checkpoint.parse_body(body)
        tree = self._store.log()
        if c.origin != self._consortium.origin or c.size > tree.size or tree.root(c.size) != c.root:
            raise LedgerError(
                f"checkpoint of size {c.size} does not match this node's log", reason="checkpoint_mismatch"
            )
        for line in c.extensions:
            self._witness_extension(line, c.size)
        return cp.cosign(note, [(self._name, self._key)])

    def _witness_extension(self, line: str, size: int) -> None:
        """Refuse (``checkpoint_mismatch``) an extension line this node does not compute identically: the
        state machine's line for the height it names, a block at that height ending the log at ``size``."""
        words = line.split(" ")
        height = int(words[1]) if len(words) > 1 and words[1].isdigit() else -1
        header = self._store.header(height) if height >= 0 else None  # stored: our machine has applied it
        mine = self._extension(height) if self._extension is not None and header is not None else None
        if header is None or header.log_size != size or mine != line:
            raise LedgerError(f"checkpoint line {words[0][:40]!r} does not match this node's state",
                              reason="checkpoint_mismatch")

    def accept(self, note: str) -> bool:
        """Store a shared co-signed checkpoint if it verifies and matches our log."""
        c, _ = cp.verify(note, self._verifiers(), quorum=self._consortium.quorum, origin=self._consortium.origin)
        tree = self._store.log()
        if c.size > tree.size or tree.root(c.size) != c.root:
            return False
        self._store.add_checkpoint(c.size, c.root.hex(), note)
        return True

    def latest(self) -> str | None:
        cps = self._store.checkpoints()
        return cps[-1][2] if cps else None

    def latest_with_extension(self) -> str | None:
        """The newest stored checkpoint that carries the state machine's line (None if none does)."""
        for _size, _root, note in reversed(self._store.checkpoints()):
            if len(cp.Checkpoint.parse_body(cp.split_note(note)[0]).extensions) > 0:
                return str(note)
        return None
