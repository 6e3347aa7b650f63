"""A state machine with governance: ``governance.*`` transactions change the membership, the rest go to the rules.

:class:`Governed` wraps the chain's business rules (any :class:`~ledger.core.builder.StateMachine`).  It keeps the
:class:`~ledger.core.governance_state.Governance` state and the :class:`~ledger.core.membership.MembershipHistory`
that :func:`ledger.core.builder.build_block` builds each block under (:meth:`Governed.in_force`) and ends each
block with (:meth:`Governed.end_block`).  Rules with parameters of their own (``eticket``) judge a proposal that
changes them (``check_consortium``) and take the change from the next block on (``reconfigure``).  Pure: the
state is a function of the blocks applied.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ledger.core.consortium import Consortium
from ledger.core.governance import is_governance
from ledger.core.governance_state import Decided, Governance
from ledger.core.membership import MembershipHistory
from ledger.core.transaction import Transaction
from ledger.errors import GovernanceError, LedgerError

if TYPE_CHECKING:
    from ledger.core.builder import Outcome, StateMachine, TxContext

VALID = "valid"


class Governed:
    """``inner`` (the business rules) with the chain's membership governed by votes; also a StateMachine."""

    def __init__(self, inner: StateMachine, genesis: Consortium) -> None:
        self.inner = inner
        self.state = Governance(genesis)
        self.history = MembershipHistory.of(genesis)
        #: what became of the proposals decided at the end of the last block that decided any
        self.decided: tuple[Decided, ...] = ()

    @property
    def genesis(self) -> Consortium:
        return self.history.genesis

    def in_force(self) -> Consortium:
        """The membership of the next block (the one being built on top of what was applied)."""
        return self.state.consortium

    def at(self, height: int) -> Consortium:
        """The membership in force for block ``height`` (judged against the history known so far)."""
        return self.history.at(height)

    def refusal(self, key_id: str, height: int) -> LedgerError | None:
        return self.history.refusal(key_id, height)

    def _check(self, consortium: Consortium) -> None:
        """The rules' judgment of a consortium a proposal would make (their ``check_consortium``, if they have
        one): :class:`GovernanceError` when they would not take its parameters."""
        check = getattr(self.inner, "check_consortium", None)
        if check is None:
            return
        try:
            check(consortium)
        except LedgerError as exc:
            raise GovernanceError(f"the rules would not take these parameters: {exc.message}") from None

    # -- the StateMachine protocol ----------------------------------------------------------------------------
    def admit(self, tx: Transaction, consortium: Consortium) -> None:
        """Governance transactions: their payload is judged where they apply (against the state then); an
        obviously malformed one is refused now.  Every other transaction: the rules' own admission."""
        if is_governance(tx.type):
            if "proposal_id" not in tx.payload:
                raise GovernanceError("a governance transaction names its proposal_id")
            return
        self.inner.admit(tx, consortium)

    def apply(self, tx: Transaction, ctx: TxContext) -> Outcome:
        from ledger.core.builder import Outcome

        if not is_governance(tx.type):
            return self.inner.apply(tx, ctx)
        try:
            self.state = self.state.step(tx.type, tx.payload, ctx.signer, ctx.height, check=self._check)
        except GovernanceError as exc:
            return Outcome(code=exc.reason, message=exc.message)
        return Outcome()

    def end_block(self, height: int) -> tuple[Decided, ...]:
        """Block ``height`` is complete: apply what the quorum approved (in force from ``height + 1``)."""
        before = self.state
        self.state, decided = before.boundary(height, check=self._check)
        if self.state.version != before.version:
            self.history = self.history.then(self.state.since, self.state.version, self.state.consortium)
            reconfigure = getattr(self.inner, "reconfigure", None)
            if reconfigure is not None and self.state.consortium.parameters != before.consortium.parameters:
                reconfigure(self.state.consortium)  # the rules' own parameters, from block ``height + 1``
        if decided:
            self.decided = decided
        return decided

    def digest(self) -> str:
        """The rules' digest while no governance transaction ever applied (chains without governance keep their
        digests), else one over both."""
        inner = self.inner.digest()
        if self.state.quiet:
            return inner
        return hashlib.sha256(f"{inner}\n{self.state.digest()}".encode()).hexdigest()

    def status(self) -> dict[str, object]:
        """``/status``'s ``membership``: version, the first block it is in force for, quorum, nodes, pending."""
        return {**self.state.to_dict(), "decided": [d.to_dict() for d in self.decided]}


def history_of(genesis: Consortium, blocks: Iterable[tuple[int, Iterable[tuple[Transaction, str]]]]
               ) -> MembershipHistory:
    """The membership history of a chain from its blocks' ``(height, [(transaction, code)])`` as stored, trusting
    the codes (the audit's replay checks them): the audit and verification judge each block under it."""
    state = Governance(genesis)
    history = MembershipHistory.of(genesis)
    for height, txs in blocks:
        for tx, code in txs:
            if code != VALID or not is_governance(tx.type):
                continue
            try:
                signer = state.consortium.member(tx.submitter)
                state = state.step(tx.type, tx.payload, signer, height)
            except LedgerError:
                continue  # a stored code that does not hold: the replay reports it
        version = state.version
        state, _ = state.boundary(height)
        if state.version != version:
            history = history.then(state.since, state.version, state.consortium)
    return history
