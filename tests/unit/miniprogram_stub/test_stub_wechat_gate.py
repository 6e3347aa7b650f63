"""The fake WeChat server, the API client and the offline gate library (in-process)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from requests.adapters import BaseAdapter

from ledger.core.encoding import CHINA_TZ
from ledger.qrticket.revocations import BadRevocationSignature, sign_list
from ledger.qrticket.ticket import TicketError, decode_ticket, encode_ticket
from miniprogram_stub.client import ApiCallError, ApiClient
from miniprogram_stub.errors import OfflineUnavailable
from miniprogram_stub.gate import OfflineGate
from miniprogram_stub.wechat import create_wechat_app
from ticket_api.app import create_app
from ticket_api.auth import ctx
from ticket_api.services import Services, Submission, Unavailable
from ticket_api.testing import app_config, issuer_key, sample_claims
from ticket_api.tokens import Principal

KEY = issuer_key()
NOW = datetime.now(CHINA_TZ).replace(second=0, microsecond=0)


class FlaskAdapter(BaseAdapter):
    """Sends requests' requests to a Flask app in-process; ``down`` simulates no network."""

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.client = app.test_client()
        self.down = False

    def send(self, request: requests.PreparedRequest, **_kwargs: Any) -> requests.Response:
        if self.down:
            raise requests.ConnectionError("network down")
        url = requests.utils.urlparse(request.url)
        path = url.path + (f"?{url.query}" if url.query else "")
        r = self.client.open(path, method=request.method, data=request.body, headers=dict(request.headers))
        resp = requests.Response()
        resp.status_code = r.status_code
        resp._content = r.data
        resp.headers = requests.structures.CaseInsensitiveDict(r.headers)
        resp.url = request.url or ""
        resp.request = request
        return resp

    def close(self) -> None:
        pass


def session_for(app: Flask) -> tuple[requests.Session, FlaskAdapter]:
    s = requests.Session()
    adapter = FlaskAdapter(app)
    s.mount("http://api", adapter)
    return s, adapter


class LedgerSync(Unavailable):
    """A sync service that, like the ledger, accepts each ticket once per gate kind."""

    def __init__(self) -> None:
        self.used: dict[tuple[str, str], str] = {}
        self.seen: dict[str, dict[str, Any]] = {}

    def sync(
        self, principal: Principal, scans: Sequence[Mapping[str, Any]], sub: Submission
    ) -> dict[str, Any]:
        results = []
        for scan in scans:
            if scan["scan_id"] in self.seen:
                results.append({**self.seen[scan["scan_id"]], "duplicate": True})
                continue
            try:
                ticket_id: str | None = decode_ticket(scan["qr"])[0].ticket_id
            except TicketError:
                ticket_id = None
            res: dict[str, Any] = {"scan_id": scan["scan_id"], "ticket_id": ticket_id, "duplicate": False}
            if not scan["offline_verdict"]["accepted"] or ticket_id is None:
                res.update(accepted=False, reason=scan["offline_verdict"]["reason"])
            elif (ticket_id, scan["kind"]) in self.used:
                res.update(accepted=False, reason="already_departed", violation_id="WPYS2026112322000000001")
            else:
                self.used[(ticket_id, scan["kind"])] = scan["scan_id"]
                res.update(accepted=True, reason=None)
            self.seen[scan["scan_id"]] = res
            results.append(res)
        return {
            "results": results,
            "accepted": sum(r["accepted"] for r in results),
            "refused": sum(not r["accepted"] for r in results),
        }


@pytest.fixture
def api(tmp_path: Path) -> Flask:
    u: Any = LedgerSync()
    return create_app(
        app_config(
            f"sqlite:///{tmp_path}/api.sqlite",
            SERVICES=Services(permits=u, tickets=u, gates=u, trips=u, audit=u),
        )
    )


def gate_token(app: Flask, tenant: str = "P-001") -> str:
    with app.app_context():
        return ctx().tokens.issue(role="exit_gate", tenant=tenant, subject="g").token


def current_qr(**kw: Any) -> str:
    start = NOW - timedelta(hours=1)
    return encode_ticket(sample_claims(valid_from=start, valid_until=start + timedelta(hours=24), **kw), KEY)


