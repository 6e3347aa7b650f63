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
