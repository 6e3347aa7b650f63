"""The governance centre's screen (/dashboard) in a real headless Chromium (Debian's, driven by Playwright).

The page loads without console errors, renders the counters and the four nodes' health (each with the certificate of
its newest final block: height, how many of the 4 nodes signed it and who), draws a truck on the
road on the map, and shows a disposal site's alarm once the site is pushed past its threshold.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from .serve_fixtures import Stack, stack  # noqa: F401 - the fixture

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
SCREENSHOT = Path(os.environ.get("DASHBOARD_SCREENSHOT", "/tmp/dashboard.png"))
#: The demo consortium's node members and how the screen names them.
MEMBERS = {"chengguan": "城管", "zhujian": "住建", "jiaotong": "交通", "shengtai": "生态环境"}

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds")


def _post(st: Stack, path: str, role: str, body: Any, expect: int = 201) -> dict[str, Any]:
    resp = requests.post(f"{st.api}{path}", json=body, headers=st.headers(role), timeout=30)
    assert resp.status_code == expect, (path, resp.status_code, resp.text)
    return dict(resp.json())


def _truck_on_the_road(st: Stack) -> str:
    """A permit approved by every department, a ticket, the exit gate and two GPS points: one trip under way."""
    now = datetime.now(UTC)
    demo = st.demo
    plate = demo["trucks"][0]
    permit = _post(st, "/api/v1/permits", "contractor", {
        "project_id": demo["project_id"], "volume_m3": "500", "disposal_site_ids": ["S-003"],
        "truck_plates": [plate], "valid_from": _iso(now - timedelta(hours=1)),
        "valid_to": _iso(now + timedelta(days=7))})
    for dept in demo["tokens"]["approvers"]:
        _post(st, f"/api/v1/permits/{permit['id']}/decisions", f"approvers.{dept}", {"decision": "approve"},
              expect=200)
    ticket = _post(st, "/api/v1/tickets", "contractor", {
        "permit_id": permit["id"], "truck_plate": plate, "disposal_site_id": "S-003", "volume_m3": "16"})
    _post(st, "/api/v1/gate/exit", "exit_gate", {"qr": ticket["qr"], "plate": plate, "covered": True,
                                                 "photo_digest": "sha256:" + "ab" * 32}, expect=200)
    departed = datetime.now(UTC)
    points = [{"at": _iso(departed + timedelta(seconds=1 + i)), "lat": lat, "lon": lon, "speed_kmh": 32}
              for i, (lat, lon) in enumerate(((29.7011, 106.5102), (29.6902, 106.4901)))]
    _post(st, f"/api/v1/trips/{ticket['id']}/positions", "truck_terminal", points, expect=200)
    return str(ticket["id"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (scripts/test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def test_dashboard_shows_counters_nodes_trips_and_a_site_alarm(browser: Any, stack: Stack) -> None:  # noqa: F811
    """No console errors; counters and 4 nodes render, each with its newest certificate (#height k/4 签名 and the
    signers' names); the trip is on the map; a full site raises its alarm."""
    ticket_id = _truck_on_the_road(stack)
    violation = _post(stack, "/api/v1/violations", "operator", {
        "type": "uncovered_load", "source": "camera", "plate": stack.demo["trucks"][0],
        "location": {"lat": 29.6950, "lon": 106.5000}, "description": "出口抓拍：未密闭覆盖"})

    context = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai", service_workers="block")
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url} {req.failure}"))
    page.on("request", lambda req: None if req.url.startswith((stack.api, "data:")) else outside.append(req.url))
    try:
        token = stack.demo["tokens"]["operator"]
        page.goto(f"{stack.api}/dashboard#token={token}", wait_until="load")
        page.wait_for_selector('#conn[data-state="ok"]', timeout=15_000)
        assert "token=" not in page.url, "the token is removed from the address bar"

        # counters and chain health
        page.wait_for_function(
            "document.querySelector('[data-counter=\"trucks_on_the_road\"]').textContent.trim() === '1'",
            timeout=15_000)
        assert page.text_content('[data-counter="tickets_today"]').strip() == "1"  # type: ignore[union-attr]
        assert page.text_content('[data-counter="open_violations"]').strip() == "1"  # type: ignore[union-attr]
        assert page.locator(".node-card").count() == 4
        assert page.locator('.node-card[data-diverged="0"].ok').count() == 4
        # the nodes agree on the height (a scheduled system.tick may land between two nodes' answers: the
        # dashboard's next refresh shows them level again)
        page.wait_for_function(
            "new Set([...document.querySelectorAll('.node-card .height')].map(e => e.textContent)).size === 1",
            timeout=15_000)
        heights = [int(h.replace(",", "")) for h in page.locator(".node-card .height").all_text_contents()]
        assert len(set(heights)) == 1 and heights[0] > 0
        # each node's newest certificate: "最新证书 #height k/4 签名" and who signed it
        certs = page.locator(".node-card .cert")
        assert certs.count() == 4
        for i in range(4):
            cert = certs.nth(i)
            text = cert.inner_text()
            signers = (cert.get_attribute("data-signers") or "").split(",")
            height = int(cert.get_attribute("data-cert-height") or "-1")
            assert 3 <= len(signers) <= 4 and set(signers) <= set(MEMBERS), signers
            assert f"#{height:,} {len(signers)}/4 签名" in text and height > 0, text
            assert all(MEMBERS[m] in text for m in signers), text
        assert page.locator(".node-card dt", has_text="最新证书").count() == 4

        # the map: sites, projects, the truck; the violations list
        assert page.locator("#map [data-map-site]").count() == len(stack.demo["disposal_sites"])
        assert page.locator("#map [data-map-project]").count() == 2
        page.wait_for_selector(f'#map [data-map-truck="{ticket_id}"]', timeout=10_000)
        row = page.locator(f'#violations tr[data-violation-id="{violation["violation_id"]}"]')
        assert "待确认" in row.inner_text() and "未密闭覆盖" in row.inner_text()
        assert page.locator(".site.alarm").count() == 0

        # push a disposal site past its threshold: a small site registered at 90 % with its alarm at 85 %
        _post(stack, "/api/v1/registry/site", "operator", {
            "site_id": "S-099", "name": "蔡家临时回填点", "kind": "backfill", "capacity_m3": "100",
            "location": {"lat": 29.7351, "lon": 106.4712}, "alarm_threshold_pct": 85, "initial_load_m3": "90",
            "town": "蔡家岗街道"})
        page.wait_for_selector('[data-site-id="S-099"].alarm', timeout=10_000)
        alarm = page.locator('[data-site-id="S-099"]')
        assert "负荷告警" in alarm.inner_text() and "90.0%" in alarm.inner_text()
        assert "推荐替代消纳场" in alarm.inner_text() and alarm.locator(".alt li").count() >= 1
        page.wait_for_function(
            "document.querySelector('[data-counter=\"sites_in_alarm\"]').textContent.trim() === '1'", timeout=10_000)
        page.wait_for_selector('#map [data-map-site="S-099"].alarm', timeout=5_000)
        page.wait_for_timeout(3500)  # one more poll: the page keeps updating without errors
        page.screenshot(path=str(SCREENSHOT))
    finally:
        context.close()
    assert not errors, errors
    assert not outside, f"requests outside the API: {outside}"


