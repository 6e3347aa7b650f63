"""The request boundary (``ticket_api.jsonbody``, the schemas' time fields, WeChat's code): hostile but
well-sized bodies answer 400 with a reason code in the API's error body, never a 500 with a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from ticket_api.app import create_app
from ticket_api.auth import ctx
from ticket_api.errors import ApiError
from ticket_api.jsonbody import MAX_DEPTH, depth
from ticket_api.services import Services
from ticket_api.testing import app_config
from ticket_api.wechat import code2session

DEEP = "[" * 1000 + "]" * 1000
JSON = {"Content-Type": "application/json"}


class Untouched:
    """Every service: a request that reaches one fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the service was called ({name}) for a request the boundary refuses")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    s: Any = Untouched()
    yield create_app(app_config(f"sqlite:///{tmp_path}/api.sqlite",
                                SERVICES=Services(permits=s, tickets=s, gates=s, trips=s, audit=s, staff=s,
                                                  lists=s)))


def bearer(app: Flask, role: str, tenant: str) -> dict[str, str]:
    with app.app_context():
        return {"Authorization": f"Bearer {ctx().tokens.issue(role=role, tenant=tenant, subject='t').token}"}


JSON_ENDPOINTS = [
    ("/api/v1/auth/wechat", None),
    ("/api/v1/permits", ("contractor", "ORG-001")),
    ("/api/v1/tickets", ("contractor", "ORG-001")),
    ("/api/v1/tickets/ET1/void", ("contractor", "ORG-001")),
    ("/api/v1/gate/exit", ("exit_gate", "P-001")),
    ("/api/v1/gate/sync", ("exit_gate", "P-001")),
    ("/api/v1/trips/ET1/positions", ("truck_terminal", "渝A12345")),
    ("/api/v1/registry/truck", ("operator", "CQ")),
    ("/api/v1/violations", ("enforcement", "CQ")),
    ("/api/v1/penalties", ("enforcement", "CQ")),
]


