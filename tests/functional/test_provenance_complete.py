"""Provenance exports that prove completeness (format muck-ledger-provenance/v2), through HTTP against the real
stack: the genuine export verifies offline with scripts/verify-export; a record removed, swapped, duplicated or
added, or the object proof altered, each fails with its own one-line reason and exit status 1."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from .serve_fixtures import Stack, stack, verify_export  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow]
TRUCK = "TR-0003"


def call(s: Stack, method: str, path: str, role: str, body: Any = None) -> requests.Response:
    return requests.request(method, s.api + path, json=body, headers=s.headers(role), timeout=60)


@pytest.fixture(scope="module")
def exports(stack: Stack) -> dict[str, Any]:  # noqa: F811
    """A demo truck changed twice (three records) and another truck's export (for a foreign record)."""
    for capacity in ("19", "20"):
        r = call(stack, "POST", "/api/v1/registry/truck", "operator",
                 {"truck_id": TRUCK, "plate": "渝B34567", "company_id": "C-01", "capacity_m3": capacity,
                  "update": True})
        assert r.status_code in (200, 201), r.text
    own = call(stack, "GET", f"/api/v1/provenance/truck/{TRUCK}", "regulator")
    other = call(stack, "GET", "/api/v1/provenance/truck/TR-0001", "regulator")
    assert own.status_code == 200 and other.status_code == 200, own.text + other.text
    return {"own": own.json(), "other": other.json()}


def test_the_genuine_export_proves_it_holds_every_record(stack: Stack, exports: dict[str, Any],  # noqa: F811
                                                         tmp_path: Path) -> None:
    """The export is format v2 with the truck's three records in chain order, and verify-export says OK
    (all records up to a co-signed block) with exit status 0."""
    export = exports["own"]
    assert export["format"] == "muck-ledger-provenance/v2"
    assert [r["type"] for r in export["records"]] == ["registry.truck"] * 3
    assert export["object"]["name"] == f"truck:{TRUCK}" and export["object"]["count"] == 3
    done = verify_export(stack, export, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK: all 3 records") and "up to block" in done.stdout


def _remove(e: dict[str, Any], other: dict[str, Any]) -> None:
    del e["records"][1]


def _swap(e: dict[str, Any], other: dict[str, Any]) -> None:
    e["records"][0], e["records"][1] = e["records"][1], e["records"][0]


def _duplicate(e: dict[str, Any], other: dict[str, Any]) -> None:
    e["records"].insert(1, copy.deepcopy(e["records"][0]))


def _add(e: dict[str, Any], other: dict[str, Any]) -> None:
    e["records"].append(copy.deepcopy(other["records"][0]))
    e["records"].sort(key=lambda r: r["index"])


def _remove_newest_and_claim_fewer(e: dict[str, Any], other: dict[str, Any]) -> None:
    del e["records"][-1]
    e["object"]["count"] = 2


def _drop_object(e: dict[str, Any], other: dict[str, Any]) -> None:
    del e["object"]


def _downgrade(e: dict[str, Any], other: dict[str, Any]) -> None:
    del e["object"], e["records"][1]
    e["format"] = "muck-ledger-provenance/v1"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_remove, "FAILED: completeness: 1 of the object's 3 records are missing (removed)"),
        (_swap, "FAILED: completeness: records are not in chain order (reordered)"),
        (_duplicate, "FAILED: completeness: a record appears twice (duplicated)"),
        (_add, "FAILED: completeness: 1 records beyond the object's 3 (added)"),
        (_remove_newest_and_claim_fewer, "FAILED: completeness: the object's head is not in the co-signed object map"),
        (_drop_object, "FAILED: completeness: the export has no object proof under a checkpoint object map"),
        (_downgrade, "FAILED: completeness: format v1 cannot prove that no record is missing (--allow-v1 to accept)"),
    ],
)
def test_a_tampered_export_fails_with_its_reason(stack: Stack, exports: dict[str, Any], tmp_path: Path,  # noqa: F811
                                                 tamper: Callable[[dict[str, Any], dict[str, Any]], None],
                                                 reason: str) -> None:
    """Each tampering (every remaining record still genuinely signed and in the log) fails verify-export
    with exit status 1 and a distinct one-line reason first."""
    export = copy.deepcopy(exports["own"])
    tamper(export, exports["other"])
    done = verify_export(stack, export, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == reason, done.stdout
