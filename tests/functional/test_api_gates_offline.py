"""Offline gates that know what was revoked (the signed list, its delta, the gate's cache and the sync) and the
reconciliation of exit scans, receipts and tickets per place and day (report, CLI, dashboard)."""

from __future__ import annotations

import copy
import json
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from ledger.core.crypto import PublicKey
from ledger.core.encoding import CHINA_TZ
from ledger.eticket import EticketMachine
from ledger.eticket.reconcile import EXIT, SITE, ledger_counts, reconcile
from ledger.qrticket.revocations import BadRevocationSignature, verify_list
from ledger.store.keyfiles import read_consortium
from ledger.store.ledger_store import LedgerStore
from ledger.verify.audit import replay
from miniprogram_stub.errors import OfflineUnavailable
from miniprogram_stub.gate import OfflineGate

from .serve_fixtures import ROOT, Stack, stack  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow]
TRUCKS = [(f"TR-8{i:03d}", f"渝D8{i:04d}") for i in range(12)]


def now() -> datetime:
    return datetime.now(CHINA_TZ).replace(microsecond=0)


def call(s: Stack, method: str, path: str, role: str, body: Any = None, **kw: Any) -> requests.Response:
    return requests.request(method, s.api + path, json=body, headers=s.headers(role), timeout=60, **kw)


@pytest.fixture(scope="module")
def permit(stack: Stack) -> dict[str, Any]:  # noqa: F811
    """An approved permit of the demo contractor for company C-01 with trucks of its own."""
    for tid, plate in TRUCKS:
        r = call(stack, "POST", "/api/v1/registry/truck", "operator",
                 {"truck_id": tid, "plate": plate, "company_id": "C-01", "capacity_m3": "18"})
        assert r.status_code == 201, r.text
    r = call(stack, "POST", "/api/v1/permits", "contractor", {
        "project_id": "P-001", "volume_m3": "5000", "disposal_site_ids": ["S-003"], "company_ids": ["C-01"],
        "valid_from": (now() - timedelta(hours=1)).isoformat(), "valid_to": (now() + timedelta(days=30)).isoformat()})
    assert r.status_code == 201, r.text
    p = r.json()
    for dept in stack.demo["tokens"]["approvers"]:
        assert call(stack, "POST", f"/api/v1/permits/{p['id']}/decisions", f"approvers.{dept}",
                    stack.decision(dept, p["id"], "approve", "同意")).status_code == 200
    return dict(p)


_free = list(TRUCKS)


def ticket(s: Stack, permit: dict[str, Any]) -> dict[str, Any]:
    _tid, plate = _free.pop(0)
    r = call(s, "POST", "/api/v1/tickets", "contractor",
             {"permit_id": permit["id"], "truck_plate": plate, "disposal_site_id": "S-003", "volume_m3": "15"})
    assert r.status_code == 201, r.text
    return dict(r.json())


def void(s: Stack, t: dict[str, Any]) -> None:
    r = call(s, "POST", f"/api/v1/tickets/{t['id']}/void", "contractor", {"reason": "车辆故障"})
    assert r.status_code == 200, r.text


def issued_m3(s: Stack, permit: dict[str, Any]) -> str:
    return str(call(s, "GET", f"/api/v1/permits/{permit['id']}", "contractor").json()["issued_m3"])


def gate(s: Stack, tmp_path: Path, **kw: Any) -> OfflineGate:
    g = OfflineGate(s.api, s.demo["tokens"]["exit_gate"], kind="exit", site_id="P-001",
                    db_path=tmp_path / "gate.sqlite", gate_id="P-001-G1",
                    signing_key=s.device_key("gate:exit:P-001"), **kw)
    assert g.refresh_keys()
    return g


def keys(s: Stack) -> dict[str, PublicKey]:
    published = requests.get(s.api + "/api/v1/keys", timeout=30).json()["keys"]
    return {k["key_id"]: PublicKey.from_pem(k["public_key_pem"]) for k in published}


def test_offline_gate_refuses_a_ticket_on_its_cached_list(stack: Stack, permit: dict[str, Any],  # noqa: F811
                                                          tmp_path: Path) -> None:
    """A ticket voided before the gate's last refresh is refused offline (voided) by its cached, verified list;
    another ticket passes; the gate shows the list's version and age."""
    voided, good = ticket(stack, permit), ticket(stack, permit)
    void(stack, voided)
    with gate(stack, tmp_path, max_revocation_age=timedelta(minutes=30)) as g:
        assert g.refresh_revocations()
        status = g.revocation_status()
        assert status["version"] > 0 and status["stale"] is False and 0 <= status["age_seconds"] < 120
        assert status["issued_at"].endswith("+08:00")
        refused = g.scan(voided["qr"], voided["truck_plate"], covered=True)
        assert (refused.accepted, refused.reason) == (False, "voided")
        assert g.scan(good["qr"], good["truck_plate"], covered=True).accepted is True