def test_fake_wechat_codes() -> None:
    """test-<openid> codes log in once; unknown codes are 40029; wrong app credentials 40125."""
    c = create_wechat_app(codes={"abc": "o-mapped"}).test_client()
    q = {"appid": "wx-test-appid", "secret": "wx-test-secret", "grant_type": "authorization_code"}
    assert c.get("/sns/jscode2session", query_string={**q, "js_code": "test-o1"}).json["openid"] == "o1"
    assert c.get("/sns/jscode2session", query_string={**q, "js_code": "test-o1"}).json["errcode"] == 40163
    assert c.get("/sns/jscode2session", query_string={**q, "js_code": "abc"}).json["openid"] == "o-mapped"
    assert c.get("/sns/jscode2session", query_string={**q, "js_code": "zzz"}).json == {
        "errcode": 40029,
        "errmsg": "invalid code",
    }
    assert (
        c.get("/sns/jscode2session", query_string={**q, "secret": "x", "js_code": "test-o2"}).json["errcode"]
        == 40125
    )


def test_client_raises_reason_and_returns_gate_refusals(api: Flask) -> None:
    """Errors raise ApiCallError with the reason; a gate refusal is returned as a result."""
    s, _ = session_for(api)
    client = ApiClient("http://api", gate_token(api), session=s)
    refusal = client.gate_exit(qr=current_qr(), plate="渝B00000", covered=True)
    assert refusal["accepted"] is False and refusal["reason"] == "wrong_truck"
    with pytest.raises(ApiCallError) as info:
        ApiClient("http://api", "mtk_bad", session=s).me()
    assert (info.value.status, info.value.reason) == (401, "token_invalid")
    assert client.me()["role"] == "exit_gate"
    assert client.keys()["current_key_id"] == KEY.key_id


def test_offline_gate_verifies_without_network_and_syncs_later(api: Flask, tmp_path: Path) -> None:
    """Keys cached while online let the gate verify offline; the queue syncs once back online."""
    s, adapter = session_for(api)
    gate = OfflineGate(
        "http://api",
        gate_token(api),
        kind="exit",
        site_id="P-001",
        db_path=tmp_path / "gate.sqlite",
        session=s,
    )
    assert gate.refresh_keys()
    adapter.down = True
    cached = gate.keys()
    assert not gate.refresh_keys() and KEY.key_id in cached
    ok = gate.scan(current_qr(), "渝A12345", covered=True)
    assert ok.accepted and ok.ticket_id == "ET202611230001"
    again = gate.scan(current_qr(), "渝A12345", covered=True)
    assert (again.accepted, again.reason) == (False, "already_departed")
    assert gate.scan(current_qr(), "渝A99999", covered=True).reason == "wrong_truck"
    assert gate.scan(current_qr(ticket_id="ET2"), "渝A12345", covered=False).reason == "uncovered_load"
    assert gate.scan("MT1:GARBAGE", "渝A12345", covered=True).reason == "malformed"
    report = gate.sync()
    assert report.error and report.error.startswith("unreachable") and len(gate.pending()) == 5
    adapter.down = False
    report = gate.sync()
    assert report.ok and report.sent == 5 and report.accepted == 1 and report.refused == 4
    assert gate.pending() == [] and gate.sync().sent == 0
    # a restarted gate still has its keys and memory
    gate.close()
    adapter.down = True
    gate2 = OfflineGate(
        "http://api", "t", kind="exit", site_id="P-001", db_path=tmp_path / "gate.sqlite", session=s
    )
    assert gate2.scan(current_qr(), "渝A12345", covered=True).reason == "already_departed"


def test_ticket_used_twice_offline_becomes_a_violation_at_sync(api: Flask, tmp_path: Path) -> None:
    """Two offline gates both accept the same ticket; the second sync is refused with a violation id."""
    s, adapter = session_for(api)
    token = gate_token(api)
    gates = [
        OfflineGate(
            "http://api",
            token,
            kind="exit",
            site_id="P-001",
            gate_id=f"G{i}",
            db_path=tmp_path / f"g{i}.sqlite",
            session=s,
        )
        for i in (1, 2)
    ]
    for g in gates:
        assert g.refresh_keys()
    adapter.down = True
    assert all(g.scan(current_qr(), "渝A12345", covered=True).accepted for g in gates)
    adapter.down = False
    first, second = gates[0].sync(), gates[1].sync()
    assert first.accepted == 1 and not first.violations
    assert second.refused == 1 and second.violations[0]["reason"] == "already_departed"
    assert second.violations[0]["violation_id"].startswith("WPYS")


