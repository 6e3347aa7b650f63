"""The API's chain status gathers the member keys the nodes report expiring (``keys_expiring``)."""

from __future__ import annotations

from ledger.wire import NodeReport
from ticket_api.adapter.staff import _keys_expiring


def test_keys_expiring_lists_each_key_once_soonest_first() -> None:
    """Every reachable node reports the same keys: the chain status lists each key once, soonest first, and
    an unreachable node or a node of an older version (no ``keys_expiring``) adds nothing."""
    gw = {"member": "gateway", "key_id": "a" * 16, "not_after": "2026-12-20T00:00:00+08:00", "days_left": 17}
    old = {"member": "shengtai", "key_id": "b" * 16, "not_after": "2026-12-01T00:00:00+08:00", "days_left": -2}
    nodes: list[NodeReport] = [
        {"url": "https://n1", "reachable": True, "keys_expiring": [gw, old]},
        {"url": "https://n2", "reachable": True, "keys_expiring": [old, gw]},
        {"url": "https://n3", "reachable": False, "error": "ConnectionError"},
        {"url": "https://n4", "reachable": True},
    ]
    assert _keys_expiring(nodes) == [old, gw]
