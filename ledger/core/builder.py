"""The state-machine protocol and deterministic block building: every node makes the same block (no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ledger.core.block import VALID, Block, BlockHeader, make_header
from ledger.core.consortium import Consortium, Member
from ledger.core.governed import Governed
from ledger.core.transaction import Transaction, parse_time
from ledger.core.tree import CompactRange, hash_leaf
from ledger.errors import LedgerError, UnknownSigner

#: a height after every block: :meth:`Governed.refusal` at it judges against the membership in force now
NOW = 2**62


@dataclass(frozen=True)
class Built:
    """A block built from ordered transactions, with the log after it and how many were dropped."""

    block: Block
    log: CompactRange
    dropped: int
    #: RFC 9162 leaf hashes of ``block.transactions``, in order (the store reuses them)
    leaf_hashes: tuple[bytes, ...] = ()


def block_time(proposed: str, previous: BlockHeader | None) -> str:
    """The proposed time, but never before the previous block's (proposers' clocks may lag)."""
    if previous is not None and parse_time(proposed) < parse_time(previous.timestamp):
        return previous.timestamp
    return proposed


def build_block(
    *,
    raw_txs: Sequence[bytes],
    proposer: str,
    timestamp: str,
    previous: BlockHeader | None,
    log: CompactRange,
    consortium: Consortium,
    machine: StateMachine,
    seen: Callable[[Sequence[str]], set[str]],
    checked: Mapping[bytes, Checked] | None = None,
) -> Built:
    """Validate every transaction and apply it to ``machine``, in order; every node gets the same block.

    Undecodable transactions and ones already on the chain (``seen``) or
    earlier in the list are dropped.  A transaction that fails its signature,
    role or business checks stays in the block with its reason code, as in
    Hyperledger Fabric, so rejected attempts stay auditable; so does one signed by a
    key outside its member card's validity at the block's time (``key_expired``,
    ``key_not_yet_valid``).

    ``checked`` maps the exact bytes of transactions this node has already decoded and
    passed through the same stateless checks (``Transaction.check`` — signature, size,
    role — and ``machine.admit``), e.g. at its own admission, to that result: those bytes
    are neither decoded nor verified a second time.  The checks are deterministic functions
    of the bytes and the consortium, so the block is the same; the rules (``apply``) still
    run on every transaction.

    With a :class:`~ledger.core.governed.Governed` machine the block is built under the membership governance
    put in force for it (``consortium`` is then the genesis), a signer a vote took out gets ``key_rotated`` or
    ``member_retired``, and the block ends with the votes' boundary (:meth:`Governed.end_block`).
    """
    gov = machine if isinstance(machine, Governed) else None
    if gov is not None:  # the membership governance put in force for this block (the caller's is the genesis)
        consortium = gov.in_force()
    txs: list[Transaction] = []
    signers: list[Member | None] = []
    for raw in raw_txs[: consortium.max_block_txs]:
        hit = checked.get(raw) if checked is not None else None
        if hit is not None and (gov is None or _still(hit, consortium)):
            txs.append(hit.tx)
            signers.append(hit.signer)
            continue
        try:
            txs.append(Transaction.decode(raw))
        except LedgerError:
            continue
        signers.append(None)
    ids = [tx.tx_id for tx in txs]
    on_chain = seen(ids)
    kept: list[Transaction] = []
    kept_signers: list[Member | None] = []
    taken: set[str] = set()
    for tx, tx_id, known in zip(txs, ids, signers, strict=True):
        if tx_id in on_chain or tx_id in taken:
            continue
        taken.add(tx_id)
        kept.append(tx)
        kept_signers.append(known)
    when_text = block_time(timestamp, previous)
    when = parse_time(when_text)
    height = 0 if previous is None else previous.height + 1
    codes: list[str] = []
    for position, (tx, known) in enumerate(zip(kept, kept_signers, strict=True)):
        if known is not None:
            signer = known
        else:
            try:
                signer = tx.check(consortium)
                machine.admit(tx, consortium)
            except UnknownSigner as exc:  # a key rotated out or a member retired has its own reason
                former = gov.refusal(tx.submitter, height) if gov is not None else None
                codes.append((former or exc).reason)
                continue
            except LedgerError as exc:
                codes.append(exc.reason)
                continue
        refused = signer.key_refusal(when)  # the signer's card validity at the block's time, never the clock
        if refused is not None:
            codes.append(refused)
            continue
        ctx = TxContext(height=height, position=position, block_time=when, tx_id=tx.tx_id, signer=signer,
                        consortium=consortium)
        codes.append(machine.apply(tx, ctx).code or VALID)
    hashes = tuple(hash_leaf(tx.encode()) for tx in kept)
    header, after = make_header(previous=previous, genesis_hash=consortium.genesis_hash, transactions=kept,
                                codes=codes, log=log, timestamp=when_text, proposer=proposer, leaf_hashes=hashes)
    if gov is not None:
        gov.end_block(height)
    return Built(block=Block(header, tuple(kept), tuple(codes)), log=after, dropped=len(raw_txs) - len(kept),
                 leaf_hashes=hashes)


def _still(hit: Checked, consortium: Consortium) -> bool:
    """The admission checks were made under the membership this block is built under: no vote changed the
    signer, the policy or the parameters since (else every node checks again, as the nodes without the cache do)."""
    return hit.under is consortium


@dataclass(frozen=True)
class Checked:
    """A transaction that passed the stateless checks (signature, size, role, ``admit``) and its signer."""

    tx: Transaction
    signer: Member
    #: the membership the checks were made under (a governance vote may change it before the block is built)
    under: Consortium | None = None


def check_stateless(tx: Transaction, consortium: Consortium, machine: StateMachine) -> Checked:
    """The checks :func:`build_block` runs on a transaction before the rules; raises their LedgerError."""
    if isinstance(machine, Governed):  # the membership in force now, and a former key's own reason
        consortium = machine.in_force()
        try:
            signer = tx.check(consortium)
        except UnknownSigner as exc:
            raise machine.refusal(tx.submitter, NOW) or exc from None
    else:
        signer = tx.check(consortium)
    machine.admit(tx, consortium)
    return Checked(tx, signer, consortium)


def rebuild(block: Block, previous: BlockHeader | None, log: CompactRange, consortium: Consortium,
            machine: StateMachine) -> Built:
    """Re-execute a stored or received block from its own transactions."""
    return build_block(raw_txs=[tx.encode() for tx in block.transactions], proposer=block.header.proposer,
                       timestamp=block.header.timestamp, previous=previous, log=log, consortium=consortium,
                       machine=machine, seen=lambda ids: set())


@dataclass(frozen=True)
class TxContext:
    """Everything a rule may look at besides the transaction and the state.

    Time comes from here (the block's timestamp) and from the transaction,
    never from the clock, so every node and every replay agrees.
    """

    height: int
    position: int
    block_time: datetime
    tx_id: str
    signer: Member
    consortium: Consortium


@dataclass(frozen=True)
class Outcome:
    """The result of applying one transaction: ``code`` is "valid" or a reason code."""

    code: str = VALID
    message: str = ""
    events: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.code == VALID


class StateMachine(Protocol):
    """Business rules run by every node on the ordered chain.

    ``apply`` must be deterministic and must leave the state unchanged when
    the outcome is not valid (the transaction then stays in its block with
    that code).  ``digest`` is a hash of the whole world state, equal on every
    node after the same blocks.
    """

    def admit(self, tx: Transaction, consortium: Consortium) -> None:
        """Stateless checks at submission (payload shape); raise a LedgerError to refuse."""

    def apply(self, tx: Transaction, ctx: TxContext) -> Outcome:
        """Apply ``tx`` to the state."""

    def digest(self) -> str:
        """Hex digest of the world state."""


class NullStateMachine:
    """Accepts every well-signed transaction; for a ledger without business rules."""

    def __init__(self) -> None:
        self._count = 0

    def admit(self, tx: Transaction, consortium: Consortium) -> None:
        return None

    def apply(self, tx: Transaction, ctx: TxContext) -> Outcome:
        self._count += 1
        return Outcome()

    def digest(self) -> str:
        return f"{self._count:064x}"
