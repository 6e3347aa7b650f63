"""Devices in bulk and both languages, through HTTP against the real stack (4 ledger nodes, gunicorn, fake
WeChat): an operator provisions gates, GPS terminals and cameras in one call checked against the registry on
the chain, revokes them by the same API; validation errors, offline sync results and the login answer come in
Chinese by default and English on request, every time in +08:00."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest
import requests

from ledger import reasons

from .serve_fixtures import ROOT, Stack, stack  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow]


def call(s: Stack, method: str, path: str, role: str, body: Any = None, *, lang: str = "en",
         **kw: Any) -> requests.Response:
    return requests.request(method, s.api + path, json=body, headers=s.headers(role, lang=lang), timeout=60, **kw)


def token_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_operator_provisions_many_devices_in_one_call_and_revokes_them(stack: Stack) -> None:  # noqa: F811
    """One POST provisions 300 devices in a few seconds (not 300 CLI processes); a truck terminal's subject is
    the terminal its truck registered on the chain; each token is shown once and works; the list pages without
    secrets; revoked tokens answer 401."""
    plate = stack.demo["trucks"][1]
    devices = [{"kind": "truck_terminal", "id": plate}, {"kind": "disposal_gate", "id": "S-003", "subject": "S-003-G9"},
               {"kind": "exit_gate", "id": stack.demo["project_id"], "subject": "P-001-G9"},
               *({"kind": "camera", "id": f"ROAD-G75-K{i}"} for i in range(297))]
    started = time.monotonic()
    r = call(stack, "POST", "/api/v1/devices", "operator", {"devices": devices})
    elapsed = time.monotonic() - started
    assert r.status_code == 201, r.text
    assert elapsed < 20, f"300 devices took {elapsed:.1f} s"
    assert r.headers["Cache-Control"] == "no-store"
    items = r.json()["items"]
    assert len(items) == 300 and items[0]["subject"] == "GPS-9901"
    for item in items[:3]:
        me = requests.get(stack.api + "/api/v1/auth/me", headers=token_headers(item["token"]), timeout=10).json()
        assert (me["role"], me["tenant"]) == (item["kind"], item["id"])
        assert me["expires_at"].endswith("+08:00")
    pages, cursor = [], None
    while True:
        page = call(stack, "GET", "/api/v1/devices", "operator",
                    params={"limit": 128, **({"cursor": cursor} if cursor else {})}).json()
        pages.append(page["items"])
        cursor = page["next"]
        if cursor is None:
            break
    listed = [i for p in pages for i in p]
    assert [i["token_id"] for i in listed] == [i["token_id"] for i in items] and len(pages) == 3
    assert not any("token" in i for i in listed)
    gone = call(stack, "POST", "/api/v1/devices/revoke", "operator", {"ids": [items[0]["token_id"]]})
    assert gone.status_code == 200 and gone.json()["items"][0]["active"] is False
    assert call(stack, "DELETE", f"/api/v1/devices/{items[1]['token_id']}", "operator").status_code == 204
    for item in items[:2]:
        who = requests.get(stack.api + "/api/v1/auth/me", headers=token_headers(item["token"]), timeout=10)
        assert (who.status_code, who.json()["reason"]) == (401, "token_revoked")


def test_unknown_plates_and_sites_refuse_the_whole_batch(stack: Stack) -> None:  # noqa: F811
    """A plate or a site the chain does not know, a wrong terminal id: 422 naming each item (in the caller's
    language), nothing provisioned; other roles cannot provision at all."""
    before = len(call(stack, "GET", "/api/v1/devices", "operator", params={"limit": 1000}).json()["items"])
    body = {"devices": [{"kind": "camera", "id": "ROAD-1"}, {"kind": "truck_terminal", "id": "渝Z00000"},
                        {"kind": "disposal_gate", "id": "S-999"},
                        {"kind": "truck_terminal", "id": stack.demo["trucks"][2], "subject": "GPS-0000"}]}
    en = call(stack, "POST", "/api/v1/devices", "operator", body)
    assert en.status_code == 422 and en.json()["reason"] == "invalid_request"
    assert en.json()["error"]["fields"]["devices"] == {
        "1": {"id": ["Unknown truck plate."]}, "2": {"id": ["Unknown disposal site."]},
        "3": {"subject": ["The truck's registered terminal is GPS-9902."]}}
    zh = call(stack, "POST", "/api/v1/devices", "operator", body, lang="zh-CN")
    assert zh.json()["error"]["fields"]["devices"]["1"] == {"id": ["车牌未在账本登记"]}
    after = len(call(stack, "GET", "/api/v1/devices", "operator", params={"limit": 1000}).json()["items"])
    assert after == before
    assert call(stack, "POST", "/api/v1/devices", "enforcement", body).status_code == 403


def test_validation_errors_in_both_languages(stack: Stack) -> None:  # noqa: F811
    """A ticket request missing its fields: the field messages are Chinese by default, English on request."""
    zh = requests.post(stack.api + "/api/v1/tickets", json={"volume_m3": "0"},
                       headers={"Authorization": stack.headers("contractor")["Authorization"]}, timeout=30)
    assert zh.status_code == 422, zh.text
    fields = zh.json()["error"]["fields"]
    assert fields["permit_id"] == ["缺少必填字段"] and fields["volume_m3"] == ["必须大于 0"]
    assert zh.json()["error"]["message"] == reasons.message("invalid_request", "zh")
    en = call(stack, "POST", "/api/v1/tickets", "contractor", {"volume_m3": "0"})
    assert en.json()["error"]["fields"]["permit_id"] == ["Missing data for required field."]
    assert en.json()["error"]["fields"]["volume_m3"] == ["must be greater than 0"]


def test_sync_results_in_both_languages(stack: Stack) -> None:  # noqa: F811
    """A refused offline scan's message follows Accept-Language, the stored result of a re-sent scan too."""
    scan = {"scan_id": "lang-1", "kind": "exit", "qr": "MT1:NOT-A-TICKET", "plate": stack.demo["trucks"][0],
            "scanned_at": "2026-11-23T22:10:05+08:00", "offline_verdict": {"accepted": False, "reason": "bad_qr"}}
    body = {"gate_id": "P-001-G1", "scans": [scan]}
    zh = call(stack, "POST", "/api/v1/gate/sync", "exit_gate", body, lang="zh")
    assert zh.status_code == 200, zh.text
    result = zh.json()["results"][0]
    assert result["accepted"] is False and result["message"] == reasons.message(result["reason"], "zh")
    en = call(stack, "POST", "/api/v1/gate/sync", "exit_gate", body, lang="en").json()["results"][0]
    assert en["duplicate"] is True and en["message"] == reasons.message(result["reason"], "en")
    assert en["message"] != result["message"]