def test_gate_keeps_queue_on_server_errors(api: Flask, tmp_path: Path) -> None:
    """A 401 from sync is reported and nothing is marked synced."""
    s, _ = session_for(api)
    gate = OfflineGate(
        "http://api", "mtk_revoked", kind="exit", site_id="P-001", db_path=tmp_path / "g.sqlite", session=s
    )
    gate.refresh_keys()
    gate.scan(current_qr(), "渝A12345", covered=True)
    report = gate.sync()
    assert report.error == "HTTP 401 token_invalid" and len(gate.pending()) == 1


class RevocationFeed(LedgerSync):
    """Serves the revocation list the test sets (``doc``) and remembers each ``since`` asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.doc: dict[str, Any] = {}
        self.asked: list[str | None] = []

    def revocations(self, principal: Principal, since: str | None) -> dict[str, Any]:
        self.asked.append(since)
        return self.doc


def test_offline_gate_caches_verifies_and_ages_its_revocation_list(tmp_path: Path) -> None:
    """The gate stores a verified list and refuses the voided ticket on it; a later refresh asks for the delta
    since its version and merges it; a forged list raises bad_revocation_signature and leaves the cache as it
    was; offline the refresh answers False, and once the list is older than max_revocation_age the gate
    raises revocations_stale instead of scanning."""
    feed = RevocationFeed()
    app = create_app(app_config(f"sqlite:///{tmp_path}/api.sqlite",
                                SERVICES=Services(permits=feed, tickets=feed, gates=feed, trips=feed, audit=feed)))
    s, adapter = session_for(app)
    clock = [NOW]
    gate = OfflineGate("http://api", gate_token(app), kind="exit", site_id="P-001", db_path=tmp_path / "g.sqlite",
                       session=s, clock=lambda: clock[0], max_revocation_age=timedelta(minutes=30))
    assert gate.refresh_keys()
    with pytest.raises(OfflineUnavailable) as none_yet:
        gate.scan(current_qr(), "渝A12345", covered=True)
    assert none_yet.value.reason == "revocations_missing"
    feed.doc = sign_list({"version": 7, "tickets": [{"ticket_id": "ET202611230001", "version": 7}]}, KEY,
                         issued_at=NOW)
    assert gate.refresh_revocations() and feed.asked == [None]
    assert gate.scan(current_qr(), "渝A12345", covered=True).reason == "voided"
    feed.doc = sign_list({"version": 9, "since_version": 7, "permits": [{"permit_id": "PM-9", "version": 8}]},
                         KEY, issued_at=NOW + timedelta(minutes=1))
    assert gate.refresh_revocations() and feed.asked[-1] == "7"
    rl = gate.revocation_list()
    assert rl is not None and (rl.version, rl.tickets, rl.permits) == (9, {"ET202611230001"}, {"PM-9"})
    feed.doc = sign_list({"version": 12}, issuer_key("another"), issued_at=NOW) | {"key_id": KEY.key_id}
    with pytest.raises(BadRevocationSignature):
        gate.refresh_revocations()
    assert gate.revocation_status()["version"] == 9
    adapter.down = True
    clock[0] = NOW + timedelta(minutes=20)
    assert not gate.refresh_revocations()
    assert gate.scan(current_qr(ticket_id="ET3"), "渝A12345", covered=True).accepted
    clock[0] = NOW + timedelta(minutes=45)
    status = gate.revocation_status()
    assert status["stale"] and status["age_seconds"] == 44 * 60
    with pytest.raises(OfflineUnavailable) as stale:
        gate.scan(current_qr(ticket_id="ET4"), "渝A12345", covered=True)
    assert stale.value.reason == "revocations_stale"
