"""Audit a local consortium (``var/consortium.json``) with :func:`ledger.verify.audit.audit_nodes`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ledger.cli.audit import _machine_factory, _node_dbs
from ledger.store.keyfiles import read_consortium
from ledger.verify.audit import audit_nodes


def node_dbs(desc: dict[str, Any]) -> dict[str, str]:
    """Each node's database URL, from its configuration file."""
    return {n["name"]: str(json.loads(Path(n["config"]).read_text(encoding="utf-8"))["db"]) for n in desc["nodes"]}


def audit_consortium(desc_path: Path, *, workers: int | None = None,
                     kept_checkpoint: str | None = None) -> dict[str, Any]:
    """Verify, re-execute and compare every node of a local consortium."""
    dbs, genesis, rules = _node_dbs(desc_path)
    return audit_nodes(dbs, read_consortium(genesis), machine_factory=_machine_factory(rules),
                       kept_checkpoint=kept_checkpoint, workers=workers)
