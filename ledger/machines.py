"""The state machines a chain can run, by the name a node's configuration or a consortium description gives."""

from __future__ import annotations

from collections.abc import Callable

from ledger.core.builder import NullStateMachine, StateMachine
from ledger.core.consortium import Consortium
from ledger.errors import ConsortiumError

MachineFactory = Callable[[Consortium], StateMachine]

#: Every name :func:`machine_factory` knows: ``eticket`` runs the muck-ticket rules, ``null`` accepts every
#: well-signed transaction.
NAMES = ("eticket", "null")


def _eticket(consortium: Consortium) -> StateMachine:
    from ledger.eticket import EticketMachine

    return EticketMachine.from_consortium(consortium)


def _null(_consortium: Consortium) -> StateMachine:
    return NullStateMachine()


_FACTORIES: dict[str, MachineFactory] = {"eticket": _eticket, "null": _null}


def machine_factory(name: str) -> MachineFactory:
    """The factory of the state machine called ``name``; ``ConsortiumError`` for a name not in :data:`NAMES`."""
    try:
        return _FACTORIES[name]
    except KeyError:
        raise ConsortiumError(f"unknown state machine {name!r} (use {' or '.join(map(repr, NAMES))})") from None


def make_machine(name: str, consortium: Consortium) -> StateMachine:
    """A fresh state machine called ``name`` for ``consortium``."""
    return machine_factory(name)(consortium)
