"""The consortium's act policy, enforced by every node (issue 12 part 3), against the real stack (4 ledger
nodes over mutual TLS): in a new consortium, whose genesis holds the full policy by default
(``FULL_ACT_SIGNED``: decisions, gate scans, camera sightings, GPS batches, violation steps and penalties), a
transaction of each of those types signed with the gateway's member key alone and sent straight to the
consortium is ordered into a block and refused act_unsigned by each of the four nodes — the gateway cannot
scan for a gate, report for a camera or a terminal, or handle a violation or fine anyone for a department."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from ledger.core.encoding import CHINA_TZ, iso
from ledger.core.transaction import Transaction
from ledger.eticket import acts, staff_acts
from ledger.store.keyfiles import read_consortium, read_private_key
from tools.local_consortium import LocalConsortium

from .serve_fixtures import Stack, serve

pytestmark = [pytest.mark.slow]
VID = "FGBY2026112320000000001"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from serve(tmp_path_factory)  # the defaults of a new consortium


def _acts(t: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, actor, payload) of an act of every type family the full policy adds to the decisions."""
    officer = "enforcement:chengguan:forged"
    steps = [(f"violation.{s}", officer, staff_acts.step_payload(s, VID, text, t))
             for s, text in (("confirm", "非误报"), ("dismiss", "误报"), ("dispatch", "悦来街道中心"),
                             ("resolve", "已处置"))]
    return [
        ("gate.exit", "gate:exit:P-001", acts.exit_payload("ET-FORGED-1", "P-001-G1", "渝A12345", True, t)),
        ("gate.receipt", "gate:disposal:S-003",
         acts.receipt_payload("ET-FORGED-1", "S-003-G1", "S-003", "渝A12345", {"volume_m3": "15"}, t)),
        ("camera.sighting", "camera:CAM-P001-EXIT",
         acts.sighting_payload("SGFORGED00000001", "CAM-P001-EXIT", "渝A12345", True, "sha256:" + "0" * 64, t)),
        ("trip.positions", "gps:GPS-9900",
         acts.positions_payload("ET-FORGED-1", [acts.position_point(t, 29.70911, 106.52004, 30.0)], t)),
        *steps,
        ("penalty.record", officer, staff_acts.penalty_payload("PN-FORGED-1", "truck", "TR-0001", "500", t)),
    ]


def test_the_gateway_key_alone_is_refused_for_each_act_by_every_node(stack: Stack) -> None:
    """Each of gate.exit, gate.receipt, camera.sighting, trip.positions, the four violation steps and
    penalty.record, signed by the gateway's member key without its actor's act_sig and submitted straight to a
    node, is committed in a block with code act_unsigned on each of the four nodes (the policy is the
    consortium's, not the API's); the consortium's genesis names that policy."""
    local = LocalConsortium(root=stack.var)
    desc = local.describe()
    genesis = read_consortium(desc["consortium"]).parameters["eticket"]
    assert tuple(genesis["act_signed"]) == acts.FULL_ACT_SIGNED
    gateway = read_private_key(desc["gateway_key"])
    http = local.session("gateway")
    urls = [n["url"] for n in desc["nodes"]]
    t = iso(datetime.now(CHINA_TZ), timespec="seconds")
    sent: dict[str, str] = {}
    for tx_type, actor, payload in _acts(t):
        assert tx_type in acts.FULL_ACT_SIGNED
        tx = Transaction.create(key=gateway, type=tx_type, payload=payload, actor=actor, timestamp=t)
        r = http.post(urls[0] + "/v1/transactions", json=tx.to_dict(), timeout=30)
        assert r.status_code in (200, 202), (tx_type, r.text)
        sent[tx_type] = tx.tx_id
    assert set(sent) >= {*acts.DEVICE_ACTS, "penalty.record", *acts.ENFORCEMENT_ACTS}
    for tx_type, tx_id in sent.items():
        codes = []
        for url in urls:
            st = http.get(f"{url}/v1/transactions/{tx_id}", params={"wait": 20}, timeout=60).json()
            assert st["status"] in ("committed", "final"), (tx_type, url, st)
            codes.append(st.get("code"))
        assert codes == ["act_unsigned"] * 4, (tx_type, codes)
