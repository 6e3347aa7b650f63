"""The whole e-ticket story through HTTP against the real stack (4 ledger nodes, gunicorn, fake WeChat):
permits approved in parallel, signed QR tickets read back by zbar, gates, GPS, receipts, provable history,
tenant isolation, every QR refusal, two gates racing for one ticket, offline sync and the audit."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from ledger.core.crypto import ED25519, PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.core.merkle import verify_inclusion
from ledger.qrticket.base45 import b45decode, b45encode
from ledger.qrticket.ticket import PREFIX, decode_ticket, encode_ticket

from .serve_fixtures import ROOT, Stack, stack  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow]
EXTRA_TRUCKS = [(f"TR-9{i:03d}", f"渝C9{i:04d}") for i in range(24)]


def now() -> datetime:
    return datetime.now(CHINA_TZ).replace(microsecond=0)


def call(s: Stack, method: str, path: str, role: str, body: Any = None, *,
         headers_extra: dict[str, str] | None = None, **kw: Any) -> requests.Response:
    return requests.request(method, s.api + path, json=body, headers={**s.headers(role), **(headers_extra or {})},
                            timeout=60, **kw)


@pytest.fixture(scope="module")
def permit(stack: Stack) -> dict[str, Any]:  # noqa: F811
    """More trucks for company C-01 and an approved permit of the demo contractor for all its trucks."""
    for tid, plate in EXTRA_TRUCKS:
        r = call(stack, "POST", "/api/v1/registry/truck", "operator",
                 {"truck_id": tid, "plate": plate, "company_id": "C-01", "capacity_m3": "18"})
        assert r.status_code == 201, r.text
    r = call(stack, "POST", "/api/v1/permits", "contractor", {
        "project_id": "P-001", "volume_m3": "5000", "disposal_site_ids": ["S-003", "S-001"],
        "company_ids": ["C-01"], "valid_from": (now() - timedelta(hours=1)).isoformat(),
        "valid_to": (now() + timedelta(days=30)).isoformat()})
    assert r.status_code == 201, r.text
    p = r.json()
    for dept in stack.demo["tokens"]["approvers"]:
        assert call(stack, "POST", f"/api/v1/permits/{p['id']}/decisions", f"approvers.{dept}",
                    stack.decision(dept, p["id"], "approve", "同意")).status_code == 200
    return dict(call(stack, "GET", f"/api/v1/permits/{p['id']}", "contractor").json())


_free = list(EXTRA_TRUCKS)


def ticket(s: Stack, permit: dict[str, Any], *, site: str = "S-003", volume: str = "15") -> dict[str, Any]:
    """A fresh ticket on a truck nobody else uses in this module."""
    _tid, plate = _free.pop(0)
    r = call(s, "POST", "/api/v1/tickets", "contractor",
             {"permit_id": permit["id"], "truck_plate": plate, "disposal_site_id": site, "volume_m3": volume})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_permit_needs_every_department_in_any_order_in_parallel(stack: Stack) -> None:  # noqa: F811
    """A permit stays pending until each configured department approved; the four decisions, sent at the
    same moment, all land; the permit then records each decision and its approval time."""
    login = requests.post(f"{stack.api}/api/v1/auth/wechat", json={"code": stack.demo["contractor_wechat_code"]},
                          timeout=10).json()
    assert (login["role"], login["tenant"]) == ("contractor", "ORG-001")
    h = {"Authorization": f"Bearer {login['token']}"}
    r = requests.post(f"{stack.api}/api/v1/permits", headers=h, timeout=60, json={
        "project_id": "P-001", "volume_m3": "300", "disposal_site_ids": ["S-003"], "truck_plates": ["渝A23456"],
        "valid_from": now().isoformat(), "valid_to": (now() + timedelta(days=10)).isoformat()})
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["status"] == "pending" and sorted(p["required_approvals"]) == sorted(stack.demo["tokens"]["approvers"])
    results: list[int] = []
    threads = [threading.Thread(target=lambda d=d: results.append(call(
        stack, "POST", f"/api/v1/permits/{p['id']}/decisions", f"approvers.{d}", stack.decision(d, p["id"])
    ).status_code)) for d in stack.demo["tokens"]["approvers"]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * len(threads)
    got = call(stack, "GET", f"/api/v1/permits/{p['id']}", "contractor").json()
    assert got["status"] == "approved" and got["approval_seconds"] is not None
    assert {d["decision"] for d in got["decisions"]} == {"approve"}
    again = call(stack, "POST", f"/api/v1/permits/{p['id']}/decisions", "approvers.chengguan",
                 stack.decision("chengguan", p["id"]))
    assert again.status_code == 409 and again.json()["reason"] in ("already_decided", "permit_closed")


def test_ticket_trip_receipt_and_provable_history(stack: Stack, permit: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    """The demo truck's ticket: its QR PNG decodes (zbar) to exactly the qr text; exit, GPS with a speeding
    point raises 'speeding'; the receipt is accepted; the history has four records, each proven by RFC 9162
    against a co-signed checkpoint; the provenance export verifies offline and fails after one byte changes."""
    from PIL import Image
    from pyzbar.pyzbar import decode

    r = call(stack, "POST", "/api/v1/tickets", "contractor", {"permit_id": permit["id"], "truck_plate": "渝A12345",
                                                              "disposal_site_id": "S-003", "volume_m3": "16"})
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["status"] == "issued" and t["qr"].startswith(PREFIX)
    png = call(stack, "GET", f"/api/v1/tickets/{t['id']}/qr.png", "contractor")
    assert png.headers["Content-Type"] == "image/png"
    assert [d.data.decode() for d in decode(Image.open(io.BytesIO(png.content)))] == [t["qr"]]
    ex = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", stack.exit(t["qr"], "渝A 12345"))
    assert ex.status_code == 200 and ex.json()["accepted"] is True, ex.text
    t0 = now()
    pts = [{"at": (t0 + timedelta(seconds=30 * i)).isoformat(), "lat": 29.70 - 0.002 * i, "lon": 106.52,
            "speed_kmh": 72.5 if i == 2 else 38.0} for i in range(4)]
    pos = call(stack, "POST", f"/api/v1/trips/{t['id']}/positions", "truck_terminal", stack.positions(t["id"], pts))
    assert pos.status_code == 200, pos.text
    assert [v["type"] for v in pos.json()["violations"]] == ["speeding"]
    rc = call(stack, "POST", "/api/v1/gate/disposal", "disposal_gate", stack.disposal(t["qr"], "渝A12345",
                                                                                       volume_m3="15.8"))
    assert rc.status_code == 200 and rc.json()["accepted"] is True and rc.json()["status"] == "received", rc.text
    assert call(stack, "GET", f"/api/v1/tickets/{t['id']}", "contractor").json()["status"] == "received"
    hist = call(stack, "GET", f"/api/v1/tickets/{t['id']}/history", "regulator").json()
    cp = hist["checkpoint"]
    assert [x["type"] for x in hist["records"]] == ["ticket.issue", "gate.exit", "trip.positions", "gate.receipt"]
    assert len(cp["signatures"]) >= 3
    for rec in hist["records"]:
        proof = rec["proof"]
        assert verify_inclusion(base64.b64decode(rec["body"]), proof["index"], cp["size"],
                                [bytes.fromhex(h) for h in proof["hashes"]], bytes.fromhex(cp["root"]))
        assert not verify_inclusion(base64.b64decode(rec["body"]) + b" ", proof["index"], cp["size"],
                                    [bytes.fromhex(h) for h in proof["hashes"]], bytes.fromhex(cp["root"]))
    export = call(stack, "GET", f"/api/v1/provenance/ticket/{t['id']}", "regulator").json()
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    genesis = json.loads((stack.var / "consortium.json").read_text())["consortium"]
    verify = [sys.executable, str(ROOT / "scripts" / "verify-export"), str(path), "--consortium", genesis]
    ok = subprocess.run(verify, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    export["records"][1]["payload"]["plate"] = "渝A99999"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    bad = subprocess.run(verify, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "differs from the signed body" in bad.stdout


def test_tenants_and_roles(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """Another contractor cannot see or print someone else's ticket or permit (404); the regulator reads
    everything and changes nothing (403); a gate cannot act for another site; no token → 401."""
    t = ticket(stack, permit)
    for path in (f"/api/v1/tickets/{t['id']}", f"/api/v1/tickets/{t['id']}/qr.png", f"/api/v1/permits/{permit['id']}"):
        r = call(stack, "GET", path, "contractor_other")
        assert r.status_code == 404 and r.json()["reason"] == "not_found"
    assert call(stack, "GET", f"/api/v1/tickets/{t['id']}", "regulator").status_code == 200
    assert call(stack, "POST", "/api/v1/tickets", "regulator", {"permit_id": permit["id"], "truck_plate": "渝A12345",
                "disposal_site_id": "S-003", "volume_m3": "1"}).status_code == 403
    wrong = call(stack, "POST", "/api/v1/gate/disposal", "exit_gate", {"qr": t["qr"], "plate": "渝C90000",
                                                                        "volume_m3": "1"})
    assert wrong.status_code == 403 and wrong.json()["reason"] == "forbidden"
    assert requests.get(f"{stack.api}/api/v1/tickets/{t['id']}", timeout=10).status_code == 401
    audit = call(stack, "GET", "/api/v1/audit", "operator")
    assert audit.status_code == 403


def _resign(qr: str, **changes: Any) -> str:
    claims, _kid, _sig = decode_ticket(qr)
    attacker = PrivateKey(alg=ED25519, seed=bytes(32))
    from dataclasses import replace

    return encode_ticket(replace(claims, **changes), attacker)


def test_every_bad_qr_is_refused_with_its_reason(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """Forged, altered, expired, wrong-site, wrong-truck, garbage and replayed QR codes are each refused
    by the gate with their reason code and a message in the asked language; a refusal changes nothing."""
    t = ticket(stack, permit)
    plate = t["truck_plate"]
    raw = b45decode(t["qr"][len(PREFIX):])
    forged = PREFIX + b45encode(raw[:-64] + bytes(64))
    cases = {
        "forged": ({"qr": forged, "plate": plate, "covered": True}, "bad_signature"),
        "altered": ({"qr": _resign(t["qr"], volume_m3=5.0), "plate": plate, "covered": True}, "bad_signature"),
        "garbage": ({"qr": "MT1:NOT-A-TICKET", "plate": plate, "covered": True}, "malformed"),
        "expired": ({"qr": t["qr"], "plate": plate, "covered": True,
                     "time": (datetime.fromisoformat(t["valid_until"]) + timedelta(hours=1)).isoformat()}, "expired"),
        "wrong_truck": ({"qr": t["qr"], "plate": "渝A99999", "covered": True}, "wrong_truck"),
    }
    for name, (body, reason) in cases.items():
        r = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", body)
        assert r.status_code in (400, 403, 409, 422), (name, r.text)
        got = r.json()
        assert (got["accepted"], got["reason"]) == (False, reason), name
        assert got["message"] and got["message"].isascii(), name  # Accept-Language: en
    zh = requests.post(f"{stack.api}/api/v1/gate/exit", json=cases["wrong_truck"][0], timeout=30,
                       headers={**stack.headers("exit_gate"), "Accept-Language": "zh-CN"}).json()
    assert zh["message"] == "车牌与电子渣票不符"
    other = ticket(stack, permit, site="S-001")
    site = call(stack, "POST", "/api/v1/gate/disposal", "disposal_gate",
                {"qr": other["qr"], "plate": other["truck_plate"], "volume_m3": "15"})
    assert (site.status_code, site.json()["reason"]) == (403, "wrong_site")
    assert call(stack, "GET", f"/api/v1/tickets/{t['id']}", "contractor").json()["status"] == "issued"
    assert call(stack, "POST", "/api/v1/gate/exit", "exit_gate", stack.exit(t["qr"], plate)).json()["accepted"] is True
    replay = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", stack.exit(t["qr"], plate))
    assert replay.status_code == 409 and replay.json()["reason"] == "already_departed"
    early = call(stack, "POST", "/api/v1/gate/disposal", "disposal_gate",
                 stack.disposal(ticket(stack, permit)["qr"], _free[-1][1], volume_m3="15"))
    assert early.json()["accepted"] is False


def _simultaneous_exits(s: Stack, t: dict[str, Any], n: int,
                        extra: dict[str, str] | None = None) -> list[requests.Response]:
    """``n`` exit scans of ticket ``t`` released at the same moment by a barrier."""
    barrier = threading.Barrier(n)
    out: list[requests.Response] = []

    def scan() -> None:
        barrier.wait()
        out.append(call(s, "POST", "/api/v1/gate/exit", "exit_gate", s.exit(t["qr"], t["truck_plate"]),
                        headers_extra=extra))

    threads = [threading.Thread(target=scan) for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return out


def test_two_gates_scan_one_ticket_at_once_exactly_one_accepted(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """Two exit scans of the same ticket sent at the same moment, both waiting for the block: exactly one is
    accepted (the API's claim on the ticket lets one through to the ledger), the other refused already_departed."""
    out = _simultaneous_exits(stack, ticket(stack, permit), 2)
    verdicts = sorted((r.status_code, r.json().get("reason")) for r in out)
    assert verdicts == [(200, None), (409, "already_departed")]


ASYNC = {"Prefer": "respond-async"}


def _verdict(s: Stack, tx_id: str, role: str = "exit_gate", timeout: float = 30.0) -> dict[str, Any]:
    """Poll ``GET /api/v1/gate/scans/<tx_id>`` until the ledger's verdict is in."""
    deadline = time.monotonic() + timeout
    while True:
        r = call(s, "GET", f"/api/v1/gate/scans/{tx_id}", role)
        assert r.status_code == 200, r.text
        if r.json()["final"] or time.monotonic() > deadline:
            return dict(r.json())
        time.sleep(0.2)


def test_gate_answered_before_the_block_then_the_ledger_confirms(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """An exit gate that asks not to wait (Prefer: respond-async) is answered 202 accepted before the block,
    with the tx id; the transaction reaches the ledger from the API's outbox, the scan's verdict turns final
    and valid, and the ticket is departed on the ledger.  Another gate cannot see the scan; a regulator can."""
    t = ticket(stack, permit)
    r = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", stack.exit(t["qr"], t["truck_plate"]),
             headers_extra=ASYNC)
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["accepted"], body["ticket_id"], body["status"], body["final"]) == (True, t["id"], "departed",
                                                                                   False)
    v = _verdict(stack, body["tx_id"])
    assert (v["final"], v["verdict"], v["accepted"], v["kind"], v["ticket_id"]) == (True, "valid", True, "exit",
                                                                                   t["id"])
    assert v["block_height"] >= 1 and v["violation_id"] is None
    assert call(stack, "GET", f"/api/v1/tickets/{t['id']}", "contractor").json()["status"] == "departed"
    assert call(stack, "GET", f"/api/v1/gate/scans/{body['tx_id']}", "disposal_gate").status_code == 404
    assert call(stack, "GET", f"/api/v1/gate/scans/{body['tx_id']}", "regulator").json()["verdict"] == "valid"
    # The disposal gate answers before the block too; a second scan of the same load is refused at once.
    d = call(stack, "POST", "/api/v1/gate/disposal", "disposal_gate",
             stack.disposal(t["qr"], t["truck_plate"], volume_m3="15"), headers_extra=ASYNC)
    assert d.status_code == 202 and d.json()["accepted"] is True, d.text
    again = call(stack, "POST", "/api/v1/gate/disposal", "disposal_gate",
                 stack.disposal(t["qr"], t["truck_plate"], volume_m3="15"), headers_extra=ASYNC)
    assert again.status_code == 409 and again.json()["reason"] == "already_received"
    assert _verdict(stack, d.json()["tx_id"], "disposal_gate")["verdict"] == "valid"


