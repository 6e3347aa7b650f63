"""The consortium's clock ticks by itself: real node processes, no manual ``system.tick``.

A solo consortium with e-ticket rules and short windows (ticket validity 7 s, overdue after 6 s + 3 s,
a permit valid for seconds) ticks every second: tickets and permits expire and an overdue trip raises
疑似偷倒.  An etcd-ordered consortium elects one scheduler through an etcd lease; when it is killed
another node takes over and the ticks go on, never two in one interval.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger.core.builder import Outcome
from ledger.core.transaction import Transaction
from ledger.eticket.machine import EticketMachine
from ledger.eticket.testing import World
from ledger.eticket.units import iso
from ledger.store.keyfiles import read_private_key
from tests.functional.tls_fixtures import HTTP, NODE_MEMBER
from tools.local_consortium import LocalConsortium

pytestmark = pytest.mark.slow

SHORT = {"ticket_validity_h": "0.002", "receipt_margin_min": "0.05", "min_trip_minutes": "0.1",
         "avg_speed_kmh": 100000}


@dataclass
class NodeWorld(World):
    """The e-ticket test world's operations, submitted to a real node at the real time."""

    url: str = ""

    def tx(self, type: str, payload: Any, actor: str = "operator:u1", *, signer: str = "gateway",
           at: int | None = None) -> Transaction:
        self.clock = int(time.time())
        return super().tx(type, payload, actor, signer=signer, at=at)

    def apply(self, tx: Transaction, *, block_time: int | None = None) -> Outcome:
        r = HTTP.post(self.url + "/v1/transactions", json=tx.to_dict(), params={"wait": 20}, timeout=40)
        d = r.json()
        return Outcome(code=str(d.get("code") or d.get("reason") or d.get("status")), message=r.text)


def _wait_for(what: str, probe: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.3)


def _query(url: str, name: str, **kwargs: Any) -> Any:
    return HTTP.post(f"{url}/v1/query/{name}", json=kwargs, timeout=10).json()["result"]


def _chain_ticks(url: str, codes: list[str] | None = None) -> list[dict[str, Any]]:
    """Every system.tick on a node's chain (their outcome codes appended to ``codes``)."""
    ticks: list[dict[str, Any]] = []
    start = 0
    while True:
        blocks = HTTP.get(url + "/v1/blocks", params={"start": start, "limit": 100}, timeout=10).json()["blocks"]
        if not blocks:
            return ticks
        for b in blocks:
            mine = [t for t in b["transactions"] if t["tx"]["type"] == "system.tick"]
            ticks += [t["tx"] for t in mine]
            if codes is not None:
                codes += [t["code"] for t in mine]
        start += len(blocks)


