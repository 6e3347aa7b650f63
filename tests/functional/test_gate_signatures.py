"""Gates, cameras and GPS terminals sign their own acts (issue 12 part 3) against the real stack, in a
consortium whose policy lists gate.exit, gate.receipt, camera.sighting and trip.positions among the acts their
actors must sign: an operator registers each device's key; an unsigned scan, sighting or GPS batch relayed by
the API is refused, a signed one (online or synced from an offline gate) is recorded, and provenance names the
device as the signer."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ, iso
from ledger.eticket import acts
from ledger.eticket.acts import DEFAULT_ACT_SIGNED
from miniprogram_stub.client import ApiCallError, ApiClient
from miniprogram_stub.gate import OfflineGate
from miniprogram_stub.photos import tiny_png

from .serve_fixtures import ROOT, Stack, serve

pytestmark = [pytest.mark.slow]
SIGNED = [*DEFAULT_ACT_SIGNED, "gate.exit", "gate.receipt", "camera.sighting", "trip.positions"]
TRUCKS = [(f"TR-7{i:03d}", f"渝E7{i:04d}") for i in range(3)]


def now() -> datetime:
    return datetime.now(CHINA_TZ).replace(microsecond=0)


def call(s: Stack, method: str, path: str, role: str, body: Any = None) -> requests.Response:
    return requests.request(method, s.api + path, json=body, headers=s.headers(role), timeout=60)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from serve(tmp_path_factory, eticket={"act_signed": SIGNED})


@pytest.fixture(scope="module")
def world(stack: Stack) -> dict[str, Any]:
    """Trucks, an approved permit, and the two demo gates' keys registered by the operator."""
    for tid, plate in TRUCKS:
        r = call(stack, "POST", "/api/v1/registry/truck", "operator",
                 {"truck_id": tid, "plate": plate, "company_id": "C-01", "capacity_m3": "18"})
        assert r.status_code == 201, r.text
    r = call(stack, "POST", "/api/v1/permits", "contractor", {
        "project_id": "P-001", "volume_m3": "500", "disposal_site_ids": ["S-003"], "company_ids": ["C-01"],
        "valid_from": (now() - timedelta(hours=1)).isoformat(), "valid_to": (now() + timedelta(days=3)).isoformat()})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    for dept in stack.demo["tokens"]["approvers"]:
        d = call(stack, "POST", f"/api/v1/permits/{pid}/decisions", f"approvers.{dept}", stack.decision(dept, pid))
        assert d.status_code == 200, d.text
    keys = {"exit": PrivateKey.generate(), "disposal": PrivateKey.generate()}
    assert stack.register_key("gate:exit:P-001", keys["exit"]).status_code == 201
    assert stack.register_key("gate:disposal:S-003", keys["disposal"]).status_code == 201
    return {"permit_id": pid, "keys": keys}


def _ticket(s: Stack, world: dict[str, Any], plate: str) -> dict[str, Any]:
    r = call(s, "POST", "/api/v1/tickets", "contractor", {"permit_id": world["permit_id"], "truck_plate": plate,
                                                          "disposal_site_id": "S-003", "volume_m3": "15"})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_unsigned_scans_are_refused_and_signed_ones_recorded(stack: Stack, world: dict[str, Any]) -> None:
    """An exit scan without the gate's signature is refused act_unsigned; signed with the exit gate's key it
    is accepted, and the receipt signed with the disposal gate's key (weight only) too; the exit gate's key
    cannot sign a receipt at the disposal site (act_key_mismatch); the ticket's provenance names the gate
    device as signer of its exit and receipt, relayed by the gateway."""
    t = _ticket(stack, world, TRUCKS[0][1])
    bare = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", {"qr": t["qr"], "plate": t["truck_plate"],
                                                                   "covered": True})
    assert bare.json()["reason"] == "act_unsigned", bare.text
    exit_gate = ApiClient(stack.api, stack.demo["tokens"]["exit_gate"])
    out = exit_gate.gate_exit(qr=t["qr"], plate=t["truck_plate"], covered=True, signing_key=world["keys"]["exit"],
                              gate_id="P-001-G1")
    assert out["accepted"], out
    disposal = ApiClient(stack.api, stack.demo["tokens"]["disposal_gate"])
    wrong = disposal.gate_disposal(qr=t["qr"], plate=t["truck_plate"], weight_t="27",
                                   signing_key=world["keys"]["exit"], gate_id="S-003-G1", site_id="S-003")
    assert wrong.get("reason") == "act_key_mismatch", wrong
    rc = disposal.gate_disposal(qr=t["qr"], plate=t["truck_plate"], weight_t="27",
                                signing_key=world["keys"]["disposal"], gate_id="S-003-G1", site_id="S-003")
    assert rc["accepted"] and rc["measured_m3"] == "15", rc
    export = call(stack, "GET", f"/api/v1/provenance/ticket/{t['id']}", "regulator").json()
    by_type = {r["type"]: r for r in export["records"]}
    assert by_type["gate.exit"]["signer"] == {"key_id": world["keys"]["exit"].key_id, "device": "gate:exit:P-001"}
    assert by_type["gate.receipt"]["signer"] == {"key_id": world["keys"]["disposal"].key_id,
                                                 "device": "gate:disposal:S-003"}
    assert by_type["gate.exit"]["relayed_by"]["member"] == "gateway"