def test_gate_not_waiting_refuses_by_the_ledgers_rules(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """Without waiting, the scan is still judged by the ledger's rules on the current state: a voided
    ticket is refused ``voided`` and a truck already on the road with another ticket ``truck_busy``."""
    t = ticket(stack, permit)
    void = call(stack, "POST", f"/api/v1/tickets/{t['id']}/void", "contractor", {"reason": "改派"})
    assert void.status_code == 200, void.text
    r = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", stack.exit(t["qr"], t["truck_plate"]),
             headers_extra=ASYNC)
    assert r.status_code == 409 and r.json() == {**r.json(), "accepted": False, "reason": "voided"}, r.text
    first = ticket(stack, permit)
    second = call(stack, "POST", "/api/v1/tickets", "contractor", {
        "permit_id": permit["id"], "truck_plate": first["truck_plate"], "disposal_site_id": "S-003",
        "volume_m3": "15"}).json()
    ok = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", stack.exit(first["qr"], first["truck_plate"]),
              headers_extra=ASYNC)
    assert ok.status_code == 202, ok.text
    _verdict(stack, ok.json()["tx_id"])
    busy = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", stack.exit(second["qr"], first["truck_plate"]),
                headers_extra=ASYNC)
    assert busy.status_code == 409 and busy.json()["reason"] == "truck_busy", busy.text