def test_dashboard_without_token_asks_for_one(browser: Any, stack: Stack) -> None:  # noqa: F811
    """Without a token the page shows the sign-in box and calls nothing; a token typed in starts the screen."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, service_workers="block")
    page = context.new_page()
    errors: list[str] = []
    api_calls: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: api_calls.append(req.url) if "/api/" in req.url else None)
    try:
        page.goto(f"{stack.api}/dashboard", wait_until="load")
        page.wait_for_selector("#signin:not([hidden])", timeout=10_000)
        assert "值班员" in page.inner_text("#signin")
        assert api_calls == []
        page.fill("#token-input", stack.demo["tokens"]["regulator"])
        page.click("#signin button[type=submit]")
        page.wait_for_selector('#conn[data-state="ok"]', timeout=15_000)
        assert page.is_hidden("#signin")
        assert page.locator(".node-card").count() == 4
    finally:
        context.close()
    assert not errors, errors


def test_dashboard_data_is_for_staff_only(stack: Stack) -> None:  # noqa: F811
    """GET /api/v1/dashboard: operator, enforcement and regulator; not contractors; times in +08:00; every node's
    line carries the certificate of its newest final block (height = final height, signed by a quorum of 4)."""
    url = f"{stack.api}/api/v1/dashboard"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers=stack.headers("contractor"), timeout=10).status_code == 403
    for role in ("operator", "enforcement", "regulator"):
        resp = requests.get(url, headers=stack.headers(role), timeout=30)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["generated_at"].endswith("+08:00")
        assert {"counters", "sites", "alarms", "violations", "on_the_road", "projects", "chain"} <= set(body)
        assert len(body["chain"]["nodes"]) == 4
        for node in body["chain"]["nodes"]:  # the newest final block's certificate, as each node holds it
            cert = node["certificate"]
            assert cert["height"] == node["final_height"] and len(cert["header_hash"]) == 64
            assert (cert["quorum"], cert["nodes"]) == (3, 4) and 3 <= len(cert["signers"]) <= 4
            assert set(cert["signers"]) <= set(MEMBERS)
        assert all("threshold_pct" in s and "load_rate_pct" in s and "alarm" in s for s in body["sites"])
    page = requests.get(f"{stack.api}/dashboard", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "http://" not in page.text and "https://" not in page.text


def test_dashboard_row_opens_the_camera_photo(browser: Any, stack: Stack) -> None:  # noqa: F811
    """A black truck on the exit camera is a row on the screen with a photo link; clicking it opens the photo
    fetched from the evidence store with the operator's token and shown from a blob (the camera's 8 x 8 PNG)."""
    import base64

    from miniprogram_stub.photos import tiny_png

    png = tiny_png(4242)
    seen = _post(stack, "/api/v1/cameras/sightings", "camera", {"plate": "渝D80009", "covered": True,
                                                              "photo": base64.b64encode(png).decode()}, expect=202)
    [event] = seen["violations"]
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, service_workers="block")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    try:
        page.goto(f"{stack.api}/dashboard#token={stack.demo['tokens']['operator']}", wait_until="load")
        link = page.locator(f'#violations tr[data-violation-id="{event["violation_id"]}"] a.evidence')
        link.wait_for(timeout=15_000)
        assert link.get_attribute("data-evidence") == seen["photo_digest"]
        with context.expect_page() as opened:
            link.click()
        photo = opened.value
        photo.wait_for_url(lambda url: url.startswith("blob:"), wait_until="commit", timeout=15_000)
        # the browser shows it as an image document: the camera's 8 x 8 PNG
        photo.wait_for_function("document.images.length === 1 && document.images[0].complete && "
                                "document.images[0].naturalWidth === 8", timeout=15_000)
    finally:
        context.close()
    assert not errors, errors
