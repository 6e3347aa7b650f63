"""What the screen's browser tests share: Debian's Chromium driven by Playwright (module-scoped ``browser``),
one page of the screen with what it logged (:class:`Screen`) and posting to the API of a stack.

Import into a test module: ``from .dashboard_fixtures import browser`` (and the helpers it uses).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from .serve_fixtures import ROOT, Stack

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
ECHARTS = ROOT / "ticket_api" / "static" / "dashboard" / "vendor" / "echarts.min.js"
#: The demo consortium's node members and how the screen names them.
MEMBERS = {"chengguan": "城管", "zhujian": "住建", "jiaotong": "交通", "shengtai": "生态环境"}
#: Short streams, so the pages live through several of the browser's reconnections.
STREAM_SECONDS = "8"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds")


def post(st: Stack, path: str, role: str, body: Any, expect: int = 201) -> dict[str, Any]:
    resp = requests.post(f"{st.api}{path}", json=body, headers=st.headers(role), timeout=60)
    assert resp.status_code == expect, (path, resp.status_code, resp.text)
    return dict(resp.json())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (scripts/test installs Debian's chromium)")
    assert ECHARTS.exists(), "ECharts is missing: scripts/test installs it (scripts/_setup.sh setup_echarts)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Screen:
    """One page of the screen with what it logged: console errors, requests outside the API, API paths."""

    def __init__(self, browser: Any, st: Stack, *, size: tuple[int, int] = (1920, 1080), locale: str = "zh-CN"):
        self.context = browser.new_context(viewport={"width": size[0], "height": size[1]}, locale=locale,
                                           timezone_id="Asia/Shanghai", service_workers="block")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.paths: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("request", self._request)

    def _console(self, msg: Any) -> None:
        # a photo the evidence store does not have is a 404 the screen shows as "照片暂不可用" (Chromium logs it)
        if msg.type == "error" and "/api/v1/evidence/" not in (msg.location or {}).get("url", ""):
            self.errors.append(f"console {msg.type}: {msg.text}")

    def _failed(self, req: Any) -> None:
        if "/api/v1/dashboard/stream" not in req.url:  # a stream cut when the page closes
            self.errors.append(f"request failed: {req.url} {req.failure}")

    def _request(self, req: Any) -> None:
        # data: and blob: (the photos' object URLs) are the page's own, not requests elsewhere
        if not req.url.startswith((self.api_base, "data:", f"blob:{self.api_base}")):
            self.outside.append(req.url)
        self.paths.append(urlsplit(req.url).path)

    api_base = ""

    def open(self, st: Stack, role: str = "operator") -> Any:
        self.api_base = st.api
        self.page.goto(f"{st.api}/dashboard#token={st.demo['tokens'][role]}", wait_until="load")
        self.page.wait_for_selector('#conn[data-state="ok"]', timeout=30_000)
        return self.page

    def series(self) -> dict[str, list[dict[str, Any]]]:
        """The map's ECharts series: id -> data items."""
        got = self.page.evaluate(
            "() => Object.fromEntries(echarts.getInstanceByDom(document.getElementById('map')).getOption()"
            ".series.map(s => [s.id, s.data]))")
        return dict(got)

    def close(self) -> None:
        self.context.close()
