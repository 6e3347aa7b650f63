"""Paths of the ledger test assets and the tamper helpers in tests/assets/make_tampered_chains.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def load_tamper_module() -> ModuleType:
    """tests/assets/make_tampered_chains.py, imported by path (tests/ is not a package)."""
    name = "make_tampered_chains"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ASSETS / "make_tampered_chains.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
