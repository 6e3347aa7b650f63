"""Cameras against the real stack (4 ledger nodes ticking every second, gunicorn, the demo's site-exit camera):
a black truck and an uncovered load each end as one numbered event with its photo, a repeat within two hours
is the same event, a gate scan inside the grace window clears a sighting, a truck that never scans raises
no_ticket once the window ended, a tampered photo is never served and a bad photo is refused with a reason.
The consortium is a new one (every device act signed): the camera signs each sighting with its own key, in
JSON or multipart, and an unsigned one is refused."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from ledger.core.encoding import CHINA_TZ
from miniprogram_stub.client import ApiCallError, ApiClient
from miniprogram_stub.photos import tiny_png

from .serve_fixtures import Stack, run_stack

pytestmark = [pytest.mark.slow]
GRACE_S = 20
TRUCKS = [(f"TR-8{i:03d}", f"渝C8{i:04d}") for i in range(4)]
_seed = iter(range(1000, 10**6))


@pytest.fixture(scope="module")
def cam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack with a one-second consortium clock and a 20 s grace window; trucks and an approved permit."""
    with run_stack(tmp_path_factory.mktemp("cam"), "--tick-interval-s", "1",
                   "--eticket", f"camera_grace_s={GRACE_S}") as s:
        for tid, plate in TRUCKS:
            r = call(s, "POST", "/api/v1/registry/truck", "operator",
                     {"truck_id": tid, "plate": plate, "company_id": "C-01", "capacity_m3": "18"})
            assert r.status_code == 201, r.text
        now = datetime.now(CHINA_TZ).replace(microsecond=0)
        r = call(s, "POST", "/api/v1/permits", "contractor", {
            "project_id": "P-001", "volume_m3": "5000", "disposal_site_ids": ["S-003"], "company_ids": ["C-01"],
            "valid_from": (now - timedelta(hours=1)).isoformat(), "valid_to": (now + timedelta(days=3)).isoformat()})
        assert r.status_code == 201, r.text
        for dept in s.demo["tokens"]["approvers"]:
            assert call(s, "POST", f"/api/v1/permits/{r.json()['id']}/decisions", f"approvers.{dept}",
                        s.decision(dept, r.json()["id"])).status_code == 200
        s.demo["permit_id"] = r.json()["id"]
        yield s


def call(s: Stack, method: str, path: str, role: str, body: Any = None, **kw: Any) -> requests.Response:
    return requests.request(method, s.api + path, json=body, headers=s.headers(role), timeout=60, **kw)


def client(s: Stack, role: str) -> ApiClient:
    return ApiClient(s.api, s.demo["tokens"][role], language="en")


def sight(s: Stack, plate: str, *, covered: bool = True, ago_s: int = 0, multipart: bool = False) -> dict[str, Any]:
    at = datetime.now(CHINA_TZ).replace(microsecond=0) - timedelta(seconds=ago_s)
    camera_id = s.demo["camera_id"]
    return client(s, "camera").sighting(plate=plate, covered=covered, photo=tiny_png(next(_seed)), time=at,
                                        multipart=multipart, signing_key=s.device_key(f"camera:{camera_id}"),
                                        camera_id=camera_id)


def violations(s: Stack, **query: str) -> list[dict[str, Any]]:
    return list(client(s, "operator").work_list("violations", **query))


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.5)


def ticket(s: Stack, plate: str) -> dict[str, Any]:
    r = call(s, "POST", "/api/v1/tickets", "contractor", {"permit_id": s.demo["permit_id"], "truck_plate": plate,
                                                          "disposal_site_id": "S-003", "volume_m3": "15"})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_black_truck_is_one_numbered_event_with_its_photo(cam: Stack) -> None:
    """An unknown plate at the exit: 202 with one unapproved_disposal event numbered LZZTC…, at the camera's
    coordinates and town, its photo digest as evidence; staff fetch the photo (image/png, bytes hashing to the
    digest), the camera cannot; the same plate again within two hours is the same event, not a second."""
    plate = "渝D80001"
    first = sight(cam, plate)
    [v] = first["violations"]
    assert v["type"] == "unapproved_disposal" and v["violation_id"].startswith("LZZTC")
    assert v["plate"] == plate and v["town"] == "悦来街道" and v["location"] == {"lat": "29.712030",
                                                                                 "lon": "106.530310"}
    assert v["evidence"] == [first["photo_digest"]]
    assert v["evidence_urls"] == [f"/api/v1/evidence/{first['photo_digest']}"]
    photo = requests.get(cam.api + v["evidence_urls"][0], headers=cam.headers("operator"), timeout=30)
    assert photo.status_code == 200 and photo.headers["Content-Type"] == "image/png"
    assert "sha256:" + hashlib.sha256(photo.content).hexdigest() == first["photo_digest"]
    denied = requests.get(cam.api + v["evidence_urls"][0], headers=cam.headers("camera"), timeout=30)
    assert denied.status_code == 403
    again = sight(cam, plate)
    assert [x["violation_id"] for x in again["violations"]] == [v["violation_id"]]
    mine = [x for x in violations(cam, type="unapproved_disposal") if x["plate"] == plate]
    assert len(mine) == 1 and mine[0]["evidence"] == [first["photo_digest"], again["photo_digest"]]