@pytest.mark.parametrize(("path", "who"), JSON_ENDPOINTS)
def test_json_nested_1000_deep_is_400_json_too_deep(app: Flask, path: str, who: tuple[str, str] | None,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A body nested 1,000 deep (RecursionError in the decoder: 500 before) answers 400 json_too_deep on every
    JSON endpoint, the unauthenticated WeChat login included, in the endpoint's error shape; nothing is logged
    as an unhandled exception."""
    headers = {**JSON, **(bearer(app, *who) if who else {})}
    with caplog.at_level(logging.ERROR):
        resp = app.test_client().post(path, data=DEEP, headers=headers)
    assert resp.status_code == 400, resp.data
    assert resp.json is not None and resp.json["reason"] == "json_too_deep"
    assert "Traceback" not in caplog.text and "unhandled" not in caplog.text


def test_depth_errors_in_chinese_by_default_and_english_on_request(app: Flask) -> None:
    """The refusal has the API's error body, Chinese by default and English on Accept-Language: en; the gate
    endpoints answer their refusal shape."""
    client = app.test_client()
    zh = client.post("/api/v1/auth/wechat", data=DEEP, headers=JSON)
    assert zh.json == {"error": {"code": "json_too_deep", "message": "JSON 嵌套层数过深",
                                 "fields": zh.json["error"]["fields"]}, "reason": "json_too_deep"}
    en = client.post("/api/v1/auth/wechat", data=DEEP, headers={**JSON, "Accept-Language": "en"})
    assert en.json["error"]["message"] == "The JSON body nests too deep"
    gate = client.post("/api/v1/gate/exit", data=DEEP, headers={**JSON, **bearer(app, "exit_gate", "P-001")})
    assert gate.json == {"accepted": False, "reason": "json_too_deep", "message": "JSON 嵌套层数过深",
                         "fields": gate.json["fields"]}


def test_depth_counts_brackets_outside_strings_only() -> None:
    """Brackets inside strings (escaped quotes included) do not count; a body within the limit passes."""
    assert depth(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"[[[[[["}') == 1
    assert depth(("[" * MAX_DEPTH + "]" * MAX_DEPTH).encode()) == MAX_DEPTH
    assert depth(b"[]" * 5000) == 1


def test_lone_surrogate_in_a_wechat_code_is_400_bad_text(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    """``{"code": "\\ud800"}`` (valid JSON, no text; wechat.py read ``resp`` before assigning it: 500) answers
    400 bad_text before anything calls WeChat, in English on request."""
    with caplog.at_level(logging.ERROR):
        resp = app.test_client().post("/api/v1/auth/wechat", data='{"code": "\\ud800"}',
                                      headers={**JSON, "Accept-Language": "en"})
    assert resp.status_code == 400 and resp.json["reason"] == "bad_text"
    assert resp.json["error"]["message"] == "A text holds an invalid character (a lone surrogate)"
    assert "Traceback" not in caplog.text
    ok = app.test_client().post("/api/v1/auth/wechat", data='{"code": "\\ud83d\\ude00", "x": 1}', headers=JSON)
    assert ok.json["reason"] == "invalid_request"  # a surrogate pair is text: the schema judges it


def test_code2session_with_an_unencodable_code_is_wechat_code_invalid() -> None:
    """code2session itself, given a code with a lone surrogate, raises wechat_code_invalid (it raised
    UnboundLocalError: ``resp`` was read in the ValueError branch before it was assigned)."""
    with pytest.raises(ApiError) as info:
        code2session("http://127.0.0.1:9", "wx-appid", "wx-secret", "\ud800", timeout=1)
    assert info.value.reason == "wechat_code_invalid"


PERMIT = {"project_id": "P-001", "volume_m3": "300", "disposal_site_ids": ["S-003"], "truck_plates": ["渝A12345"],
          "valid_from": "2026-11-24T00:00:00+08:00", "valid_to": "2026-12-24T00:00:00+08:00"}
EDGES = ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59+08:00", "9999-12-31T23:59:59-12:00",
         "1999-12-31T23:59:59+08:00", "2100-01-01T00:00:00+08:00"]


@pytest.mark.parametrize("when", EDGES)
def test_times_near_year_1_or_9999_are_400_time_out_of_range(app: Flask, when: str,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """A permit's valid_from/valid_to, a gate's time, an offline scan's scanned_at and a GPS point's at
    outside the years 2000-2099 (OverflowError downstream: 500) answer 400 time_out_of_range naming the field;
    no service is called."""
    client = app.test_client()
    contractor = bearer(app, "contractor", "ORG-001")
    gate = bearer(app, "exit_gate", "P-001")
    cases = [
        ("/api/v1/permits", contractor, {**PERMIT, "valid_from": when}, "valid_from"),
        ("/api/v1/permits", contractor, {**PERMIT, "valid_to": when}, "valid_to"),
        ("/api/v1/gate/exit", gate, {"qr": "MT1:X", "plate": "渝A12345", "covered": True, "time": when}, "time"),
        ("/api/v1/gate/sync", gate, {"scans": [{"scan_id": "s1", "kind": "exit", "qr": "MT1:X", "plate": "渝A12345",
                                                "scanned_at": when, "offline_verdict": {"accepted": True}}]},
         "scanned_at"),
        ("/api/v1/trips/ET1/positions", bearer(app, "truck_terminal", "渝A12345"),
         [{"at": when, "lat": 29.7, "lon": 106.5, "speed_kmh": 30}], "at"),
    ]
    with caplog.at_level(logging.ERROR):
        for path, headers, body, field in cases:
            resp = client.post(path, json=body, headers=headers)
            assert resp.status_code == 400, (path, field, resp.data)
            assert resp.json["reason"] == "time_out_of_range", (path, field)
            fields = resp.json["error"]["fields"] if "error" in resp.json else resp.json["fields"]
            assert field in fields, (path, fields)
    assert "Traceback" not in caplog.text
    query = client.get("/api/v1/violations", query_string={"from": when}, headers=bearer(app, "operator", "CQ"))
    assert (query.status_code, query.json["reason"]) == (400, "time_out_of_range")


@pytest.mark.parametrize(("path", "who"), JSON_ENDPOINTS)
def test_an_integer_of_thousands_of_digits_is_no_500(app: Flask, path: str, who: tuple[str, str] | None,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A JSON integer of 5,000 digits (Python refuses to convert more than 4,300 with a bare ValueError: 500
    with a traceback before) is refused as a body that is not JSON, on every JSON endpoint, logging nothing
    as unhandled."""
    headers = {**JSON, **(bearer(app, *who) if who else {})}
    with caplog.at_level(logging.ERROR):
        resp = app.test_client().post(path, data='{"code": ' + "9" * 5000 + "}", headers=headers)
    assert 400 <= resp.status_code < 500, resp.data
    assert "Traceback" not in caplog.text and "unhandled" not in caplog.text
