"""Personal data never reaches the chain, through HTTP against the real stack (4 ledger nodes, gunicorn):
the API refuses it at once with the rules' own reason code and names the field, never the value."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from ledger.eticket import pii

from .serve_fixtures import Stack, stack  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow]
ID_BASE = "11010519491231002"
ID_NUMBER = ID_BASE + pii.id_check_digit(ID_BASE)


def call(s: Stack, method: str, path: str, role: str, body: Any = None, lang: str = "en") -> requests.Response:
    return requests.request(method, s.api + path, json=body, headers=s.headers(role, lang=lang), timeout=60)


def test_a_violation_description_holding_an_id_number_is_refused(stack: Stack) -> None:  # noqa: F811
    """A violation report whose description holds a name, an ID number and a mobile number is answered 422
    personal_data naming the description (in Chinese and English), the value is echoed nowhere, and no
    violation is recorded; the same report without them is accepted."""
    body = {"type": "suspected_dumping", "source": "patrol", "plate": "渝A12345",
            "description": f"张三（身份证 {ID_NUMBER}，电话 138-0013-8000）在路边倾倒渣土"}
    for lang in ("en", "zh"):
        r = call(stack, "POST", "/api/v1/violations", "operator", body, lang=lang)
        assert r.status_code == 422, r.text
        assert r.json()["reason"] == "personal_data"
        assert r.json()["error"]["fields"] == {"description": "personal_data"}
        assert ID_NUMBER not in r.text and "0013" not in r.text
    assert "personal data" in call(stack, "POST", "/api/v1/violations", "operator", body).json()["error"]["message"]
    listed = call(stack, "GET", "/api/v1/violations?type=suspected_dumping", "operator").json()["items"]
    assert listed == []
    body["description"] = "一辆渣土车在路边倾倒渣土"
    r = call(stack, "POST", "/api/v1/violations", "operator", body)
    assert r.status_code in (200, 201), r.text


def test_a_driver_id_that_is_a_mobile_number_is_refused(stack: Stack) -> None:  # noqa: F811
    """Registering a driver whose driver_id is a mobile number is answered 422 personal_data naming driver_id;
    a registry id is accepted."""
    body = {"driver_id": "13800138000", "company_id": "C-01", "person_hash": "sha256:" + "ab" * 32}
    r = call(stack, "POST", "/api/v1/registry/driver", "operator", body)
    assert r.status_code == 422, r.text
    assert (r.json()["reason"], r.json()["error"]["fields"]) == ("personal_data", {"driver_id": "personal_data"})
    assert "13800138000" not in r.text
    body["driver_id"] = "DRV-PII-1"
    r = call(stack, "POST", "/api/v1/registry/driver", "operator", body)
    assert r.status_code in (200, 201), r.text