def test_a_list_with_a_bad_signature_is_refused(stack: Stack, permit: dict[str, Any],  # noqa: F811
                                                tmp_path: Path) -> None:
    """The API's list verifies with the published QR keys; changed by one entry it does not
    (bad_revocation_signature), and a gate whose cached list was tampered with (found when it restarts) has
    no list to work on: it refuses to decide offline (revocations_missing)."""
    void(stack, ticket(stack, permit))
    doc = call(stack, "GET", "/api/v1/gate/revocations", "exit_gate").json()
    assert verify_list(doc, keys(stack)).tickets
    tampered = copy.deepcopy(doc)
    tampered["list"]["tickets"] = tampered["list"]["tickets"][1:]
    with pytest.raises(BadRevocationSignature) as exc:
        verify_list(tampered, keys(stack))
    assert exc.value.reason == "bad_revocation_signature"
    with gate(stack, tmp_path, max_revocation_age=timedelta(minutes=30)) as g:
        assert g.refresh_revocations()
    db = sqlite3.connect(tmp_path / "gate.sqlite")
    db.execute("UPDATE revocations SET doc = ?", (json.dumps(tampered, ensure_ascii=False),))
    db.commit()
    db.close()
    with gate(stack, tmp_path, max_revocation_age=timedelta(minutes=30)) as g:  # the gate restarted
        assert g.revocation_list() is None
        t = ticket(stack, permit)
        with pytest.raises(OfflineUnavailable) as off:
            g.scan(t["qr"], t["truck_plate"], covered=True)
        assert off.value.reason == "revocations_missing"
        assert g.pending() == []


def test_a_too_old_list_makes_the_gate_refuse_to_work_offline(stack: Stack, permit: dict[str, Any],  # noqa: F811
                                                              tmp_path: Path) -> None:
    """With a list older than max_revocation_age the gate raises revocations_stale instead of deciding (and
    queues nothing); its status says stale; a refresh makes it work again."""
    t = ticket(stack, permit)
    later = [now()]
    with gate(stack, tmp_path, max_revocation_age=timedelta(minutes=30), clock=lambda: later[0]) as g:
        assert g.refresh_revocations()
        later[0] = now() + timedelta(hours=1)
        assert g.revocation_status()["stale"] is True
        with pytest.raises(OfflineUnavailable) as exc:
            g.scan(t["qr"], t["truck_plate"], covered=True, at=now() + timedelta(minutes=5))
        assert exc.value.reason == "revocations_stale"
        assert g.pending() == []
        later[0] = now()
        assert g.refresh_revocations()
        assert g.scan(t["qr"], t["truck_plate"], covered=True).accepted is True


def test_a_revoked_ticket_accepted_offline_becomes_a_violation_on_sync(stack: Stack, permit: dict[str, Any],  # noqa: F811
                                                                      tmp_path: Path) -> None:
    """The gate refreshed its list, then the ticket was voided (its volume back in the quota), then the gate,
    offline, let it out. At sync the scan comes back refused voided with a no_ticket violation on the ledger,
    the quota holds the ticket's volume again (once: another offline scan of it changes the quota no more)."""
    t = ticket(stack, permit)
    with gate(stack, tmp_path, max_revocation_age=timedelta(minutes=30)) as g:
        assert g.refresh_revocations()
        before = issued_m3(stack, permit)
        void(stack, t)
        assert issued_m3(stack, permit) != before
        assert g.scan(t["qr"], t["truck_plate"], covered=True).accepted is True
        report = g.sync()
        assert report.ok and report.sent == 1 and report.refused == 1, report
        res = report.results[0]
        assert res["reason"] == "voided" and res["violation_id"], res
        v = call(stack, "GET", f"/api/v1/violations/{res['violation_id']}", "operator").json()
        assert (v["type"], v["ticket_id"]) == ("no_ticket", t["id"])
        assert issued_m3(stack, permit) == before
        assert g.pending() == []
    again = call(stack, "POST", "/api/v1/gate/sync", "exit_gate", {"gate_id": "P-001-G1", "scans": [stack.offline_exit(
        {"scan_id": f"again-{t['id']}", "kind": "exit", "qr": t["qr"], "plate": t["truck_plate"],
         "scanned_at": now().isoformat(), "covered": True, "offline_verdict": {"accepted": True, "reason": None}})]})
    assert again.status_code == 200, again.text
    assert again.json()["results"][0]["accepted"] is False  # the ticket's exit is taken: already_departed
    assert issued_m3(stack, permit) == before