def test_login_answer_in_both_languages_with_china_time(stack: Stack) -> None:  # noqa: F811
    """The WeChat login's expiry is ISO 8601 in +08:00 (never UTC 'Z'), and its refusals follow the language."""
    env = {**os.environ, "TICKET_API_DATABASE_URL": f"sqlite:///{stack.var / 'ticket_api.sqlite'}"}
    bound = subprocess.run([sys.executable, "-m", "ticket_api", "users", "bind-wechat", "--openid", "lang-en",
                            "--role", "contractor", "--tenant", "ORG-001"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=60)
    assert bound.returncode == 0, bound.stderr
    url = stack.api + "/api/v1/auth/wechat"
    for code, lang in ((stack.demo["contractor_wechat_code"], "zh"), ("test-lang-en", "en")):
        r = requests.post(url, json={"code": code}, headers={"Accept-Language": lang}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["expires_at"].endswith("+08:00") and "Z" not in r.json()["expires_at"]
    for lang in ("zh", "en"):
        r = requests.post(url, json={"code": "nonsense"}, headers={"Accept-Language": lang}, timeout=30)
        assert r.json()["error"]["message"] == reasons.message("wechat_code_invalid", lang)
        bad = requests.post(url, json={}, headers={"Accept-Language": lang}, timeout=30)
        assert bad.json()["error"]["fields"]["code"] == [
            {"zh": "缺少必填字段", "en": "Missing data for required field."}[lang]]
