"""The ledger adapter (``ticket_api.adapter``) under the app, against a small in-memory consortium: who may
learn which ids exist, a void racing a gate's claim, the gate's and the GPS terminal's own times.

``MiniLedger`` stands in for ``NodeClient``: it keeps permits and tickets, applies the few rules these
tests need (``duplicate_id``, a void of a departed ticket) and records every transaction it is given."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.core.transaction import Transaction
from ledger.qrticket.ticket import encode_ticket
from ticket_api.adapter.gates import LedgerGates
from ticket_api.adapter.gateway import Gateway, iso
from ticket_api.adapter.tickets import LedgerPermits, LedgerTickets
from ticket_api.app import create_app
from ticket_api.auth import ctx
from ticket_api.db import IdempotencyRecord
from ticket_api.errors import ServiceUnavailable
from ticket_api.idempotency import STALE_AFTER
from ticket_api.issuer import Keyring
from ticket_api.ledger_client import Finality
from ticket_api.services import Services
from ticket_api.testing import app_config, issuer_key, sample_claims

GATEWAY_KEY = PrivateKey.generate()
LEEWAY = timedelta(seconds=120)


def _now() -> datetime:
    return datetime.now(CHINA_TZ).replace(microsecond=0)


class MiniLedger:
    """An in-memory stand-in for the consortium's HTTP client (the calls the adapter makes)."""

    def __init__(self) -> None:
        self.permits: dict[str, dict[str, Any]] = {}
        self.tickets: dict[str, dict[str, Any]] = {}
        self.txs: list[Transaction] = []
        self.done: dict[str, Finality] = {}  # by tx id: a transaction submitted again is not applied again
        self.time_out = 0  # answer this many submissions 503 ledger_timeout after committing them
        self.lock = threading.Lock()
        self.previews: list[int | None] = []  # the min_height of each preview

    # -- the world -------------------------------------------------------------
    def add_permit(self, permit_id: str, org: str) -> None:
        self.permits[permit_id] = {
            "permit_id": permit_id, "state": "approved", "project_id": "P-001", "contractor_org_id": org,
            "quota_m3": "1000", "issued_m3": "0", "remaining_m3": "1000", "tickets": [], "site_ids": ["S-003"],
            "truck_plates": ["渝A12345"], "company_ids": [], "valid_from": iso(_now() - timedelta(days=1)),
            "valid_to": iso(_now() + timedelta(days=30)), "applied_at": iso(_now()), "decided_at": iso(_now()),
            "approval_seconds": 1, "closed_reason": None, "decisions": []}

    def add_ticket(self, ticket_id: str, org: str, *, state: str = "issued",
                   departed_at: datetime | None = None) -> None:
        start = _now() - timedelta(hours=1)
        self.tickets[ticket_id] = {
            "ticket_id": ticket_id, "state": state, "permit_id": "PM-1",
            "project": {"project_id": "P-001", "name": "工地", "contractor_org_id": org},
            "truck": {"plate": "渝A12345", "company_id": "C-01"}, "driver_id": None,
            "site": {"site_id": "S-003", "name": "消纳场"}, "volume_m3": "16", "issued_at": iso(start),
            "valid_until": iso(start + timedelta(hours=24)), "expected_minutes": 40,
            "departed_at": iso(departed_at) if departed_at else None, "received_at": None, "measured_m3": None,
            "discrepancy": None, "closed_reason": None, "last_position": None, "violations": []}

    # -- NodeClient ------------------------------------------------------------
    def _apply(self, tx: Transaction) -> str:
        p = tx.payload
        if tx.type == "permit.apply":
            if p["permit_id"] in self.permits or p["permit_id"] in self.tickets:
                return "duplicate_id"
            self.add_permit(p["permit_id"], tx.actor.split(":", 1)[1])
        elif tx.type == "ticket.issue":
            if p["ticket_id"] in self.tickets:
                return "duplicate_id"
            self.add_ticket(p["ticket_id"], self.permits[p["permit_id"]]["contractor_org_id"])
        elif tx.type == "ticket.void":
            t = self.tickets[p["ticket_id"]]
            if t["state"] != "issued":
                return "already_departed" if t["state"] == "departed" else "bad_state"
            t["state"] = "voided"
        elif tx.type == "gate.exit":
            t = self.tickets[p["ticket_id"]]
            if t["state"] != "issued":
                return t["state"]
            t.update(state="departed", departed_at=p["time"])
        return "valid"

    def submit(self, tx: Transaction, *, wait: bool = True) -> Finality:
        with self.lock:
            if tx.tx_id in self.done:
                return self.done[tx.tx_id]
            self.txs.append(tx)
            code = self._apply(tx)
            fin = self.done[tx.tx_id] = Finality(tx_id=tx.tx_id, status="final", code=code, height=len(self.txs))
            if self.time_out:
                self.time_out -= 1
                raise ServiceUnavailable("not final in time", reason="ledger_timeout")
        return fin

    def submit_many(self, txs: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [{"tx_id": self.submit(Transaction.from_dict(dict(d))).tx_id, "status": "accepted"} for d in txs]

    def tx_details(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {i: {"status": "final", "code": "valid", "height": 1} for i in ids}

    def preview(self, tx: Transaction, *, min_height: int | None = None) -> tuple[str, str]:
        self.previews.append(min_height)
        return "valid", ""

    def query(self, name: str, **kw: Any) -> Any:
        if name == "permit":
            return self.permits.get(kw["permit_id"])
        if name == "ticket":
            return self.tickets.get(kw["ticket_id"])
        if name == "project":
            return None if kw["project_id"] == "P-NONE" else {"project_id": kw["project_id"],
                                                               "contractor_org_id": "ORG-001"}
        if name == "truck_by_plate":
            return {"truck_id": "TR-1"}
        if name == "truck_ids_by_plate":
            return {p: "TR-1" for p in kw["plates"]}
        if name == "violations":
            return []
        raise AssertionError(f"unexpected query {name}")

    def query_at(self, name: str, min_height: int | None, **kw: Any) -> Any:
        return self.query(name, **kw)

    def of_type(self, type: str) -> list[Transaction]:
        return [t for t in self.txs if t.type == type]


@pytest.fixture
def ledger() -> MiniLedger:
    return MiniLedger()


@pytest.fixture
def app(tmp_path: Path, ledger: MiniLedger) -> Iterator[Flask]:
    made: list[LedgerGates] = []

    def services(cfg: Mapping[str, Any], keyring: Keyring) -> Services:
        gw = Gateway(key=GATEWAY_KEY, client=ledger)  # type: ignore[arg-type]
        clock = lambda: datetime.now(UTC)  # noqa: E731
        gates = LedgerGates(gateway=gw, keyring=keyring, engine=cfg["_ENGINE"], clock=clock, leeway=LEEWAY)
        made.append(gates)
        tickets = LedgerTickets(gateway=gw, keyring=keyring, clock=clock, engine=cfg["_ENGINE"])
        return Services(permits=LedgerPermits(gateway=gw, clock=clock), tickets=tickets, gates=gates,
                        trips=gates, audit=tickets)  # type: ignore[arg-type]

    yield create_app(app_config(f"sqlite:///{tmp_path}/api.sqlite", SERVICES=services,
                                GATE_CLOCK_LEEWAY_SECONDS=int(LEEWAY.total_seconds())))
    for gates in made:
        gates.outbox.stop()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def bearer(app: Flask, role: str, tenant: str) -> dict[str, str]:
    with app.app_context():
        return {"Authorization": f"Bearer {ctx().tokens.issue(role=role, tenant=tenant, subject='t').token}"}


def qr_of(ticket_id: str, *, start: datetime | None = None, hours: float = 24) -> str:
    start = start or _now() - timedelta(hours=1)
    return encode_ticket(sample_claims(ticket_id=ticket_id, valid_from=start,
                                       valid_until=start + timedelta(hours=hours)), issuer_key())


PERMIT = {"project_id": "P-001", "volume_m3": "300", "disposal_site_ids": ["S-003"], "truck_plates": ["渝A12345"]}


def permit_body(**extra: Any) -> dict[str, Any]:
    return {**PERMIT, "valid_from": _now().isoformat(), "valid_to": (_now() + timedelta(days=9)).isoformat(),
            **extra}


TICKET = {"permit_id": "PM-1", "truck_plate": "渝A12345", "disposal_site_id": "S-003", "volume_m3": "16"}


# -- (e) another tenant's ids -------------------------------------------------------------------------------

def test_choosing_another_tenants_ticket_id_answers_as_for_an_unknown_id(app: Flask, client: FlaskClient,
                                                                         ledger: MiniLedger) -> None:
    """A client-chosen ticket id lies in the caller's namespace (``<tenant>:...``): ORG-002 choosing the id
    of ORG-001's ticket gets the same 422 as for an id nobody holds, never 409 duplicate_id; nothing is sent
    to the ledger.  Within its own namespace a clash is the caller's own id and answers duplicate_id."""
    ledger.add_permit("PM-1", "ORG-001")
    ledger.add_permit("PM-2", "ORG-002")
    mine = client.post("/api/v1/tickets", json={**TICKET, "ticket_id": "ORG-001:T-7"},
                       headers=bearer(app, "contractor", "ORG-001"))
    assert mine.status_code == 201 and mine.json["id"] == "ORG-001:T-7", mine.data
    other = bearer(app, "contractor", "ORG-002")
    sent = len(ledger.txs)
    taken = client.post("/api/v1/tickets", json={**TICKET, "permit_id": "PM-2", "ticket_id": "ORG-001:T-7"},
                        headers=other)
    free = client.post("/api/v1/tickets", json={**TICKET, "permit_id": "PM-2", "ticket_id": "ORG-001:T-8"},
                       headers=other)
    assert taken.status_code == free.status_code == 422
    assert taken.json == free.json and taken.json["reason"] == "invalid_request"
    assert len(ledger.txs) == sent
    again = client.post("/api/v1/tickets", json={**TICKET, "ticket_id": "ORG-001:T-7"},
                        headers=bearer(app, "contractor", "ORG-001"))
    assert (again.status_code, again.json["reason"]) == (409, "duplicate_id")


def test_choosing_another_tenants_permit_id_answers_as_for_an_unknown_id(app: Flask, client: FlaskClient,
                                                                         ledger: MiniLedger) -> None:
    """The same for permits: another tenant's existing permit id and a free one outside the caller's namespace
    answer the same 422; a server-drawn id (no colon) is never in a tenant's namespace."""
    ledger.add_permit("ORG-002:PM-1", "ORG-002")
    h = bearer(app, "contractor", "ORG-001")
    taken = client.post("/api/v1/permits", json=permit_body(permit_id="ORG-002:PM-1"), headers=h)
    free = client.post("/api/v1/permits", json=permit_body(permit_id="ORG-002:PM-2"), headers=h)
    assert taken.status_code == free.status_code == 422 and taken.json == free.json
    drawn = client.post("/api/v1/permits", json=permit_body(), headers=h)
    assert drawn.status_code == 201 and ":" not in drawn.json["id"]


def test_applying_for_another_tenants_project_answers_like_an_unknown_project(app: Flask, client: FlaskClient,
                                                                            ledger: MiniLedger) -> None:
    """A permit for another contractor's project answered 403 forbidden, an unknown project 404
    unknown_project: now both answer the same 404 unknown_project, and nothing reaches the ledger."""
    h = bearer(app, "contractor", "ORG-002")
    theirs = client.post("/api/v1/permits", json=permit_body(), headers=h)
    nobody = client.post("/api/v1/permits", json=permit_body(project_id="P-NONE"), headers=h)
    assert (theirs.status_code, theirs.json) == (nobody.status_code, nobody.json)
    assert (theirs.status_code, theirs.json["reason"]) == (404, "unknown_project")
    assert ledger.of_type("permit.apply") == []


def test_reading_another_tenants_permit_or_ticket_answers_like_an_unknown_id(app: Flask, client: FlaskClient,
                                                                            ledger: MiniLedger) -> None:
    """Reading, printing, voiding or issuing under another tenant's permit/ticket answers exactly (status and
    body) what an unknown id answers; issuing under another tenant's permit answered not_found while an
    unknown permit answered unknown_permit."""
    ledger.add_permit("PM-9", "ORG-001")
    ledger.add_ticket("ET-9", "ORG-001")
    h = bearer(app, "contractor", "ORG-002")
    for known, unknown in [("/api/v1/permits/PM-9", "/api/v1/permits/PM-0"),
                           ("/api/v1/tickets/ET-9", "/api/v1/tickets/ET-0"),
                           ("/api/v1/tickets/ET-9/qr.png", "/api/v1/tickets/ET-0/qr.png"),
                           ("/api/v1/tickets/ET-9/history", "/api/v1/tickets/ET-0/history")]:
        a, b = client.get(known, headers=h), client.get(unknown, headers=h)
        assert (a.status_code, a.json) == (b.status_code, b.json) and a.status_code == 404, known
    a = client.post("/api/v1/tickets/ET-9/void", json={"reason": "x"}, headers=h)
    b = client.post("/api/v1/tickets/ET-0/void", json={"reason": "x"}, headers=h)
    assert (a.status_code, a.json) == (b.status_code, b.json) and a.status_code == 404
    a = client.post("/api/v1/tickets", json={**TICKET, "permit_id": "PM-9"}, headers=h)
    b = client.post("/api/v1/tickets", json={**TICKET, "permit_id": "PM-0"}, headers=h)
    assert (a.status_code, a.json) == (b.status_code, b.json), (a.json, b.json)


# -- (b) a void after the gate's claim ---------------------------------------------------------------------

def test_a_ticket_whose_exit_a_gate_claimed_cannot_be_voided(app: Flask, client: FlaskClient,
                                                             ledger: MiniLedger) -> None:
    """The exit gate answered 202 (its claim is in gate_claims, the exit not yet on the ledger): the
    contractor's void is refused 409 already_departed and no ticket.void reaches the ledger, so the quota is
    not handed back while the truck is on the road."""
    ledger.add_ticket("ET202611230001", "ORG-001")
    with app.app_context():
        gates: LedgerGates = ctx().services.gates  # type: ignore[assignment]
        gates.outbox.stop()  # the claim stays unsent: the exit is not on the ledger yet
    gates.outbox.ensure_running = lambda: None  # type: ignore[method-assign]
    scan = client.post("/api/v1/gate/exit", json={"qr": qr_of("ET202611230001"), "plate": "渝A12345",
                                                  "covered": True},
                       headers={**bearer(app, "exit_gate", "P-001"), "Prefer": "respond-async"})
    assert scan.status_code == 202, scan.data
    void = client.post("/api/v1/tickets/ET202611230001/void", json={"reason": "改派"},
                       headers={**bearer(app, "contractor", "ORG-001"), "Accept-Language": "en"})
    assert (void.status_code, void.json["reason"]) == (409, "already_departed"), void.data
    assert ledger.of_type("ticket.void") == [] and ledger.tickets["ET202611230001"]["state"] == "issued"


def test_a_ticket_without_a_claim_can_still_be_voided(app: Flask, client: FlaskClient, ledger: MiniLedger) -> None:
    """Without any gate claim the void goes to the ledger as before."""
    ledger.add_ticket("ET-5", "ORG-001")
    void = client.post("/api/v1/tickets/ET-5/void", json={"reason": "改派"},
                       headers=bearer(app, "contractor", "ORG-001"))
    assert void.status_code == 200 and void.json["status"] == "voided"


# -- (c) the gate's own time --------------------------------------------------------------------------------

def test_an_exit_dated_back_into_an_expired_tickets_validity_is_refused(app: Flask, client: FlaskClient,
                                                                        ledger: MiniLedger) -> None:
    """The ticket expired ten minutes ago; the gate sends its event ``time`` one minute before valid_until.
    The API bounds the gate's time by its own clock (GATE_CLOCK_LEEWAY_SECONDS): refused clock_skew, nothing
    sent to the ledger (before, the exit was accepted and final)."""
    start = _now() - timedelta(hours=24, minutes=10)
    ledger.add_ticket("ET-OLD", "ORG-001")
    qr = qr_of("ET-OLD", start=start, hours=24)
    back = (start + timedelta(hours=24) - timedelta(minutes=1)).isoformat()
    for wait in ({}, {"Prefer": "respond-async"}):
        r = client.post("/api/v1/gate/exit", json={"qr": qr, "plate": "渝A12345", "covered": True, "time": back},
                        headers={**bearer(app, "exit_gate", "P-001"), **wait})
        assert r.status_code == 422 and r.json["accepted"] is False and r.json["reason"] == "clock_skew", r.data
    ahead = (_now() + timedelta(minutes=30)).isoformat()
    r = client.post("/api/v1/gate/exit", json={"qr": qr_of("ET-OLD"), "plate": "渝A12345", "covered": True,
                                               "time": ahead}, headers=bearer(app, "exit_gate", "P-001"))
    assert r.json["reason"] == "clock_skew"
    assert ledger.of_type("gate.exit") == []
    ok = client.post("/api/v1/gate/exit", json={"qr": qr_of("ET-OLD"), "plate": "渝A12345", "covered": True,
                                                "time": (_now() - timedelta(seconds=30)).isoformat()},
                     headers=bearer(app, "exit_gate", "P-001"))
    assert ok.status_code == 200 and ok.json["accepted"] is True, ok.data


def _sync(client: FlaskClient, app: Flask, qr: str, at: datetime) -> dict[str, Any]:
    body = {"scans": [{"scan_id": f"s-{at.timestamp():.0f}", "kind": "exit", "qr": qr, "plate": "渝A12345",
                       "scanned_at": at.isoformat(), "covered": True, "offline_verdict": {"accepted": True}}]}
    r = client.post("/api/v1/gate/sync", json=body, headers=bearer(app, "exit_gate", "P-001"))
    assert r.status_code == 200, r.data
    return dict(r.json["results"][0])


def test_offline_scan_times_are_bounded_by_the_qr_and_the_sync(app: Flask, client: FlaskClient,
                                                              ledger: MiniLedger) -> None:
    """An offline scan dated after the sync (beyond the leeway) is refused clock_skew; one dated before the
    QR's validity not_yet_valid; neither reaches the ledger.  A scan inside both bounds is accepted."""
    ledger.add_ticket("ET-OFF", "ORG-001")
    qr = qr_of("ET-OFF")
    future = _sync(client, app, qr, _now() + timedelta(hours=2))
    assert (future["accepted"], future["reason"]) == (False, "clock_skew")
    early = _sync(client, app, qr, _now() - timedelta(hours=3))
    assert (early["accepted"], early["reason"]) == (False, "not_yet_valid")
    assert ledger.of_type("gate.exit") == []
    ok = _sync(client, app, qr, _now() - timedelta(minutes=20))
    assert ok["accepted"] is True, ok


# -- (g) GPS points ----------------------------------------------------------------------------------------

def _points(*times: datetime) -> list[dict[str, Any]]:
    return [{"at": t.isoformat(), "lat": 29.7, "lon": 106.52, "speed_kmh": 30} for t in times]


def test_gps_points_before_the_exit_or_in_the_future_are_refused(app: Flask, client: FlaskClient,
                                                                 ledger: MiniLedger) -> None:
    """A trip left 10 minutes ago: points dated before the exit (beyond the leeway) or an hour ahead are
    refused 422 bad_position_time naming the points, and no trip.positions reaches the ledger; points between
    the exit and now are accepted."""
    exit_at = _now() - timedelta(minutes=10)
    ledger.add_ticket("ET-GPS", "ORG-001", state="departed", departed_at=exit_at)
    h = bearer(app, "truck_terminal", "渝A12345")
    before = client.post("/api/v1/trips/ET-GPS/positions",
                         json=_points(exit_at - timedelta(hours=1), exit_at + timedelta(minutes=1)), headers=h)
    assert (before.status_code, before.json["reason"]) == (422, "bad_position_time"), before.data
    assert set(before.json["error"]["fields"]) == {"0"}
    ahead = client.post("/api/v1/trips/ET-GPS/positions", json=_points(_now() + timedelta(hours=1)), headers=h)
    assert (ahead.status_code, ahead.json["reason"]) == (422, "bad_position_time")
    assert ledger.of_type("trip.positions") == []
    ok = client.post("/api/v1/trips/ET-GPS/positions",
                     json=_points(exit_at + timedelta(minutes=1), _now()), headers=h)
    assert ok.status_code == 200 and ok.json["accepted"] == 2, ok.data
    first = ledger.of_type("trip.positions")[0].payload["points"][0]
    assert first["t"] == iso(exit_at + timedelta(minutes=1))  # the API's ``at`` is the ledger payload's ``t``


# -- (a) a worker dying between the ledger's commit and the answer ----------------------------------------

def _lose_the_answer(app: Flask, *, age: timedelta = timedelta(0)) -> None:
    """What a gunicorn worker killed after the ledger committed but before it stored the answer leaves: the
    idempotency row without status or body (its recorded transaction kept), ``age`` old."""
    with app.app_context(), ctx().sessionmaker.begin() as s:
        for row in s.query(IdempotencyRecord):
            row.status, row.body = None, None
            row.created_at = row.created_at - age


@pytest.mark.parametrize("age", [timedelta(0), STALE_AFTER + timedelta(minutes=1)])
def test_a_retry_after_the_worker_died_answers_the_first_ticket(app: Flask, client: FlaskClient,
                                                                ledger: MiniLedger, age: timedelta) -> None:
    """The ledger committed the ticket, the worker died before answering.  The retry with the same
    Idempotency-Key answers at once (not 409 idempotency_in_progress for five minutes) with the same ticket,
    and after five minutes it does not run again either: the ledger holds one ticket.issue, submitted again by
    its tx id, not a second ticket."""
    ledger.add_permit("PM-1", "ORG-001")
    h = {**bearer(app, "contractor", "ORG-001"), "Idempotency-Key": "issue-1"}
    first = client.post("/api/v1/tickets", json=TICKET, headers=h)
    assert first.status_code == 201, first.data
    _lose_the_answer(app, age=age)
    retry = client.post("/api/v1/tickets", json=TICKET, headers=h)
    assert retry.status_code == 201, retry.data
    assert retry.json["id"] == first.json["id"] and retry.json["tx_id"] == first.json["tx_id"]
    assert [t.payload["ticket_id"] for t in ledger.of_type("ticket.issue")] == [first.json["id"]]
    again = client.post("/api/v1/tickets", json=TICKET, headers=h)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == retry.json


def test_a_ledger_timeout_after_the_commit_does_not_issue_twice(app: Flask, client: FlaskClient,
                                                               ledger: MiniLedger) -> None:
    """The ledger committed the ticket but the API gave up waiting (503 ledger_timeout, not stored): the retry
    with the same key follows the recorded transaction and answers that ticket, instead of signing a second
    one under a freshly drawn id."""
    ledger.add_permit("PM-1", "ORG-001")
    ledger.time_out = 1
    h = {**bearer(app, "contractor", "ORG-001"), "Idempotency-Key": "issue-2"}
    first = client.post("/api/v1/tickets", json=TICKET, headers=h)
    assert (first.status_code, first.json["reason"]) == (503, "ledger_timeout")
    retry = client.post("/api/v1/tickets", json=TICKET, headers=h)
    assert retry.status_code == 201, retry.data
    issued = ledger.of_type("ticket.issue")
    assert len(issued) == 1 and retry.json["id"] == issued[0].payload["ticket_id"]


def test_without_a_recorded_transaction_a_retry_still_waits(app: Flask, client: FlaskClient,
                                                           ledger: MiniLedger) -> None:
    """A row without an answer and without a transaction (the first attempt has not reached the ledger) still
    answers 409 idempotency_in_progress while young: two attempts must not sign two transactions."""
    ledger.add_permit("PM-1", "ORG-001")
    h = {**bearer(app, "contractor", "ORG-001"), "Idempotency-Key": "issue-3"}
    assert client.post("/api/v1/tickets", json=TICKET, headers=h).status_code == 201
    _lose_the_answer(app)
    with app.app_context(), ctx().sessionmaker.begin() as s:
        for row in s.query(IdempotencyRecord):
            row.tx, row.tx_id = None, None
    retry = client.post("/api/v1/tickets", json=TICKET, headers=h)
    assert (retry.status_code, retry.json["reason"]) == (409, "idempotency_in_progress")


def test_an_api_database_of_the_previous_version_gains_the_transaction_columns(tmp_path: Path) -> None:
    """An idempotency table made before the recorded transaction existed gets its tx_id and tx columns when
    the app opens the database (create_all adds no column to an existing table); its rows stay."""
    import sqlite3

    from sqlalchemy import inspect

    from ticket_api.db import make_engine

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE idempotency_records (id INTEGER PRIMARY KEY, principal VARCHAR(200), "
                     "key VARCHAR(200), fingerprint VARCHAR(64), status INTEGER, content_type VARCHAR(100), "
                     "headers TEXT, body BLOB, created_at DATETIME)")
        conn.execute("INSERT INTO idempotency_records (principal, key, fingerprint) VALUES ('p', 'k', 'f')")
    engine = make_engine(f"sqlite:///{path}")
    assert {"tx_id", "tx"} <= {c["name"] for c in inspect(engine).get_columns("idempotency_records")}
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT key, tx FROM idempotency_records").fetchall() == [("k", None)]
    engine.dispose()


# -- (f) read your own writes -------------------------------------------------------------------------------

def test_a_gate_previews_an_issued_ticket_at_the_height_it_became_final(app: Flask, client: FlaskClient,
                                                                       ledger: MiniLedger) -> None:
    """The API records the block height at which a ticket it answered 201 became final, and a gate's
    preview of that ticket asks for a node at that height or above (a lagging node would not know it);
    a ticket the API did not issue is previewed on any node as before."""
    ledger.add_permit("PM-1", "ORG-001")
    issued = client.post("/api/v1/tickets", json=TICKET, headers=bearer(app, "contractor", "ORG-001"))
    assert issued.status_code == 201, issued.data
    ledger.add_ticket("ET202611230009", "ORG-001")
    gate = {**bearer(app, "exit_gate", "P-001"), "Prefer": "respond-async"}
    for ticket_id in (issued.json["id"], "ET202611230009"):
        scan = client.post("/api/v1/gate/exit", json={"qr": qr_of(ticket_id), "plate": "渝A12345", "covered": True},
                           headers=gate)
        assert scan.status_code == 202, scan.data
    assert ledger.previews == [issued.json["block_height"], None]
    assert issued.json["block_height"] >= 1
