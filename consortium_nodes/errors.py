"""Typed errors of the consortium nodes, all under one base class."""

from __future__ import annotations

from ledger.errors import LedgerError


class NodeError(LedgerError):
    """Base of node-level failures."""

    reason = "node_error"


class NotReady(NodeError):
    """The node cannot serve this yet (catching up, orderer unreachable)."""

    reason = "not_ready"


class Diverged(NodeError):
    """Another member signed a different header at the same height."""

    reason = "diverged"


class PeerError(NodeError):
    """A peer could not be reached or answered nonsense."""

    reason = "peer_error"


class ConfigError(NodeError):
    """A node configuration file that cannot be used."""

    reason = "bad_config"
    exit_code = 2


class ChainHalted(NodeError):
    """A failure after which the node must not build more blocks (its store and its state disagree)."""

    reason = "chain_halted"


class StoreFailed(ChainHalted):
    """A block was built (the state machine moved on) but the database did not store it."""

    reason = "store_failed"


class StoreTampered(ChainHalted):
    """The stored chain does not re-execute at start: the database was changed behind the node's back."""

    reason = "store_tampered"


class MalformedBatch(NodeError):
    """An ordered batch no node can build a block from as it is: a timestamp that is not ISO 8601
    (``malformed_batch``), or no valid signature of its proposing node (the reason of
    :func:`ledger.core.batch.check_batch`)."""

    reason = "malformed_batch"


class MalformedStream(NodeError):
    """A signature stream (:mod:`consortium_nodes.signature_stream`) that is not a sequence of frames: a bad
    length header, a frame over the limit, a body cut short, a frame that is not a JSON object."""

    reason = "malformed"


class DatabaseHeld(NodeError):
    """Another live process holds this node's database (its lock file is locked)."""

    reason = "database_held"
    exit_code = 2


class PortInUse(NodeError):
    """The node's HTTP port is taken by another process."""

    reason = "port_in_use"
    exit_code = 2


class TlsRequired(ConfigError):
    """A node configured to listen on a non-loopback address without TLS."""

    reason = "tls_required"
