"""The screen's alarms and a camera's photo in a real headless Chromium (Debian's, driven by Playwright), on one
real stack founded with a member key close to its end (交通's node key ends in 5 days: ``tools.serve --genesis``).

The chain panel names the key with its end date and the reconciliation panel says where, which day and why a
place-day is in alarm (a truck the exit camera saw that no gate scanned), in Chinese and then in English; a camera
sighting posted with the demo camera's token flashes as a violation whose detail shows the very photo posted
(fetched with the bearer token, shown from an object URL), and a violation without evidence says it has no photo.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from ledger.core.consortium import department_members
from ledger.core.encoding import CHINA_TZ
from ledger.core.validity import Validity
from ledger.store.founding import found_consortium
from miniprogram_stub.client import ApiClient
from miniprogram_stub.photos import tiny_png
from tools.local_consortium import default_parameters

from .dashboard_fixtures import MEMBERS, STREAM_SECONDS, Screen, browser, post
from .serve_fixtures import Stack, run_stack

__all__ = ["browser"]  # the fixture, shared
pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: the member whose key ends soon, and in how many days
EXPIRING, EXPIRES_IN_DAYS = "jiaotong", 5
SHOTS = Path(os.environ.get("DASHBOARD_SCREENSHOTS", "/tmp/dashboard-shots"))
EN_MEMBERS = {"chengguan": "Urban Mgmt", "zhujian": "Housing", "jiaotong": "Transport", "shengtai": "Environment"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The demo stack on a genesis its members founded with 交通's key valid for 5 more days only."""
    root = tmp_path_factory.mktemp("alarms")
    now = datetime.now(CHINA_TZ).replace(microsecond=0)
    short = Validity(not_before=(now - timedelta(hours=1)).isoformat(),
                     not_after=(now + timedelta(days=EXPIRES_IN_DAYS)).isoformat())
    found_consortium(root / "founded", department_members(4), name="cq-muck", parameters=default_parameters(),
                     now=now, validity={EXPIRING: short})
    (root / "var").mkdir()
    with pytest.MonkeyPatch.context() as mp:  # the stack's API reads it from the environment it inherits
        mp.setenv("TICKET_API_DASHBOARD_STREAM_SECONDS", STREAM_SECONDS)
        with run_stack(root / "var", "--genesis", str(root / "founded")) as st:
            st.demo["expiring_not_after"] = short.not_after
            yield st


_seeds = iter(range(500, 10**6))


def _sight(st: Stack, plate: str, photo: bytes) -> dict[str, Any]:
    """The demo's site-exit camera (P-001) saw ``plate``: POST /api/v1/cameras/sightings with its token,
    signed with its own key."""
    camera_id = st.demo["camera_id"]
    return dict(ApiClient(st.api, st.demo["tokens"]["camera"]).sighting(
        plate=plate, covered=True, photo=photo, signing_key=st.device_key(f"camera:{camera_id}"),
        camera_id=camera_id))


def _snapshot(st: Stack) -> dict[str, Any]:
    resp = requests.get(f"{st.api}/api/v1/dashboard", headers=st.headers("operator"), timeout=30)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _fits(page: Any) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth && "
                              "document.documentElement.scrollHeight <= window.innerHeight"))


def test_keys_expiring_and_reconciliation_alarms_show_in_both_languages(browser: Any, stack: Stack) -> None:
    """交通's key ends in 5 days: the chain panel shows one alarm line "密钥将到期：交通 <date>" (its end date in
    +08:00), "Keys expiring: Transport <date>" in English. A black truck seen by P-001's exit camera and never
    scanned makes a reconciliation alarm: the row names the exit (the project's name and id), the day and why
    (seen by the camera, no exit scan) in words in both languages, besides the counts; the page still fits
    1366×768 with both lines shown (screenshots to ``$DASHBOARD_SCREENSHOTS``), and logs no error."""
    _sight(stack, "渝D81001", tiny_png(next(_seeds)))
    snap = _snapshot(stack)
    keys = snap["chain"]["keys_expiring"]
    assert [k["member"] for k in keys] == [EXPIRING] and keys[0]["not_after"] == stack.demo["expiring_not_after"]
    date = stack.demo["expiring_not_after"][:10]  # +08:00 already: the day the screen shows
    today = snap["today"]
    row = next(r for r in snap["reconciliation"] if (r["kind"], r["place_id"], r["day"]) == ("exit", "P-001", today))
    assert "seen_not_scanned" in row["reasons"] and row["place_name"], row

    screen = Screen(browser, stack, size=(1366, 768))
    try:
        page = screen.open(stack)
        page.wait_for_selector("#keys-expiring:not([hidden])", timeout=15_000)
        line = page.inner_text("#keys-expiring")
        assert line.startswith("密钥将到期") and f"{MEMBERS[EXPIRING]} {date}" in line, line
        assert page.locator(f'#keys-expiring [data-member="{EXPIRING}"]').count() == 1
        color = page.eval_on_selector("#keys-expiring", "e => getComputedStyle(e).color")
        assert color == "rgb(239, 68, 68)", color  # the alarm colour
        item = page.locator(f'#reconciliation [data-recon="exit:P-001:{today}"]')
        item.wait_for(timeout=15_000)
        text = item.inner_text()
        assert f"工地出口 {row['place_name']} · P-001" in text and today in text, text
        reason = (f"摄像头抓拍 {row['sightings']} 车，出口扫码仅 {row['scans']} 车：{row['unscanned']} 车未扫码出场")
        assert reason in text, text
        assert page.locator("#panel-recon.hot").count() == 1
        assert _fits(page), "the page scrolls at 1366×768"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "dashboard-alarms-1366x768.png"))

        page.click("#lang")
        page.wait_for_function("() => document.querySelector('h1').textContent.includes('Governance Centre')")
        line = page.inner_text("#keys-expiring")
        assert line.startswith("Keys expiring") and f"{EN_MEMBERS[EXPIRING]} {date}" in line, line
        assert "days left" in line and "密钥" not in line, line
        text = item.inner_text()
        assert f"Site exit {row['place_name']} · P-001" in text and today in text, text
        reason = (f"seen by cameras {row['sightings']}, scanned at the exit {row['scans']}: "
                  f"{row['unscanned']} left without a scan")
        assert reason in text and "摄像头" not in text, text
        page.screenshot(path=str(SHOTS / "dashboard-alarms-1366x768-en.png"))
        page.click("#lang")
        assert page.inner_text("#keys-expiring").startswith("密钥将到期")
    finally:
        screen.close()
    assert not screen.errors, screen.errors
    assert not screen.outside, f"requests outside the API: {screen.outside}"


