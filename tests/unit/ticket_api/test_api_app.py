"""The app in-process: error mapping, i18n, gate checks, idempotency and the service drop-in."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from pyzbar.pyzbar import decode as zbar_decode

from ledger.errors import DuplicateTransaction, StoreError
from ledger.qrticket.gatecheck import TicketClaims
from ledger.qrticket.ticket import encode_ticket
from ticket_api.app import create_app
from ticket_api.auth import ctx
from ticket_api.errors import NotFound
from ticket_api.services import Pending, Services, Submission
from ticket_api.testing import app_config, issuer_key, sample_claims
from ticket_api.tokens import Principal

KEY = issuer_key()


class FakeLedger:
    """Implements every service Protocol in memory, recording the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail: Exception | None = None

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if self.fail is not None:
            raise self.fail

    def create_permit(self, principal: Principal, data: Mapping[str, Any], sub: Submission) -> Any:
        self._call("create_permit", principal, data, sub)
        if not sub.wait:
            return Pending(tx_id="tx-1")
        return {"id": "PM-1", "status": "pending", "required_approvals": ["zhujian"], "extra": 1}

    def decide(self, principal: Principal, permit_id: str, data: Mapping[str, Any], sub: Submission) -> Any:
        self._call("decide", principal, permit_id, data)
        return {"id": permit_id, "status": "approved"}

    def get_permit(self, principal: Principal, permit_id: str) -> Any:
        self._call("get_permit", principal, permit_id)
        raise NotFound(reason="unknown_permit")

    def issue_ticket(self, principal: Principal, data: Mapping[str, Any], sub: Submission) -> Any:
        self._call("issue_ticket", principal, data)
        return {"id": "ET1", "status": "issued", "qr": encode_ticket(sample_claims(), KEY)}

    def get_ticket(self, principal: Principal, ticket_id: str) -> Any:
        self._call("get_ticket", principal, ticket_id)
        return {"id": ticket_id, "status": "issued"}

    def ticket_qr(self, principal: Principal, ticket_id: str) -> str:
        self._call("ticket_qr", principal, ticket_id)
        return encode_ticket(sample_claims(), KEY)

    def history(self, principal: Principal, ticket_id: str) -> Any:
        return {"records": [], "checkpoint": {}}

    def record_exit(
        self, principal: Principal, claims: TicketClaims, data: Mapping[str, Any], sub: Submission
    ) -> Any:
        self._call("record_exit", principal, claims, data)
        return {"accepted": True, "ticket_id": claims.ticket_id, "status": "departed"}

    def record_disposal(
        self, principal: Principal, claims: TicketClaims, data: Mapping[str, Any], sub: Submission
    ) -> Any:
        self._call("record_disposal", principal, claims, data)
        return {"accepted": True, "ticket_id": claims.ticket_id, "status": "received"}

    def sync(self, principal: Principal, scans: Sequence[Mapping[str, Any]], sub: Submission) -> Any:
        return {"results": [], "accepted": 0, "refused": 0}

    def report_positions(
        self, principal: Principal, ticket_id: str, batch: Mapping[str, Any], sub: Submission
    ) -> Any:
        self._call("report_positions", principal, ticket_id, batch)
        return {"ticket_id": ticket_id, "accepted": len(batch["positions"]), "violations": []}

    def audit(self, principal: Principal, params: Mapping[str, Any]) -> Any:
        return {"ok": True}


@pytest.fixture
def fake() -> FakeLedger:
    return FakeLedger()


@pytest.fixture
def app(tmp_path: Path, fake: FakeLedger) -> Iterator[Flask]:
    services = Services(permits=fake, tickets=fake, gates=fake, trips=fake, audit=fake)
    app = create_app(app_config(f"sqlite:///{tmp_path}/api.sqlite", SERVICES=services))

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals /etc/passwd")

    yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def token(app: Flask, role: str, tenant: str, **kw: Any) -> dict[str, str]:
    with app.app_context():
        issued = ctx().tokens.issue(role=role, tenant=tenant, subject=f"{role}-1", **kw)
    return {"Authorization": f"Bearer {issued.token}"}


