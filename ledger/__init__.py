"""Permissioned, hash-chained ledger for electronic muck tickets (电子渣票)."""

__version__ = "0.1.0"
