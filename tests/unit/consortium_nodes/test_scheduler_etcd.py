"""EtcdElection's logic against an in-memory etcd (lease grant/keepalive/revoke and the create-if-absent
transaction): who leads, lease expiry, takeover, and no leadership without an answer from etcd."""

from __future__ import annotations

import base64
from typing import Any

from consortium_nodes.ordering import OrderingError
from consortium_nodes.scheduler import EtcdElection


class FakeEtcd:
    """Leases and keys with a clock the test moves (``now``); ``down`` makes every call fail."""

    def __init__(self) -> None:
        self.now = 0.0
        self.leases: dict[int, float] = {}  # id -> expiry
        self.keys: dict[str, tuple[str, int]] = {}  # key -> (value, lease)
        self.next_id = 100
        self.down = False
        self.reads = self.writes = 0

    def expire(self) -> None:
        for lid, until in list(self.leases.items()):
            if until <= self.now:
                del self.leases[lid]
                self.keys = {k: v for k, v in self.keys.items() if v[1] != lid}

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.down:
            raise OrderingError("etcd unavailable")
        self.expire()
        if path == "/lease/grant":
            self.next_id += 1
            self.leases[self.next_id] = self.now + body["TTL"]
            return {"ID": str(self.next_id), "TTL": str(body["TTL"])}
        if path == "/lease/keepalive":
            lid = int(body["ID"])
            if lid not in self.leases:
                return {"result": {"ID": str(lid)}}
            self.leases[lid] = self.now + 3
            return {"result": {"ID": str(lid), "TTL": "3"}}
        if path == "/kv/range":
            self.reads += 1
            key = base64.b64decode(body["key"]).decode()
            if key not in self.keys:
                return {}
            value, lease = self.keys[key]
            return {"kvs": [{"key": body["key"], "value": base64.b64encode(value.encode()).decode(),
                             "lease": str(lease)}]}
        if path == "/kv/lease/revoke":
            self.leases.pop(int(body["ID"]), None)
            self.expire()
            self.keys = {k: v for k, v in self.keys.items() if v[1] in self.leases}
            return {}
        raise AssertionError(path)

    def txn(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.down:
            raise OrderingError("etcd unavailable")
        self.expire()
        self.writes += 1
        key = base64.b64decode(body["compare"][0]["key"]).decode()
        if key not in self.keys:
            put = body["success"][0]["request_put"]
            self.keys[key] = (base64.b64decode(put["value"]).decode(), int(put["lease"]))
            return {"succeeded": True, "responses": [{}]}
        value, lease = self.keys[key]
        kv = {"key": body["compare"][0]["key"], "value": base64.b64encode(value.encode()).decode(),
              "lease": str(lease)}
        return {"responses": [{"response_range": {"kvs": [kv]}}]}


class FakeTransport:
    def __init__(self, etcd: FakeEtcd) -> None:
        self.etcd = etcd

    def call(self, what: str, fn: Any) -> Any:
        etcd = self.etcd

        class Client:
            def get_url(self, path: str) -> str:
                return path

            def post(self, url: str, json: dict[str, Any]) -> dict[str, Any]:
                return etcd.post(url, json)

        return fn(Client())

    def txn(self, what: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.etcd.txn(body)

    def close(self) -> None:
        pass


def _election(etcd: FakeEtcd, name: str) -> EtcdElection:
    e = EtcdElection(name=name, endpoints=["http://127.0.0.1:1"], prefix="/muck/x", ttl=3,
                     monotonic=lambda: etcd.now)
    e._transport = FakeTransport(etcd)  # type: ignore[assignment]
    return e


def test_one_leader_and_takeover_after_lease_expiry() -> None:
    """The first to campaign leads and stays leader while it renews; the others do not; once it stops
    renewing (dead) its lease expires and the next campaign of another node wins."""
    etcd = FakeEtcd()
    a, b = _election(etcd, "chengguan"), _election(etcd, "zhujian")
    assert a.campaign() is True and b.campaign() is False
    for _ in range(5):
        etcd.now += 1
        assert a.campaign() is True and b.campaign() is False
    etcd.now += 2  # a is dead: no renewal
    assert b.campaign() is False  # its lease has 1 s left
    etcd.now += 1.5
    assert b.campaign() is True
    assert etcd.keys["/muck/x/scheduler/leader"][0] == "zhujian"


def test_no_leadership_without_etcd_and_a_new_lease_after_expiry() -> None:
    """Without an answer from etcd a node does not count itself leader; after its lease expired it gets a
    new lease and leads again if nobody else took the key."""
    etcd = FakeEtcd()
    a = _election(etcd, "chengguan")
    assert a.campaign() is True
    etcd.down = True
    assert a.campaign() is False
    etcd.down = False
    etcd.now += 10
    assert a.campaign() is True and len(etcd.leases) == 1


def test_resign_hands_over_at_once() -> None:
    """A node that stops revokes its lease: the key is gone and another node leads at its next campaign."""
    etcd = FakeEtcd()
    a, b = _election(etcd, "chengguan"), _election(etcd, "zhujian")
    assert a.campaign() is True
    a.resign()
    assert b.campaign() is True


def test_steady_state_writes_nothing() -> None:
    """Once a node leads, campaigns only read the key (and the leader keeps its lease alive): no
    transaction reaches etcd's log until the key is free again."""
    etcd = FakeEtcd()
    a, b, c = _election(etcd, "chengguan"), _election(etcd, "zhujian"), _election(etcd, "jiaotong")
    assert a.campaign() is True
    writes = etcd.writes
    for _ in range(10):
        etcd.now += 1
        assert a.campaign() is True and b.campaign() is False and c.campaign() is False
    assert etcd.writes == writes and etcd.reads >= 30
    assert b._lease is None and c._lease is None  # the followers hold no lease they do not need