def now_claims() -> TicketClaims:
    from datetime import datetime

    from ledger.core.encoding import CHINA_TZ

    start = datetime.now(CHINA_TZ).replace(second=0, microsecond=0) - timedelta(hours=1)
    return sample_claims(valid_from=start, valid_until=start + timedelta(hours=24))


def old_claims() -> TicketClaims:
    from datetime import datetime

    from ledger.core.encoding import CHINA_TZ

    start = datetime(2025, 1, 1, 22, 0, tzinfo=CHINA_TZ)
    return sample_claims(valid_from=start, valid_until=start + timedelta(hours=24))


def test_unexpected_exception_is_500_internal_without_traceback(client: FlaskClient) -> None:
    """An unhandled error answers 500 internal; the body has no traceback nor the message."""
    resp = client.get("/boom")
    assert resp.status_code == 500
    assert resp.json == {
        "error": {"code": "internal", "message": "服务器内部错误", "fields": {}},
        "reason": "internal",
    }
    assert b"Traceback" not in resp.data and b"passwd" not in resp.data
    assert resp.headers["X-Request-Id"]


def test_validation_errors_are_422_with_fields_in_english(app: Flask, client: FlaskClient) -> None:
    """A bad body is 422 invalid_request listing the fields; Accept-Language: en gives English."""
    headers = {**token(app, "contractor", "ORG-001"), "Accept-Language": "en"}
    resp = client.post(
        "/api/v1/tickets", json={"permit_id": "PM-1", "volume_m3": "1.25", "bogus": 1}, headers=headers
    )
    assert resp.status_code == 422
    body = resp.json
    assert body["reason"] == "invalid_request"
    assert body["error"]["message"] == "Some request fields are not valid"
    assert {"truck_plate", "disposal_site_id", "volume_m3", "bogus"} <= set(body["error"]["fields"])


def test_ledger_errors_map_by_reason(app: Flask, client: FlaskClient, fake: FakeLedger) -> None:
    """LedgerError subclasses answer their reason with the mapped status (409, 503)."""
    headers = token(app, "contractor", "ORG-001")
    body = {"permit_id": "PM-1", "truck_plate": "渝A12345", "disposal_site_id": "S-003", "volume_m3": "16"}
    fake.fail = DuplicateTransaction("dup")
    resp = client.post("/api/v1/tickets", json=body, headers=headers)
    assert (resp.status_code, resp.json["reason"]) == (409, "duplicate_tx")
    fake.fail = StoreError("db down")
    resp = client.post("/api/v1/tickets", json=body, headers=headers)
    assert (resp.status_code, resp.json["reason"]) == (503, "store_error")


def test_roles_are_enforced_before_the_service(app: Flask, client: FlaskClient, fake: FakeLedger) -> None:
    """A regulator cannot write; a contractor cannot audit: 403 forbidden, service untouched."""
    resp = client.post("/api/v1/permits", json={}, headers=token(app, "regulator", "CQ"))
    assert (resp.status_code, resp.json["reason"]) == (403, "forbidden")
    resp = client.get("/api/v1/audit", headers=token(app, "contractor", "ORG-001"))
    assert (resp.status_code, resp.json["reason"]) == (403, "forbidden")
    assert client.get("/api/v1/audit", headers=token(app, "regulator", "CQ")).json == {"ok": True}
    assert fake.calls == []


def test_service_results_and_pending(app: Flask, client: FlaskClient) -> None:
    """Created objects answer 201 (extra members kept); Prefer: respond-async answers 202 with the tx id."""
    headers = token(app, "contractor", "ORG-001")
    body = {
        "project_id": "P-001",
        "volume_m3": "30000",
        "disposal_site_ids": ["S-003"],
        "truck_plates": ["渝A12345"],
        "valid_from": "2026-11-24T00:00:00+08:00",
        "valid_to": "2027-05-24T00:00:00+08:00",
    }
    resp = client.post("/api/v1/permits", json=body, headers=headers)
    assert resp.status_code == 201 and resp.json["extra"] == 1 and resp.json["status"] == "pending"
    resp = client.post("/api/v1/permits", json=body, headers={**headers, "Prefer": "respond-async"})
    assert resp.status_code == 202 and resp.json == {"tx_id": "tx-1", "status": "submitted"}
    resp = client.get("/api/v1/permits/PM-9", headers=headers)
    assert (resp.status_code, resp.json["reason"]) == (404, "unknown_permit")


