"""Checkpoints of the log: coordinating co-signed ones, witnessing peers' ones, keeping shared ones."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from consortium_nodes.errors import PeerError
from consortium_nodes.peers import PeerLink
from ledger.core import checkpoint as cp
from ledger.core import membership_line
from ledger.core.consortium import Consortium
from ledger.core.crypto import PrivateKey
from ledger.core.membership import MembershipHistory
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
        history: Callable[[], MembershipHistory] | None = None,
    ) -> None:
        self._name = name
        #: the state machine's checkpoint line for a height (the object map, ledger.eticket.heads), if any
        self._extension = extension
        #: the chain's membership history (governance), for the membership line (ledger.core.membership_line)
        self._history = history
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
        note = cp.sign(cp.Checkpoint(self._consortium.origin, header.log_size, tree.root(header.log_size),
                                     extensions=self.lines(final)),
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
        mine: dict[int, tuple[str, ...]] = {}  # this node's lines by height (computed once each)
        for line in c.extensions:
            self._witness_extension(line, c.size, mine)
        return cp.cosign(note, [(self._name, self._key)])

    def lines(self, height: int) -> tuple[str, ...]:
        """This node's checkpoint lines for block ``height`` (applied here): the state machine's (if it has
        one), then the membership line."""
        line = self._extension(height) if self._extension is not None else None
        lines = [line] if line else []
        if self._history is not None:
            lines.append(self._membership_line(height))
        return tuple(lines)

    def _membership_line(self, height: int) -> str:
        """The membership eras up to the one in force after block ``height``, each from the log index its
        deciding block ends at (:mod:`ledger.core.membership_line`)."""
        assert self._history is not None
        eras: list[membership_line.Era] = []
        for era in self._history().until(height).eras:
            header = self._store.header(era.since - 1) if era.since > 0 else None
            if era.since > 0 and header is None:
                raise LedgerError(f"block {era.since - 1} is not stored here", reason="checkpoint_mismatch")
            eras.append((0 if header is None else header.log_size, era.version, era.consortium))
        return membership_line.extension_line(height, eras)

    def _witness_extension(self, line: str, size: int, mine: dict[int, tuple[str, ...]]) -> None:
        """Refuse (``checkpoint_mismatch``) an extension line this node does not compute identically: one of
        its own lines for the height it names, a block at that height ending the log at ``size``."""
        words = line.split(" ")
        height = int(words[1]) if len(words) > 1 and words[1].isdigit() else -1
        header = self._store.header(height) if height >= 0 else None  # stored: our machine has applied it
        if header is not None and height not in mine:
            mine[height] = self.lines(height)
        if header is None or header.log_size != size or line not in mine.get(height, ()):
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

    def latest_with_extension(self, *words: str) -> str | None:
        """The newest stored checkpoint that carries a line beginning with each of ``words`` (without
        ``words``: any line; None if none does)."""
        for _size, _root, note in reversed(self._store.checkpoints()):
            have = {line.split(" ")[0] for line in cp.Checkpoint.parse_body(cp.split_note(note)[0]).extensions}
            if have and have >= set(words):
                return str(note)
        return None
