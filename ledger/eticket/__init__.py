"""E-ticket (电子渣票) business rules as a deterministic state machine; see docs/ETICKET.md."""

from __future__ import annotations

from ledger.eticket.errors import CODES, MESSAGES, EticketError, PayloadError, Refusal, UnknownType, describe
from ledger.eticket.machine import EticketMachine
from ledger.eticket.params import Params, default_parameters

__all__ = [
    "CODES",
    "MESSAGES",
    "EticketError",
    "EticketMachine",
    "Params",
    "PayloadError",
    "Refusal",
    "UnknownType",
    "default_parameters",
    "describe",
]