def test_uncovered_load_by_multipart_is_one_event(cam: Stack) -> None:
    """A registered truck's uncovered load, the photo sent as a multipart file: one uncovered_load event for
    the truck with the photo; a second sighting within two hours adds no event."""
    plate = TRUCKS[0][1]
    seen = sight(cam, plate, covered=False, multipart=True)
    [v] = [x for x in seen["violations"] if x["type"] == "uncovered_load"]
    assert v["truck_id"] == TRUCKS[0][0] and v["company_id"] == "C-01" and v["evidence"] == [seen["photo_digest"]]
    sight(cam, plate, covered=False)
    assert len(violations(cam, type="uncovered_load", plate=plate)) == 1
    got = client(cam, "regulator").evidence(seen["photo_digest"])
    assert "sha256:" + hashlib.sha256(got).hexdigest() == seen["photo_digest"]


def test_gate_scan_within_the_grace_window_raises_none(cam: Stack) -> None:
    """The camera saw the truck 10 s before the gate scanned its ticket (grace 20 s): the sighting waits, then
    the consortium's clock clears it with the ticket; no violation for the truck."""
    plate = TRUCKS[1][1]
    t = ticket(cam, plate)
    seen = sight(cam, plate, ago_s=10)
    assert seen["state"] == "pending" and seen["violations"] == []
    ex = call(cam, "POST", "/api/v1/gate/exit", "exit_gate", cam.exit(t["qr"], plate))
    assert ex.status_code == 200 and ex.json()["accepted"] is True, ex.text
    done = wait_for("the sighting checked", lambda: (lambda g: g if g["state"] != "pending" else None)(
        call(cam, "GET", f"/api/v1/cameras/sightings/{seen['sighting_id']}", "operator").json()))
    assert done["state"] == "cleared" and done["ticket_id"] == t["id"] and done["violations"] == []
    assert violations(cam, plate=plate) == []


def test_no_scan_raises_no_ticket_after_the_grace_window(cam: Stack) -> None:
    """A truck with a ticket that drives past the exit camera without scanning: nothing at once, one no_ticket
    event (camera coordinates, plate, photo) once the grace window ended and the clock ticked."""
    plate = TRUCKS[2][1]
    ticket(cam, plate)
    seen = sight(cam, plate, ago_s=GRACE_S - 5)
    assert seen["state"] == "pending" and seen["violations"] == []
    found = wait_for("no_ticket raised", lambda: violations(cam, type="no_ticket", plate=plate))
    [v] = found
    assert v["evidence"] == [seen["photo_digest"]] and v["source"] == "camera" and v["town"] == "悦来街道"
    got = call(cam, "GET", f"/api/v1/cameras/sightings/{seen['sighting_id']}", "enforcement").json()
    assert got["state"] == "checked" and [x["violation_id"] for x in got["violations"]] == [v["violation_id"]]


def test_a_tampered_photo_is_never_served(cam: Stack) -> None:
    """A photo whose stored bytes were changed in the API's database answers 500 evidence_corrupt, never the
    bytes; an unknown digest is 404 evidence_not_found."""
    seen = sight(cam, "渝D80002")
    url = f"{cam.api}/api/v1/evidence/{seen['photo_digest']}"
    assert requests.get(url, headers=cam.headers("operator"), timeout=30).status_code == 200
    db = sqlite3.connect(cam.var / "ticket_api.sqlite", timeout=30)
    with db:
        db.execute("UPDATE evidence_photos SET data = ? WHERE digest = ?", (tiny_png(1), seen["photo_digest"]))
    db.close()
    bad = requests.get(url, headers=cam.headers("operator"), timeout=30)
    assert bad.status_code == 500 and bad.json()["reason"] == "evidence_corrupt"
    assert tiny_png(1) not in bad.content
    missing = requests.get(f"{cam.api}/api/v1/evidence/sha256:{'0' * 64}", headers=cam.headers("operator"),
                           timeout=30)
    assert missing.status_code == 404 and missing.json()["reason"] == "evidence_not_found"


@pytest.mark.parametrize(("photo", "status", "reason"), [
    (base64.b64encode(b"GIF89a not a jpeg or png").decode(), 400, "bad_photo"),
    ("%%% not base64 %%%", 400, "bad_photo"),
    (base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 600_000).decode(), 413, "photo_too_large"),
])
def test_bad_photo_is_refused_with_its_reason(cam: Stack, photo: str, status: int, reason: str) -> None:
    """A photo that is not a JPEG/PNG, not base64, or over the size limit: 4xx with its reason code, nothing
    on the chain; a sighting without a plate is 422 invalid_request."""
    r = call(cam, "POST", "/api/v1/cameras/sightings", "camera", {"plate": "渝D80003", "covered": True,
                                                                  "photo": photo})
    assert r.status_code == status and r.json()["reason"] == reason, r.text
    r = call(cam, "POST", "/api/v1/cameras/sightings", "camera", {"covered": True, "photo": photo})
    assert r.status_code == 422 and r.json()["reason"] == "invalid_request"


@pytest.mark.parametrize("multipart", [False, True])
def test_a_new_consortium_refuses_an_unsigned_sighting(cam: Stack, multipart: bool) -> None:
    """A new consortium's policy names camera.sighting: the exit camera's sighting without its own signature,
    as JSON or multipart, is refused act_unsigned and raises no event; signed in the same form it is recorded
    with an unapproved_disposal event for the unknown plate."""
    plate = "渝D8100" + ("2" if multipart else "1")
    with pytest.raises(ApiCallError) as bare:
        client(cam, "camera").sighting(plate=plate, covered=True, photo=tiny_png(next(_seed)),
                                       time=datetime.now(CHINA_TZ).replace(microsecond=0), multipart=multipart)
    assert bare.value.reason == "act_unsigned", bare.value
    assert [x for x in violations(cam, type="unapproved_disposal") if x["plate"] == plate] == []
    seen = sight(cam, plate, multipart=multipart)
    assert [v["type"] for v in seen["violations"]] == ["unapproved_disposal"], seen