def _slots(ticks: list[dict[str, Any]], interval: float) -> list[int]:
    return [int(Transaction.from_dict(t).time.timestamp() // interval) for t in ticks]


def _scheduler(lc: LocalConsortium) -> dict[str, dict[str, Any]]:
    return {s["node"]: s.get("scheduler") or {} for s in lc.status() if not s.get("down")}


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    lc = LocalConsortium(root=tmp_path_factory.mktemp("ticks-solo"))
    lc.up(nodes=4, ordering="solo", state_machine="eticket", tick_interval_s=1.0, eticket=SHORT)
    lc.mount(HTTP, NODE_MEMBER)
    yield lc
    lc.down()


def _world(lc: LocalConsortium) -> NodeWorld:
    desc = lc.describe()
    consortium = lc.consortium()
    keys = {p.stem: read_private_key(p) for p in Path(desc["keys_dir"]).glob("*.pem")}
    url = desc["nodes"][1]["url"]  # not the orderer's node: the rules run the same everywhere
    return NodeWorld(consortium, keys, EticketMachine.from_consortium(consortium), int(time.time()), url=url)


def test_expiry_and_overdue_fire_without_a_manual_tick(solo: LocalConsortium) -> None:
    """With no manual call: a ticket past its validity turns expired, a permit past valid_to turns expired,
    and a truck that left and never arrived raises suspected_dumping; every tick on the chain was
    submitted by the solo orderer's node's scheduler (shown in its /status, last_tick in +08:00)."""
    world = _world(solo)
    world.setup_registry()
    world.register_act_key("gate:exit:P-001")  # a new consortium wants gate scans signed by the gate's own key
    world.approved_permit("PM-1")
    short = world.apply_permit("PM-2", valid_to=iso(int(time.time()) + 4))
    assert short.code == "valid", short.message
    assert world.issue("T-1").code == "valid"
    assert world.issue("T-2", truck="TR-2").code == "valid"
    assert world.depart("T-2", plate="渝A23456").code == "valid"
    url = world.url
    _wait_for("T-1 expired", lambda: _query(url, "ticket", ticket_id="T-1")["state"] == "expired")
    _wait_for("PM-2 expired", lambda: _query(url, "permit", permit_id="PM-2")["state"] == "expired")
    found = _wait_for("suspected_dumping on T-2", lambda: [
        v for v in _query(url, "violations", ticket_id="T-2") if v["type"] == "suspected_dumping"])
    assert len(found) == 1
    assert _query(url, "ticket", ticket_id="T-2")["state"] == "departed"
    assert _query(url, "permit", permit_id="PM-1")["state"] == "approved"
    leader = solo.describe()["nodes"][0]
    codes: list[str] = []
    ticks = _chain_ticks(url, codes)
    assert set(codes) == {"valid"}
    assert ticks and {t["actor"] for t in ticks} == {f"system:scheduler:{leader['name']}"}
    assert {t["submitter"] for t in ticks} == {world.keys[leader["name"]].key_id}
    slots = _slots(ticks, 1.0)
    assert len(set(slots)) == len(slots)
    sched = _scheduler(solo)
    assert sched[leader["name"]]["leader"] is True and sched[leader["name"]]["last_tick"].endswith("+08:00")
    assert [n for n, s in sched.items() if s.get("leader")] == [leader["name"]]


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalConsortium]:
    lc = LocalConsortium(root=tmp_path_factory.mktemp("ticks-etcd"))
    lc.up(nodes=4, ordering="etcd", state_machine="null", tick_interval_s=1.0, scheduler_lease_s=2.0)
    lc.mount(HTTP, NODE_MEMBER)
    yield lc
    lc.down()


@pytest.mark.etcd
@pytest.mark.skipif(shutil.which("etcd") is None, reason="Debian's etcd-server is not installed")
def test_etcd_scheduler_takeover(etcd: LocalConsortium) -> None:
    """Exactly one node leads through the etcd lease; killed, another takes over within a few seconds and the
    ticks continue; the chain never holds two ticks of one interval."""
    leaders = _wait_for("one scheduler leader", lambda: [n for n, s in _scheduler(etcd).items() if s.get("leader")])
    assert len(leaders) == 1
    first = leaders[0]
    _wait_for("ticks from the first leader", lambda: _scheduler(etcd)[first].get("ticks", 0) >= 3)
    etcd.stop(first, kill=True)
    others = [n["url"] for n in etcd.describe()["nodes"] if n["name"] != first]
    second = _wait_for("a new leader", lambda: [n for n, s in _scheduler(etcd).items() if s.get("leader")])
    assert len(second) == 1 and second[0] != first
    _wait_for("ticks from the new leader", lambda: _scheduler(etcd)[second[0]].get("ticks", 0) >= 3)
    new_actor = f"system:scheduler:{second[0]}"
    ticks = _wait_for("the new leader's ticks on the chain", lambda: (
        lambda got: got if any(t["actor"] == new_actor for t in got) else None)(_chain_ticks(others[0])))
    actors = {t["actor"] for t in ticks}
    assert actors == {f"system:scheduler:{first}", f"system:scheduler:{second[0]}"}
    slots = _slots(ticks, 1.0)
    assert len(set(slots)) == len(slots), json.dumps(sorted(slots))
    etcd.start(first)
    # the restarted node campaigns but the key is held: still one leader
    _wait_for("restarted node up", lambda: _scheduler(etcd).get(first) is not None)
    assert len([n for n, s in _scheduler(etcd).items() if s.get("leader")]) == 1