def test_two_gates_not_waiting_race_for_one_ticket(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """Eight scans of one ticket at the same moment, none waiting for the block: exactly one is accepted
    (the API's claim on the ticket), the others are refused already_departed, and the ledger confirms the one."""
    out = _simultaneous_exits(stack, ticket(stack, permit), 8, ASYNC)
    verdicts = sorted((r.status_code, r.json().get("reason")) for r in out)
    assert verdicts == [(202, None)] + [(409, "already_departed")] * 7
    winner = next(r.json() for r in out if r.status_code == 202)
    assert _verdict(stack, winner["tx_id"])["verdict"] == "valid"


def test_ledger_refusing_a_scan_the_gate_let_through_becomes_a_violation(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """The contractor voids a ticket just as the truck is scanned without waiting: the ledger's preview does
    not have the void yet, so the gate lets the truck through (202), but the ordered block refuses the exit
    (voided).  The scan's verdict says so and a no_ticket violation is on the ledger for that ticket.
    (Which of the two the orderer takes first is up to the race; the test retries until the void wins,
    checking every round that the verdict and the ticket agree.)"""
    for _attempt in range(4):
        t = ticket(stack, permit)
        void = call(stack, "POST", f"/api/v1/tickets/{t['id']}/void", "contractor", {"reason": "改派"},
                    headers_extra=ASYNC)
        assert void.status_code == 202, void.text
        scan = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", stack.exit(t["qr"], t["truck_plate"]),
                    headers_extra=ASYNC)
        if scan.status_code != 202:  # the void was already applied: refused at once, nothing to show
            assert scan.json()["reason"] == "voided", scan.text
            continue
        v = _verdict(stack, scan.json()["tx_id"])
        state = call(stack, "GET", f"/api/v1/tickets/{t['id']}", "contractor").json()["status"]
        if v["verdict"] == "valid":  # the exit was ordered first; the void was refused
            assert state == "departed"
            continue
        assert (v["verdict"], v["accepted"], state) == ("voided", False, "voided")
        deadline = time.monotonic() + 30
        while v["violation_id"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
            v = _verdict(stack, scan.json()["tx_id"])
        assert v["violation_id"] and v["violation_id"].startswith("WPYS"), v
        found = call(stack, "GET", f"/api/v1/violations/{v['violation_id']}", "regulator")
        deadline = time.monotonic() + 30
        while found.status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.2)
            found = call(stack, "GET", f"/api/v1/violations/{v['violation_id']}", "regulator")
        assert (found.json()["type"], found.json()["ticket_id"]) == ("no_ticket", t["id"]), found.text
        return
    pytest.fail("in four rounds the ledger never ordered the void before the exit")


def test_uncovered_load_is_refused_and_becomes_a_violation(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """An uncovered load is refused (uncovered_load) and a violation FGBY… is on the ledger for the operator;
    the enforcement officer confirms it (signed with the department's key); the ticket is still issued and
    leaves once covered."""
    t = ticket(stack, permit)
    r = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", stack.exit(t["qr"], t["truck_plate"], covered=False))
    assert r.status_code == 422 and r.json()["reason"] == "uncovered_load"
    vid = r.json()["fields"]["violation_id"]
    assert vid.startswith("FGBY")
    v = call(stack, "GET", f"/api/v1/violations/{vid}", "operator").json()
    assert (v["type"], v["state"], v["ticket_id"]) == ("uncovered_load", "reported", t["id"])
    done = call(stack, "POST", f"/api/v1/violations/{vid}/confirm", "enforcement", stack.step(vid, "confirm", "非误报"))
    assert done.status_code == 200 and done.json()["state"] == "confirmed"
    assert call(stack, "POST", "/api/v1/gate/exit", "exit_gate",
                stack.exit(t["qr"], t["truck_plate"])).json()["accepted"] is True


def test_offline_double_use_is_caught_at_sync(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """An offline gate let the same ticket out twice; at sync the first scan is accepted, the second refused
    already_departed and turned into a violation; re-sending the batch gives the same results as duplicates."""
    t = ticket(stack, permit)
    at = now()
    scans = [{"scan_id": f"off-{t['id']}-{i}", "kind": "exit", "qr": t["qr"], "plate": t["truck_plate"],
              "scanned_at": (at + timedelta(minutes=i)).isoformat(), "covered": True,
              "offline_verdict": {"accepted": True, "reason": None}} for i in range(2)]
    scans = [stack.offline_exit(x) for x in scans]  # each signed by the gate when it scanned
    r = call(stack, "POST", "/api/v1/gate/sync", "exit_gate", {"gate_id": "P-001-G1", "scans": scans})
    assert r.status_code == 200, r.text
    res = r.json()
    assert (res["accepted"], res["refused"]) == (1, 1)
    first, second = res["results"]
    assert first["accepted"] is True and second["reason"] == "already_departed"
    assert second["violation_id"].startswith("WPYS")
    v = call(stack, "GET", f"/api/v1/violations/{second['violation_id']}", "regulator").json()
    assert (v["type"], v["ticket_id"]) == ("no_ticket", t["id"])
    again = call(stack, "POST", "/api/v1/gate/sync", "exit_gate", {"gate_id": "P-001-G1", "scans": scans}).json()
    assert [x["duplicate"] for x in again["results"]] == [True, True]
    assert [x["accepted"] for x in again["results"]] == [True, False]


def test_staff_views_and_audit(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """Staff see site load with alarms and recommendations, statistics and each node's health; the
    regulator's audit verifies every node end to end and says ok."""
    sites = {s["site_id"]: s for s in call(stack, "GET", "/api/v1/sites", "operator").json()["sites"]}
    assert set(sites) >= {"S-001", "S-003", "S-007"}
    assert sites["S-007"]["alarm"] is False and float(sites["S-007"]["load_rate_pct"]) > 80
    def recommended(volume: str) -> list[str]:
        r = call(stack, "GET", "/api/v1/sites/recommend", "contractor", params={"project_id": "P-001",
                                                                                "volume_m3": volume})
        return [s["site_id"] for s in r.json()["sites"]]

    # S-007 (backfill, 60,000 m³, alarm at 90 %) holds 50,500 m³ and is the nearest: 2,000 m³ more keep it
    # under its alarm (87.5 %), 5,000 m³ would pass it (92.5 %), so it is then left out.
    assert recommended("2000")[0] == "S-007"
    assert "S-007" not in recommended("5000") and recommended("5000")
    stats = call(stack, "GET", "/api/v1/statistics", "regulator").json()
    assert stats["tickets_issued"] >= 1
    health = call(stack, "GET", "/api/v1/chain/status", "operator").json()
    assert health["agree"] is True and len(health["nodes"]) == 4
    audit = call(stack, "GET", "/api/v1/audit", "regulator")
    assert audit.status_code == 200, audit.text
    assert audit.json()["ok"] is True and audit.json()["mode"] == "full"


def test_demo_cli_plays_the_whole_story(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    """``python -m miniprogram_stub demo --demo-file var/demo.json`` plays the story against the running API:
    WeChat login, permit approved by every department, ticket with its QR PNG, an exit answered before the
    block and then confirmed by the ledger, GPS, receipt, the history with proofs, the black truck on the exit
    camera as a numbered unapproved_disposal event whose photo matches its digest, and an audit that is ok."""
    run = subprocess.run([sys.executable, "-m", "miniprogram_stub", "demo", "--demo-file", str(stack.var / "demo.json"),
                          "--out", str(tmp_path), "--language", "en"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = {line.split(":", 1)[0].removeprefix("== "): line.split(":", 1)[1].strip()
             for line in run.stdout.splitlines() if line.startswith("== ")}
    assert lines["contractor logs in with WeChat"].startswith("role contractor")
    assert lines["site exit"].startswith("accepted=True") and lines["site exit"].endswith("(final=False)")
    assert lines["ledger verdict"].startswith("valid in block ")
    assert lines["disposal receipt"].startswith("accepted=True")
    assert lines["audit"] == "ok=True"
    assert [p.suffix for p in tmp_path.iterdir()] == [".png"]
    events = [line for line in run.stdout.splitlines() if line.startswith("== camera event: ")]
    assert any(" unapproved_disposal " in e and "LZZTC" in e and "渝D88888" in e for e in events), run.stdout
    assert lines["evidence photo"].endswith("sha256 matches: True")


def test_the_stack_has_its_own_gunicorn_control_socket(stack: Stack) -> None:  # noqa: F811
    """The served API's gunicorn listens on a control socket in the stack's own directory, so two stacks on one
    machine (two pytest workers, or a test beside a person's scripts/serve) never share gunicorn's default."""
    import stat

    ctl = stack.var / "gunicorn.ctl"
    assert ctl.exists() and stat.S_ISSOCK(ctl.stat().st_mode)
    assert ctl.stat().st_mode & 0o077 == 0


def test_a_retry_after_the_worker_died_gets_the_first_ticket_not_a_second(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """The ledger committed a ticket and the worker died before storing the answer (its idempotency row is left
    without status and body, as a kill -9 leaves it): the retry with the same Idempotency-Key answers at once
    with that same ticket and tx id (the recorded transaction submitted again, known to the nodes by its tx id),
    and the permit counts one ticket more, not two."""
    import sqlite3

    tid, plate = _free.pop(0)
    key = {"Idempotency-Key": f"crash-{tid}"}
    body = {"permit_id": permit["id"], "truck_plate": plate, "disposal_site_id": "S-003", "volume_m3": "15"}
    before = call(stack, "GET", f"/api/v1/permits/{permit['id']}", "contractor").json()
    first = call(stack, "POST", "/api/v1/tickets", "contractor", body, headers_extra=key)
    assert first.status_code == 201, first.text
    with sqlite3.connect(stack.var / "ticket_api.sqlite", timeout=30) as db:
        lost = db.execute("UPDATE idempotency_records SET status = NULL, body = NULL WHERE key = ? AND tx IS NOT NULL",
                          (key["Idempotency-Key"],)).rowcount
    assert lost == 1
    retry = call(stack, "POST", "/api/v1/tickets", "contractor", body, headers_extra=key)
    assert retry.status_code == 201, retry.text
    assert (retry.json()["id"], retry.json()["tx_id"]) == (first.json()["id"], first.json()["tx_id"])
    after = call(stack, "GET", f"/api/v1/permits/{permit['id']}", "contractor").json()
    assert after["tickets"] == before["tickets"] + 1  # a count: one ticket more, not two


def test_a_ticket_whose_exit_a_gate_claimed_cannot_be_voided(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """The exit gate answered 202 (the truck is through the barrier, the exit maybe not in a block yet): the
    contractor's void right after is refused 409 already_departed, the ticket ends departed and the permit's
    remaining volume is not handed back."""
    t = ticket(stack, permit)
    scan = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", stack.exit(t["qr"], t["truck_plate"]),
                headers_extra=ASYNC)
    assert scan.status_code == 202, scan.text
    before = call(stack, "GET", f"/api/v1/permits/{permit['id']}", "contractor").json()["remaining_m3"]
    void = call(stack, "POST", f"/api/v1/tickets/{t['id']}/void", "contractor", {"reason": "改派"})
    assert (void.status_code, void.json()["reason"]) == (409, "already_departed"), void.text
    assert _verdict(stack, scan.json()["tx_id"])["verdict"] == "valid"
    assert call(stack, "GET", f"/api/v1/tickets/{t['id']}", "contractor").json()["status"] == "departed"
    assert call(stack, "GET", f"/api/v1/permits/{permit['id']}", "contractor").json()["remaining_m3"] == before


def test_another_tenants_permit_answers_as_an_unknown_one(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """Issuing under another contractor's permit answers exactly what an unknown permit answers, and choosing an
    id in another tenant's namespace answers the same whether it exists or not."""
    body = {"truck_plate": "渝A12345", "disposal_site_id": "S-003", "volume_m3": "1"}
    theirs = call(stack, "POST", "/api/v1/tickets", "contractor_other", {**body, "permit_id": permit["id"]})
    nobody = call(stack, "POST", "/api/v1/tickets", "contractor_other", {**body, "permit_id": "PM-NOBODY"})
    assert (theirs.status_code, theirs.json()) == (nobody.status_code, nobody.json()) == (404, nobody.json())
    t = ticket(stack, permit)
    taken = call(stack, "POST", "/api/v1/tickets", "contractor_other", {**body, "permit_id": "PM-NOBODY",
                                                                         "ticket_id": t["id"]})
    free = call(stack, "POST", "/api/v1/tickets", "contractor_other", {**body, "permit_id": "PM-NOBODY",
                                                                        "ticket_id": "ORG-001:NONE"})
    assert taken.status_code == free.status_code == 422 and taken.json()["reason"] == free.json()["reason"]