def test_an_offline_gate_signs_each_scan_and_syncs_it_signed(stack: Stack, world: dict[str, Any],
                                                            tmp_path: Path) -> None:
    """An offline exit gate with its device key signs the scan when it happens; at sync the scan is accepted
    (the ledger checked the gate's signature over the payload the API submitted); the same gate without its
    key syncs a scan that the consortium refuses act_unsigned."""
    t = _ticket(stack, world, TRUCKS[1][1])
    with OfflineGate(stack.api, stack.demo["tokens"]["exit_gate"], kind="exit", site_id="P-001",
                     db_path=tmp_path / "signed.sqlite", gate_id="P-001-G2",
                     signing_key=world["keys"]["exit"]) as g:
        assert g.refresh_keys()
        assert g.scan(t["qr"], t["truck_plate"], covered=True).accepted
        report = g.sync()
        assert report.ok and report.accepted == 1, report
    u = _ticket(stack, world, TRUCKS[2][1])
    with OfflineGate(stack.api, stack.demo["tokens"]["exit_gate"], kind="exit", site_id="P-001",
                     db_path=tmp_path / "bare.sqlite", gate_id="P-001-G3") as g:
        assert g.refresh_keys()
        assert g.scan(u["qr"], u["truck_plate"], covered=True).accepted
        report = g.sync()
        assert report.ok and report.results[0]["reason"] == "act_unsigned", report


def test_only_a_department_registers_an_approver_key(stack: Stack) -> None:
    """The operator registering an approver key for 住建 through the API (the gateway's member key) is
    refused forbidden: only 住建's own member key may."""
    r = stack.register_key("approver:zhujian", PrivateKey.generate())
    assert (r.status_code, r.json()["reason"]) == (403, "forbidden"), r.text


def test_a_camera_signs_its_sightings(stack: Stack) -> None:
    """With camera.sighting among the signed acts, the demo exit camera's sighting without its signature is
    refused act_unsigned; with the camera's own key (registered by the operator) a black truck's sighting is
    recorded as one unapproved_disposal event with the photo, and its provenance names the camera."""
    key = PrivateKey.generate()
    camera_id = stack.demo["camera_id"]
    assert stack.register_key(f"camera:{camera_id}", key).status_code == 201
    cam = ApiClient(stack.api, stack.demo["tokens"]["camera"], language="en")
    r = requests.post(f"{stack.api}/api/v1/cameras/sightings", headers=stack.headers("camera"), timeout=60,
                      json={"plate": "渝D99001", "covered": True, "photo": base64.b64encode(tiny_png(7)).decode()})
    assert r.json()["reason"] == "act_unsigned", r.text
    seen = cam.sighting(plate="渝D99001", covered=True, photo=tiny_png(8), signing_key=key, camera_id=camera_id)
    assert [v["type"] for v in seen["violations"]] == ["unapproved_disposal"], seen
    export = call(stack, "GET", f"/api/v1/provenance/violation/{seen['violations'][0]['violation_id']}",
                  "regulator").json()
    [rec] = [x for x in export["records"] if x["type"] == "camera.sighting"]
    assert rec["signer"] == {"key_id": key.key_id, "device": f"camera:{camera_id}"}


