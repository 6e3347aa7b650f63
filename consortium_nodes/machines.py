"""Choose the state machine a node runs, by name from its configuration."""

from __future__ import annotations

from consortium_nodes.errors import ConfigError
from ledger.core.consortium import Consortium
from ledger.core.statemachine import NullStateMachine, StateMachine


def make_machine(name: str, consortium: Consortium) -> StateMachine:
    """``null`` accepts every well-signed transaction; ``eticket`` runs the muck-ticket rules."""
    if name == "null":
        return NullStateMachine()
    if name == "eticket":
        from ledger.eticket import EticketMachine

        return EticketMachine.from_consortium(consortium)
    raise ConfigError(f"unknown state machine {name!r} (use 'eticket' or 'null')")
