"""``NodeClient`` reads the nodes' answers (``ledger.wire``) over a fake HTTP session."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from ticket_api.errors import ServiceUnavailable
from ticket_api.ledger_client import LedgerRefusal, NodeClient


class _Resp:
    def __init__(self, status: int, body: Any) -> None:
        self.status_code = status
        self.content = b"" if body is None else json.dumps(body).encode()

    def json(self) -> Any:
        return json.loads(self.content)


class _Session:
    """Answers by (method, path); a URL listed in ``down`` raises a connection error."""

    def __init__(self, answers: dict[tuple[str, str], _Resp], down: frozenset[str] = frozenset()) -> None:
        self.answers = answers
        self.down = down
        self.calls: list[tuple[str, str, Any]] = []

    def request(self, method: str, url: str, *, json: Any = None, params: Any = None, timeout: float = 0) -> _Resp:
        base, path = url[: url.index("/", 8)], url[url.index("/", 8):]
        self.calls.append((method, url, json))
        if base in self.down:
            raise requests.ConnectionError("down")
        return self.answers[(method, path)]

    def get(self, url: str, timeout: float = 0) -> _Resp:
        return self.request("GET", url, timeout=timeout)


def _client(session: _Session, urls: tuple[str, ...] = ("http://n1",)) -> NodeClient:
    client = NodeClient(urls=list(urls), wait=0.5)
    client._local.session = session
    return client


def test_query_answers_the_result() -> None:
    s = _Session({("POST", "/v1/query/ticket"): _Resp(200, {"result": {"ticket_id": "ET1"}, "height": 4,
                                                           "final_height": 4})})
    assert _client(s).query("ticket", ticket_id="ET1") == {"ticket_id": "ET1"}
    assert s.calls[0][2] == {"ticket_id": "ET1"}


def test_query_refusal_carries_the_reason() -> None:
    s = _Session({("POST", "/v1/query/nope"): _Resp(400, {"error": {"code": "unknown_query", "message": "no"},
                                                         "reason": "unknown_query"})})
    with pytest.raises(LedgerRefusal) as raised:
        _client(s).query("nope")
    assert raised.value.reason == "unknown_query"


def test_tx_details_and_submit_many() -> None:
    s = _Session({
        ("POST", "/v1/transactions/status"): _Resp(200, {"statuses": {"t1": {"status": "final", "code": "valid",
                                                                             "height": 3}}}),
        ("POST", "/v1/transactions"): _Resp(200, {"results": [{"tx_id": "t1", "status": "accepted"}]}),
    })
    c = _client(s)
    assert c.tx_details(["t1"]) == {"t1": {"status": "final", "code": "valid", "height": 3}}
    assert c.submit_many([{"tx_id": "t1"}]) == [{"tx_id": "t1", "status": "accepted"}]


def test_wait_final_times_out_as_ledger_timeout() -> None:
    s = _Session({("GET", "/v1/transactions/abc"): _Resp(200, {"tx_id": "abc", "status": "pending"})})
    with pytest.raises(ServiceUnavailable) as raised:
        _client(s).wait_final("abc")
    assert raised.value.reason == "ledger_timeout"


def test_wait_final_reads_the_block() -> None:
    s = _Session({("GET", "/v1/transactions/abc"): _Resp(200, {"tx_id": "abc", "status": "final", "code": "valid",
                                                             "height": 7, "index": 12, "block_hash": "ff"})})
    fin = _client(s).wait_final("abc")
    assert (fin.final, fin.code, fin.height, fin.index, fin.block_hash) == (True, "valid", 7, 12, "ff")


def test_provenance_is_the_export() -> None:
    export = {"format": "f", "subject": {"kind": "ticket", "key": "ET1"}, "origin": "o", "consortium": {},
              "checkpoint": "note", "records": []}
    s = _Session({("POST", "/v1/provenance"): _Resp(200, export)})
    assert _client(s).provenance("ticket", "ET1") == export


def test_statuses_lists_unreachable_nodes() -> None:
    s = _Session({("GET", "/status"): _Resp(200, {"node": "n1", "height": 2})}, down=frozenset({"http://n2"}))
    out = _client(s, ("http://n1", "http://n2")).statuses()
    assert out == [{"url": "http://n1", "reachable": True, "node": "n1", "height": 2},
                   {"url": "http://n2", "reachable": False, "error": "ConnectionError"}]


def test_fails_over_to_the_next_node() -> None:
    s = _Session({("POST", "/v1/query/sites"): _Resp(200, {"result": [], "height": 1, "final_height": 1})},
                 down=frozenset({"http://n1"}))
    c = _client(s, ("http://n1", "http://n2"))
    assert c.query("sites") == []
    assert c.query("sites") == []  # round robin: one call starts at n2
    with pytest.raises(ServiceUnavailable):
        _client(_Session({}, down=frozenset({"http://n1"}))).query("sites")