def test_the_demo_story_signs_with_the_demo_devices_keys(stack: Stack, tmp_path: Path) -> None:
    """``python -m miniprogram_stub demo --demo-file var/demo.json`` plays the whole story in this consortium,
    which wants every device act signed: the demo registered a key per device (demo.json device_keys, files
    under var/secrets/devices, mode 0600, registered by the operator) and the exit, GPS batch, receipt and
    the camera's sighting are each signed by their device; the ticket's provenance names the devices."""
    keys = stack.demo["device_keys"]
    assert {"gate:exit:P-001", "gate:disposal:S-003", f"camera:{stack.demo['camera_id']}", "gps:GPS-9900"} <= set(keys)
    assert all(oct(Path(f).stat().st_mode & 0o777) == "0o600" for f in keys.values())
    run = subprocess.run([sys.executable, "-m", "miniprogram_stub", "demo", "--demo-file", str(stack.var / "demo.json"),
                          "--out", str(tmp_path), "--language", "en"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = {line.split(":", 1)[0].removeprefix("== "): line.split(":", 1)[1].strip()
             for line in run.stdout.splitlines() if line.startswith("== ")}
    assert lines["ledger verdict"].startswith("valid in block "), run.stdout
    assert lines["disposal receipt"].startswith("accepted=True"), run.stdout
    assert any(line.startswith("== camera event: ") for line in run.stdout.splitlines()), run.stdout
    tid = lines["issue a ticket"].split()[0]
    export = call(stack, "GET", f"/api/v1/provenance/ticket/{tid}", "regulator").json()
    signers = {r["type"]: r["signer"].get("device") for r in export["records"]}
    assert signers == {"ticket.issue": None, "gate.exit": "gate:exit:P-001", "trip.positions": "gps:GPS-9900",
                       "gate.receipt": "gate:disposal:S-003"}, signers


def test_a_gps_terminal_signs_its_batches(stack: Stack, world: dict[str, Any]) -> None:
    """With trip.positions among the signed acts, the demo truck terminal's batch without its signature is
    refused act_unsigned, and one whose signature is over other points than it sends bad_act_signature; signed
    with the terminal's own key (registered by the operator) it is recorded, and the ticket's provenance
    names the GPS device as the batch's signer, relayed by the gateway."""
    plate = stack.demo["trucks"][0]
    t = _ticket(stack, world, plate)
    gate = ApiClient(stack.api, stack.demo["tokens"]["exit_gate"])
    out = gate.gate_exit(qr=t["qr"], plate=plate, covered=True, signing_key=world["keys"]["exit"],
                         gate_id="P-001-G1")
    assert out["accepted"], out
    key = PrivateKey.generate()
    assert stack.register_key("gps:GPS-9900", key).status_code == 201
    at = now()
    points = [{"at": (at - timedelta(seconds=30 - 10 * i)).isoformat(), "lat": 29.71203 - 0.0005 * i,
               "lon": 106.53031 - 0.0005 * i, "speed_kmh": 30.0} for i in range(3)]
    terminal = ApiClient(stack.api, stack.demo["tokens"]["truck_terminal"])
    with pytest.raises(ApiCallError) as bare:
        terminal.report_positions(t["id"], points)
    assert bare.value.reason == "act_unsigned", bare.value.body
    stamp = iso(at, timespec="seconds")
    other = acts.positions_payload(t["id"], [acts.position_point(stamp, 29.0, 106.0, 1.0)], stamp)
    forged = call(stack, "POST", f"/api/v1/trips/{t['id']}/positions", "truck_terminal", {
        "positions": points, "time": stamp, "act_sig": acts.act_signature(key, "trip.positions", other)})
    assert (forged.status_code, forged.json()["reason"]) == (403, "bad_act_signature"), forged.text
    pos = terminal.report_positions(t["id"], points, signing_key=key)
    assert pos["accepted"] == 3, pos
    export = call(stack, "GET", f"/api/v1/provenance/ticket/{t['id']}", "regulator").json()
    [batch] = [r for r in export["records"] if r["type"] == "trip.positions"]
    assert batch["signer"] == {"key_id": key.key_id, "device": "gps:GPS-9900"}
    assert batch["relayed_by"]["member"] == "gateway"
