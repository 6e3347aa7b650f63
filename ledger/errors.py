"""Typed errors of the ledger package, all under one base class."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose.

    ``reason`` is a stable ASCII code for machines (API ``reason``, CLI
    messages); the message is for people.
    """

    reason: str = "ledger_error"
    exit_code: int = 1

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.reason


class EncodingError(LedgerError):
    """Bytes or objects that have no (canonical) encoding."""

    reason = "malformed"


class MalformedTransaction(LedgerError):
    """A transaction envelope with missing, extra or ill-typed fields."""

    reason = "malformed"


class OversizePayload(MalformedTransaction):
    """A payload larger than the consortium's ``max_payload_bytes``."""

    reason = "oversize_payload"


class UnsupportedAlgorithm(LedgerError):
    """An algorithm id this build cannot compute (e.g. sm2 without a provider)."""

    reason = "unsupported_algorithm"


class UnknownSigner(LedgerError):
    """A signature by a key id the consortium does not list."""

    reason = "unknown_signer"


class BadSignature(LedgerError):
    """A signature that does not verify."""

    reason = "bad_signature"


class Forbidden(LedgerError):
    """A signer whose roles do not allow this transaction type."""

    reason = "forbidden"


class DuplicateTransaction(LedgerError):
    """A transaction id the chain already holds."""

    reason = "duplicate_tx"


class WrongPreviousHash(LedgerError):
    """A block that does not link to the current head."""

    reason = "wrong_previous_hash"


class InvalidBlock(LedgerError):
    """A block whose header, roots or certificate do not hold."""

    reason = "invalid_block"


class ConsortiumError(LedgerError):
    """An unreadable or inconsistent consortium (genesis) file or key."""

    reason = "bad_consortium"
    exit_code = 2


class ProofError(LedgerError):
    """A proof that cannot be built for the arguments given."""

    reason = "bad_proof_request"


class CheckpointError(LedgerError):
    """A checkpoint note that cannot be parsed or does not verify."""

    reason = "bad_checkpoint"


class StoreError(LedgerError):
    """The database cannot be opened or holds something unexpected."""

    reason = "store_error"
    exit_code = 2


class CardInvalid(ConsortiumError):
    """A member card whose self-signature does not verify over its content (changed, or never signed)."""

    reason = "card_invalid"


class GenesisUnsigned(ConsortiumError):
    """A genesis that lacks the signature of one or more founding members."""

    reason = "genesis_unsigned"


class GenesisBadSignature(ConsortiumError):
    """A founder's signature that does not verify over the genesis (it changed after being signed)."""

    reason = "genesis_bad_signature"


class KeyExpired(LedgerError):
    """A signature under a key outside its card's validity period (judged at the block's time)."""

    reason = "key_expired"


class GovernanceError(LedgerError):
    """A governance proposal or vote that cannot count (:mod:`ledger.core.governance`); it stays in its block
    with this reason, the membership unchanged."""

    reason = "governance_invalid"


class GovernanceNotNode(GovernanceError):
    """Only node members in force propose and vote (and a member approves the rotation of its own key)."""

    reason = "governance_not_node"


class GovernanceUnknownProposal(GovernanceError):
    """A vote on a proposal that is not pending (never made, applied, rejected or expired)."""

    reason = "governance_unknown_proposal"


class GovernanceDuplicate(GovernanceError):
    """A proposal id already used on this chain, or a second vote by the same member on one proposal."""

    reason = "governance_duplicate"


class KeyRotated(LedgerError):
    """A signature under a member key that governance rotated out: the member signs with its new key."""

    reason = "key_rotated"


class MemberRetired(LedgerError):
    """A signature by a member that governance retired."""

    reason = "member_retired"
