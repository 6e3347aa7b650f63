"""The JSON messages of a consortium node's HTTP API (``consortium_nodes.http``), typed for its clients.

Here in the shared ``ledger`` package so that a client (the API's gateway, ``ticket_api.ledger_client``) reads
the same shapes the node writes without importing the node.  Only what clients read is named; a node may add
members.  Times and hashes are strings, heights and indexes integers (``-1``: no block yet).

=====================================  ======================================================================
``POST /v1/transactions``              one transaction: :class:`Submitted` (202), :class:`TxStatus` with
                                       ``?wait=S`` (200 final, 202 not yet), :class:`Rejected` (4xx);
                                       ``{"transactions": [...]}``: :class:`SubmittedBatch`
``GET /v1/transactions/<tx_id>``       :class:`TxStatus` (404 ``unknown`` with ``reason: not_found``)
``POST /v1/transactions/status``       :class:`TxStatuses` (``{"tx_ids": [...], "detail": true}``)
``POST /v1/query/<name>``              :class:`QueryAnswer`
``POST /v1/provenance``                :class:`ProvenanceExport` (``ledger.verify.provenance``)
``GET /status``                        :class:`NodeStatus` (a client's poll of every node: :class:`NodeReport`)
any refusal                            :class:`ErrorAnswer`
=====================================  ======================================================================
"""

from __future__ import annotations

from typing import Any, NotRequired, Required, TypedDict


class ErrorBody(TypedDict):
    code: str
    message: str


class ErrorAnswer(TypedDict, total=False):
    """A node's refusal: ``{"error": {"code", "message"}, "reason"}`` (the reason code twice)."""

    error: ErrorBody
    reason: str
    message: str


class Submitted(TypedDict):
    """One transaction handed to a node's pool: ``accepted``, ``known`` (already there) or ``rejected``."""

    tx_id: str
    status: str
    reason: NotRequired[str]
    message: NotRequired[str | None]


class Rejected(Submitted):
    """A transaction the node refused at admission (4xx)."""

    error: ErrorBody


class SubmittedBatch(TypedDict):
    results: list[Submitted]


class TxStatus(TypedDict):
    """Where a transaction is: ``unknown``, ``pending`` (in a pool), ``committed`` (in a block) or ``final``."""

    tx_id: str
    status: str
    height: NotRequired[int]
    position: NotRequired[int]
    index: NotRequired[int]
    code: NotRequired[str]  # the validation code in its block: "valid" or the refusal's reason
    block_hash: NotRequired[str]  # once final
    certificate: NotRequired[list[dict[str, Any]]]  # once final: the node signatures over the block header
    tx: NotRequired[dict[str, Any]]  # GET with the stored transaction
    reason: NotRequired[str]  # "not_found" with status "unknown"


class TxDetail(TypedDict):
    status: str
    code: str | None
    height: int | None


class TxStatuses(TypedDict):
    """Many transactions at once, by tx id (``detail``: :class:`TxDetail`; else the status string)."""

    statuses: dict[str, TxDetail]


class QueryAnswer(TypedDict):
    """A read-only query's ``result`` (``ledger.eticket.queries``) and the node's heights when it answered."""

    result: Any
    height: int
    final_height: int


class Certificate(TypedDict):
    """The newest final block's certificate as a node holds it."""

    height: int
    header_hash: str
    signers: list[str]  # node member names
    quorum: int
    nodes: int


class Divergence(TypedDict):
    height: int
    member: str
    their_hash: str
    our_hash: str


class NodeStatus(TypedDict):
    """``GET /status`` (``genesis``: the hash of the node's consortium document; ``ready`` is false while the
    node has a ``fault``)."""

    node: str
    genesis: str
    height: int
    head: str | None
    final_height: int
    certificate: Certificate | None
    ordering: str
    transactions: int
    log_root: str
    pool: int
    diverged: list[Divergence]
    fault: str | None
    ready: bool
    skipped_batches: NotRequired[dict[str, Any]]  # {"count", "last": {"seq", "proposer", "reason", "message"}}
    withheld_signatures: NotRequired[dict[str, Any]]  # {"count", "first": {"height", "timestamp", "reason"}}
    state_digest: str | None
    keys_expiring: NotRequired[list[dict[str, Any]]]  # [{"member", "key_id", "not_after", "days_left"}]
    own_key: NotRequired[dict[str, Any]]  # {"member", "key_id", "not_after", "days_left", "expired", "refused"}


class NodeReport(TypedDict, total=False):
    """One node as a client (``ticket_api.ledger_client.NodeClient.statuses``) saw it: its ``url`` and
    ``reachable``, then its ``GET /status`` (:class:`NodeStatus`) when it answered, the ``error`` (exception
    class name) when not."""

    url: Required[str]
    reachable: Required[bool]
    error: str
    node: str
    height: int
    head: str | None
    final_height: int
    certificate: Certificate | None
    ordering: str
    transactions: int
    log_root: str
    pool: int
    diverged: list[Divergence]
    fault: str | None
    ready: bool
    state_digest: str | None
    keys_expiring: list[dict[str, Any]]
    own_key: dict[str, Any]


class ProofPath(TypedDict):
    leaf: str
    index: int
    hashes: list[str]


class ProvenanceRecord(TypedDict):
    tx_id: str
    index: int
    height: int
    code: str
    type: str
    timestamp: str
    actor: str
    payload: dict[str, Any]
    #: who did the act: {"key_id", "member"} or {"key_id", "device"} (docs/PROVENANCE.md "Signers")
    signer: dict[str, str]
    relayed_by: NotRequired[dict[str, str]]  # the member that submitted an act its actor signed
    body: str  # base64 of the signed transaction body
    proof: ProofPath


class ObjectProof(TypedDict):
    """v2: the object's record count and chain head, proven in the object map the checkpoint commits to."""

    name: str  # "<kind>:<id>"
    height: int  # the block height of the checkpoint's object map
    count: int
    head: str  # hex
    index: int  # the object's leaf in the map
    size: int  # leaves in the map
    hashes: list[str]  # RFC 9162 inclusion path, hex


class ProvenanceExport(TypedDict):
    """Every record of one object with its RFC 9162 inclusion proof to a co-signed checkpoint
    (docs/PROVENANCE.md; ``object`` in format ``muck-ledger-provenance/v2``)."""

    format: str
    subject: dict[str, Any]
    origin: str
    consortium: dict[str, Any]
    checkpoint: str  # the C2SP checkpoint note
    records: list[ProvenanceRecord]
    object: NotRequired[ObjectProof]
    #: the membership changes since the genesis, with their signed votes (docs/PROVENANCE.md)
    governance: NotRequired[list[dict[str, Any]]]
