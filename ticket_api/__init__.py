"""HTTP API of the muck e-ticket ledger (mini-program, gates, staff, regulator)."""

__version__ = "0.1.0"