def test_idempotency_key_replays_and_refuses_reuse(app: Flask, client: FlaskClient, fake: FakeLedger) -> None:
    """The same key and body replays the first answer without a second call; another body is 422."""
    headers = {**token(app, "contractor", "ORG-001"), "Idempotency-Key": "k-1"}
    body = {"permit_id": "PM-1", "truck_plate": "渝A12345", "disposal_site_id": "S-003", "volume_m3": "16"}
    first = client.post("/api/v1/tickets", json=body, headers=headers)
    second = client.post("/api/v1/tickets", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json == second.json and second.headers["Idempotent-Replayed"] == "true"
    assert [c[0] for c in fake.calls] == ["issue_ticket"]
    other = client.post("/api/v1/tickets", json={**body, "volume_m3": "15"}, headers=headers)
    assert (other.status_code, other.json["reason"]) == (422, "idempotency_key_reused")
    # another principal may use the same key independently
    headers2 = {**token(app, "contractor", "ORG-002"), "Idempotency-Key": "k-1"}
    assert client.post("/api/v1/tickets", json=body, headers=headers2).status_code == 201


def test_5xx_answers_are_not_stored(app: Flask, client: FlaskClient, fake: FakeLedger) -> None:
    """After a 503 the same Idempotency-Key runs the request again."""
    headers = {**token(app, "contractor", "ORG-001"), "Idempotency-Key": "k-2"}
    body = {"permit_id": "PM-1", "truck_plate": "渝A12345", "disposal_site_id": "S-003", "volume_m3": "16"}
    fake.fail = StoreError("down")
    assert client.post("/api/v1/tickets", json=body, headers=headers).status_code == 503
    fake.fail = None
    assert client.post("/api/v1/tickets", json=body, headers=headers).status_code == 201


def test_gate_exit_verifies_the_qr_before_the_ledger(
    app: Flask, client: FlaskClient, fake: FakeLedger
) -> None:
    """A good QR reaches record_exit with its claims; refusals answer {accepted: false, reason}."""
    qr = encode_ticket(now_claims(), KEY)
    gate = token(app, "exit_gate", "P-001")
    resp = client.post(
        "/api/v1/gate/exit", json={"qr": qr, "plate": "渝A·12345", "covered": True}, headers=gate
    )
    assert resp.status_code == 200 and resp.json["accepted"] is True
    assert fake.calls[-1][0] == "record_exit" and fake.calls[-1][1][1].ticket_id == "ET202611230001"
    cases = [
        ({"qr": qr, "plate": "渝B99999", "covered": True}, gate, "wrong_truck"),
        ({"qr": qr, "plate": "渝A12345", "covered": True}, token(app, "exit_gate", "P-002"), "wrong_project"),
        ({"qr": qr[:-3] + "AAA", "plate": "渝A12345", "covered": True}, gate, "bad_signature"),
        ({"qr": "HELLO", "plate": "渝A12345", "covered": True}, gate, "malformed"),
        ({"qr": encode_ticket(old_claims(), KEY), "plate": "渝A12345", "covered": True}, gate, "expired"),
        (
            {"qr": encode_ticket(now_claims(), issuer_key("x")), "plate": "渝A12345", "covered": True},
            gate,
            "bad_signature",
        ),
    ]
    for body, headers, reason in cases:
        resp = client.post("/api/v1/gate/exit", json=body, headers=headers)
        assert 400 <= resp.status_code < 500, reason
        assert resp.json == {"accepted": False, "reason": reason, "message": resp.json["message"]}, reason
    assert len(fake.calls) == 1


def test_disposal_gate_checks_its_own_site(app: Flask, client: FlaskClient) -> None:
    """A disposal gate of another site is refused wrong_site; its own site is accepted."""
    qr = encode_ticket(now_claims(), KEY)
    body = {"qr": qr, "plate": "渝A12345", "volume_m3": "15.8"}
    resp = client.post("/api/v1/gate/disposal", json=body, headers=token(app, "disposal_gate", "S-999"))
    assert (resp.status_code, resp.json["reason"], resp.json["accepted"]) == (403, "wrong_site", False)
    resp = client.post("/api/v1/gate/disposal", json=body, headers=token(app, "disposal_gate", "S-003"))
    assert resp.status_code == 200 and resp.json["status"] == "received"
    resp = client.post("/api/v1/gate/disposal", json=body, headers=token(app, "exit_gate", "P-001"))
    assert resp.json == {"accepted": False, "reason": "forbidden", "message": "无权执行此操作"}


def test_qr_png_is_readable_and_keys_are_published(app: Flask, client: FlaskClient) -> None:
    """qr.png decodes to the service's QR text, which verifies with the published key."""
    from ledger.core.crypto import PublicKey
    from ledger.qrticket.ticket import verify_ticket

    resp = client.get("/api/v1/tickets/ET1/qr.png", headers=token(app, "contractor", "ORG-001"))
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    text = zbar_decode(Image.open(io.BytesIO(resp.data)))[0].data.decode()
    keys = client.get("/api/v1/keys").json
    assert keys["current_key_id"] == KEY.key_id
    published = {k["key_id"]: PublicKey.from_pem(k["public_key_pem"]) for k in keys["keys"]}
    assert verify_ticket(text, published).ticket_id == "ET202611230001"
    svg = client.get("/api/v1/tickets/ET1/qr.svg", headers=token(app, "contractor", "ORG-001"))
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data


def test_positions_take_a_list(app: Flask, client: FlaskClient, fake: FakeLedger) -> None:
    """POST /trips/{id}/positions takes a JSON list of {at, lat, lon, speed_kmh}."""
    pts = [{"at": "2026-11-23T22:10:35+08:00", "lat": 29.70911, "lon": 106.52004, "speed_kmh": 32.5}]
    resp = client.post(
        "/api/v1/trips/ET1/positions", json=pts, headers=token(app, "truck_terminal", "渝A12345")
    )
    assert resp.status_code == 200 and resp.json == {"ticket_id": "ET1", "accepted": 1, "violations": []}
    bad = client.post(
        "/api/v1/trips/ET1/positions",
        json=[{"at": "yesterday"}],
        headers=token(app, "truck_terminal", "渝A12345"),
    )
    assert bad.status_code == 422


def test_positions_take_a_signed_batch(app: Flask, client: FlaskClient, fake: FakeLedger) -> None:
    """POST /trips/{id}/positions also takes {positions, time, act_sig} (a terminal that signs its batch);
    the service gets the points, the time and the signature as sent; a malformed act_sig is refused 422."""
    pts = [{"at": "2026-11-23T22:10:35+08:00", "lat": 29.70911, "lon": 106.52004, "speed_kmh": 32.5}]
    sig = {"key_id": "0123456789abcdef", "alg": "ed25519", "value": "c2ln"}
    h = token(app, "truck_terminal", "渝A12345")
    resp = client.post("/api/v1/trips/ET1/positions", headers=h,
                       json={"positions": pts, "time": "2026-11-23T22:11:00+08:00", "act_sig": sig})
    assert resp.status_code == 200 and resp.json["accepted"] == 1
    batch = fake.calls[-1][1][2]
    assert batch["act_sig"] == sig and batch["time"].isoformat() == "2026-11-23T22:11:00+08:00"
    bad = client.post("/api/v1/trips/ET1/positions", headers=h,
                      json={"positions": pts, "act_sig": {"key_id": "nothex"}})
    assert bad.status_code == 422


def test_without_services_ledger_endpoints_answer_503(tmp_path: Path) -> None:
    """With no ledger configured, ledger endpoints answer 503 ledger_unavailable after auth."""
    app = create_app(app_config(f"sqlite:///{tmp_path}/x.sqlite"))
    client = app.test_client()
    resp = client.get("/api/v1/audit", headers=token(app, "regulator", "CQ"))
    assert (resp.status_code, resp.json["reason"]) == (503, "ledger_unavailable")
    assert client.get("/api/health").json["ledger"] == "unavailable"
