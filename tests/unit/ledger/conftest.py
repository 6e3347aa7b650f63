"""Fixtures of the ledger core tests: a throwaway consortium and the tamper helpers."""

from __future__ import annotations

from types import ModuleType

import pytest
from ledger_assets import load_tamper_module

from ledger.testing import Throwaway, throwaway_consortium


@pytest.fixture(scope="session")
def tamper_mod() -> ModuleType:
    """tests/assets/make_tampered_chains.py as a module."""
    return load_tamper_module()


@pytest.fixture(scope="session")
def t() -> Throwaway:
    """Four department nodes and a gateway (fresh keys once per test session)."""
    return throwaway_consortium()