def test_a_camera_sighting_flashes_and_its_detail_shows_the_photo(browser: Any, stack: Stack) -> None:
    """A black truck at P-001's exit, posted by the demo camera with a real PNG: its unapproved_disposal event
    flashes on the screen (the stream, no polling); clicking it opens the detail, which fetches the photo with the
    bearer token, checks its bytes against the digest and shows it from an object URL: the bytes served hash to
    the posted photo's sha256 and the <img> has the photo's size and colour. A patrol's report without evidence
    says "无照片证据"."""
    screen = Screen(browser, stack, size=(1920, 1080))
    try:
        page = screen.open(stack)  # live: the first snapshot is drawn, what arrives next is new
        seed = next(_seeds)
        photo = tiny_png(seed, size=24)
        digest = "sha256:" + hashlib.sha256(photo).hexdigest()
        seen = _sight(stack, "渝D81002", photo)
        assert seen["photo_digest"] == digest
        [v] = [x for x in seen["violations"] if x["type"] == "unapproved_disposal"]
        assert v["evidence"] == [digest], v
        vid = v["violation_id"]
        row = page.locator(f'#violations .event.flash[data-violation-id="{vid}"]')
        row.wait_for(timeout=10_000)  # pushed by the stream (the API recomputes the snapshot every second)
        assert "未经核准擅自处置" in row.inner_text() and "渝D81002" in row.inner_text()

        with page.expect_response(lambda r: r.url.endswith(f"/api/v1/evidence/{digest}"), timeout=15_000) as got:
            row.click()
        resp = got.value
        assert resp.status == 200 and resp.request.headers.get("authorization", "").startswith("Bearer ")
        assert "sha256:" + hashlib.sha256(resp.body()).hexdigest() == digest
        # the page checked the bytes against the digest (WebCrypto: loopback is a secure origin) and shows them
        page.wait_for_selector(f'#detail-photo figure[data-digest="{digest[7:]}"][data-verified="1"]'
                               '[data-loaded="1"] img',
                               timeout=15_000)
        assert vid in page.inner_text("#detail-title")
        width, height, src, pixel = page.eval_on_selector("#detail-photo img", """img => {
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const g = c.getContext('2d'); g.drawImage(img, 0, 0);
            return [img.naturalWidth, img.naturalHeight, img.src, Array.from(g.getImageData(12, 12, 1, 1).data)];
        }""")
        assert (width, height) == (24, 24) and src.startswith(f"blob:{stack.api}/"), (width, height, src)
        expected = ((seed * 97) % 256, (seed * 57 + 80) % 256, (seed * 31 + 160) % 256)  # tiny_png's colour
        assert all(abs(a - b) <= 2 for a, b in zip(pixel[:3], expected, strict=True)), (pixel, expected)
        page.click("#detail-close")
        assert page.is_hidden("#detail")

        plain = post(stack, "/api/v1/violations", "operator", {
            "type": "spilling", "source": "patrol", "plate": stack.demo["trucks"][0],
            "location": {"lat": 29.7001, "lon": 106.5102}, "description": "巡查：抛洒滴漏"})
        other = page.locator(f'#violations [data-violation-id="{plain["violation_id"]}"]')
        other.wait_for(timeout=10_000)
        other.click()
        page.wait_for_selector("#detail-photo .photo-none")
        assert page.inner_text("#detail-photo") == "无照片证据"
        assert page.locator("#detail-photo img").count() == 0
        assert "/api/v1/dashboard" not in screen.paths, "the screen polls"
    finally:
        screen.close()
    assert not screen.errors, screen.errors
    assert not screen.outside, f"requests outside the API: {screen.outside}"
