"""Choose the state machine a node runs, by name from its configuration."""

from __future__ import annotations

from consortium_nodes.errors import ConfigError
from ledger import machines
from ledger.core.consortium import Consortium
from ledger.core.statemachine import StateMachine
from ledger.errors import ConsortiumError


def make_machine(name: str, consortium: Consortium) -> StateMachine:
    """``null`` accepts every well-signed transaction; ``eticket`` runs the muck-ticket rules."""
    try:
        factory = machines.machine_factory(name)
    except ConsortiumError as exc:
        raise ConfigError(exc.message) from exc
    return factory(consortium)