def test_an_exit_let_out_offline_after_a_suspension_is_recorded_with_a_violation(
        stack: Stack, permit: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    """The gate refreshed its list, then the ticket's truck was suspended (a penalty), then the gate, offline,
    let the truck out. At sync the exit is recorded (the load did leave: the ticket is departed) and answered
    accepted with reason revoked_before_scan and a no_ticket violation naming the suspension; the next refresh
    puts the truck on the gate's list."""
    t = ticket(stack, permit)
    truck_id = next(tid for tid, plate in TRUCKS if plate == t["truck_plate"])
    with gate(stack, tmp_path, max_revocation_age=timedelta(minutes=30)) as g:
        assert g.refresh_revocations()
        r = call(stack, "POST", "/api/v1/penalties", "enforcement", stack.penalty({
            "penalty_id": f"PN-OFFLINE-{t['id']}", "target_kind": "truck", "target_id": truck_id,
            "amount_yuan": "2000", "measures": [{"kind": "suspend", "days": 3}]}))
        assert r.status_code == 201, r.text
        assert g.scan(t["qr"], t["truck_plate"], covered=True).accepted is True
        report = g.sync()
        assert report.ok and report.sent == 1, report
        res = report.results[0]
        assert res["accepted"] is True and res["reason"] == "revoked_before_scan" and res["violation_id"], res
        v = call(stack, "GET", f"/api/v1/violations/{res['violation_id']}", "operator").json()
        assert (v["type"], v["ticket_id"]) == ("no_ticket", t["id"]) and truck_id in v["description"]
        got = call(stack, "GET", f"/api/v1/tickets/{t['id']}", "contractor").json()
        assert got["status"] == "departed", got
        assert g.refresh_revocations()
        rl = g.revocation_list()
        assert rl is not None and t["truck_plate"] in rl.trucks


def test_an_offline_weighbridge_receipt_by_gross_and_tare_syncs(stack: Stack, permit: dict[str, Any],  # noqa: F811
                                                                 tmp_path: Path) -> None:
    """A disposal gate with a weighbridge, offline, records a receipt by gross and tare alone (45.2 t - 18.2 t =
    27 t, 15 m³ at 1.8 t/m³); an incomplete or impossible weighing is refused there (bad_weighing) and not
    counted; at sync the receipt is accepted and the ticket shows the weight and the measured volume."""
    t = ticket(stack, permit)
    ex = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", stack.exit(t["qr"], t["truck_plate"]))
    assert ex.status_code == 200 and ex.json()["accepted"], ex.text
    g = OfflineGate(stack.api, stack.demo["tokens"]["disposal_gate"], kind="disposal", site_id="S-003",
                    db_path=tmp_path / "weighbridge.sqlite", gate_id="S-003-G1",
                    signing_key=stack.device_key("gate:disposal:S-003"))
    with g:
        assert g.refresh_keys()
        for bad in ({"gross_t": "45.2"}, {"gross_t": "18", "tare_t": "18.2"}, {"weight_t": "-3"}):
            res = g.scan(t["qr"], t["truck_plate"], **bad)
            assert (res.accepted, res.reason) == (False, "bad_weighing"), (bad, res)
        good = g.scan(t["qr"], t["truck_plate"], gross_t="45.2", tare_t="18.2")
        assert good.accepted, good
        report = g.sync()
        assert report.ok and report.accepted == 1, report
    got = call(stack, "GET", f"/api/v1/tickets/{t['id']}", "contractor").json()
    assert got["status"] == "received", got
    assert (got["measured_m3"], got["weight_t"]) == ("15", "27"), got


def test_the_delta_returns_only_newer_entries(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """?since=<version> and ?since=<time> hold only what was revoked after it; a bad since is 400 bad_since;
    the list is for gates only."""
    void(stack, ticket(stack, permit))
    full = call(stack, "GET", "/api/v1/gate/revocations", "exit_gate").json()["list"]
    mark = now()  # times are whole seconds: what follows starts in a later second
    while now() <= mark:
        time.sleep(0.05)
    t = ticket(stack, permit)
    void(stack, t)
    delta = call(stack, "GET", "/api/v1/gate/revocations", "exit_gate", params={"since": full["version"]}).json()
    assert verify_list(delta, keys(stack)).since_version == full["version"]
    assert [e["ticket_id"] for e in delta["list"]["tickets"]] == [t["id"]]
    by_time = call(stack, "GET", "/api/v1/gate/revocations", "disposal_gate",
                   params={"since": mark.isoformat()}).json()["list"]
    assert [e["ticket_id"] for e in by_time["tickets"]] == [t["id"]]
    bad = call(stack, "GET", "/api/v1/gate/revocations", "exit_gate", params={"since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["reason"] == "bad_since"
    assert call(stack, "GET", "/api/v1/gate/revocations", "contractor").status_code == 403


def _node(s: Stack) -> tuple[str, str]:
    """A node's database URL and the consortium file (what ``ledger report`` reads)."""
    desc = json.loads((s.var / "consortium.json").read_text(encoding="utf-8"))
    node = json.loads(Path(desc["nodes"][0]["config"]).read_text(encoding="utf-8"))
    return str(node["db"]), str(desc["consortium"])


def _report(s: Stack, since: datetime, until: datetime, by: str) -> tuple[dict[str, Any], str]:
    db, consortium = _node(s)
    done = subprocess.run([sys.executable, "-m", "ledger", "report", "--db", db, "--consortium", consortium,
                           "--since", since.isoformat(), "--until", until.isoformat(), "--by", by,
                           "--format", "json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def _place(report: dict[str, Any], kind: str, place: str, day: str) -> dict[str, Any]:
    found = [r for r in report["reconciliation"] if (r["kind"], r["place_id"], r["day"]) == (kind, place, day)]
    return found[0] if found else {"tickets_issued": 0, "scans": 0, "sightings": 0, "gap": 0, "alarm": False}


def test_the_reconciliation_counts_what_was_seen_and_flags_a_gap(stack: Stack, permit: dict[str, Any]) -> None:  # noqa: F811
    """``ledger report`` on a node's database counts, for the project's exit and the site today, the tickets
    issued, the exit scans and the receipts (two tickets out, one received: +2 / +2 at the exit, +2 / +1 at
    the site), with no alarm and the report rows' unticketed_trips 0; the dashboard serves the reconciliation
    alarms; the chain's own counts with 31 camera sightings at the exit (the seam a camera source plugs into)
    are a trips_over_tickets and seen_not_scanned alarm."""
    start = now().replace(hour=0, minute=0, second=0)
    until = now() + timedelta(hours=1)
    day = start.date().isoformat()
    before, _ = _report(stack, start, until, "project")
    site_before, _ = _report(stack, start, until, "site")
    tickets = [ticket(stack, permit), ticket(stack, permit)]
    for t in tickets:
        ex = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", stack.exit(t["qr"], t["truck_plate"]))
        assert ex.status_code == 200, ex.text
    rc = call(stack, "POST", "/api/v1/gate/disposal", "disposal_gate",
              stack.disposal(tickets[0]["qr"], tickets[0]["truck_plate"], volume_m3="15"))
    assert rc.status_code == 200, rc.text
    after, _ = _report(stack, start, until, "project")
    site_after, _ = _report(stack, start, until, "site")
    ex0, ex1 = _place(before, EXIT, "P-001", day), _place(after, EXIT, "P-001", day)
    assert (ex1["tickets_issued"] - ex0["tickets_issued"], ex1["scans"] - ex0["scans"]) == (2, 2)
    s0, s1 = _place(site_before, SITE, "S-003", day), _place(site_after, SITE, "S-003", day)
    assert (s1["tickets_issued"] - s0["tickets_issued"], s1["scans"] - s0["scans"]) == (2, 1)
    assert (ex1["alarm"], s1["alarm"], ex1["sightings"]) == (False, False, 0)
    row = next(r for r in after["rows"] if r["group"] == "P-001")
    assert (row["unticketed_trips"], row["reconciliation_alarms"]) == (0, 0)
    dash = call(stack, "GET", "/api/v1/dashboard", "operator").json()
    assert dash["counters"]["reconciliation_alarms"] == len(dash["reconciliation"]) == 0
    db, consortium_file = _node(stack)
    consortium = read_consortium(consortium_file)
    store = LedgerStore.open(db, consortium=consortium, create=False)
    try:
        machine = EticketMachine.from_consortium(consortium)
        assert replay(store, consortium, machine) is None
    finally:
        store.close()
    counts = ledger_counts(machine.state, int(start.timestamp()), int(until.timestamp()))
    seen = reconcile({**counts, "sightings": {(EXIT, "P-001", day): 31}})
    gap = next(r for r in seen if (r.kind, r.place_id, r.day) == (EXIT, "P-001", day))
    assert gap.tickets_issued == ex1["tickets_issued"] and gap.trips == max(31, ex1["scans"])
    assert gap.alarm and gap.reasons == ("trips_over_tickets", "seen_not_scanned")
    assert gap.gap == gap.trips - gap.tickets_issued
