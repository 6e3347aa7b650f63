"""E-ticket (电子渣票) business rules as a deterministic state machine; see docs/ETICKET.md."""

from __future__ import annotations

from .errors import EticketError, PayloadError, Refusal, UnknownType
from .machine import EticketMachine
from .params import Params
from .reasons import CODES, MESSAGES, describe

__all__ = [
    "CODES",
    "MESSAGES",
    "EticketError",
    "EticketMachine",
    "Params",
    "PayloadError",
    "Refusal",
    "UnknownType",
    "describe",
]
