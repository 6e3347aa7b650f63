"""The API under a real gunicorn: WeChat login, tokens, roles, OpenAPI, docs, health, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from ticket_api.db import make_engine
from ticket_api.tokens import TokenStore

try:
    from .api_fixtures import SECRET, ApiServer, api_server, wechat_server
except ImportError:  # run without the package (rootdir-relative import)
    from api_fixtures import SECRET, ApiServer, api_server, wechat_server  # type: ignore[no-redef]  # noqa: F401

pytestmark = pytest.mark.slow

CONTRACT_PATHS = {
    ("post", "/api/v1/permits"),
    ("post", "/api/v1/permits/{permit_id}/decisions"),
    ("get", "/api/v1/permits/{permit_id}"),
    ("post", "/api/v1/tickets"),
    ("get", "/api/v1/tickets/{ticket_id}"),
    ("get", "/api/v1/tickets/{ticket_id}/qr.png"),
    ("post", "/api/v1/gate/exit"),
    ("post", "/api/v1/gate/disposal"),
    ("post", "/api/v1/gate/sync"),
    ("post", "/api/v1/trips/{ticket_id}/positions"),
    ("get", "/api/v1/tickets/{ticket_id}/history"),
    ("get", "/api/v1/audit"),
    ("post", "/api/v1/auth/wechat"),
    ("get", "/api/v1/keys"),
    ("get", "/api/health"),
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(resp: requests.Response, status: int, reason: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["reason"] == reason
    assert set(body["error"]) == {"code", "message", "fields"} and body["error"]["code"] == reason
    assert "Traceback" not in resp.text


def test_health_and_request_id(api_server: ApiServer) -> None:
    """GET /api/health is 200 ok and echoes a sane X-Request-Id (or makes one)."""
    resp = requests.get(api_server.url + "/api/health", headers={"X-Request-Id": "req-123"}, timeout=5)
    assert resp.status_code == 200 and resp.json()["status"] == "ok"
    assert resp.headers["X-Request-Id"] == "req-123"
    other = requests.get(
        api_server.url + "/api/health", headers={"X-Request-Id": "bad id <script>"}, timeout=5
    )
    assert other.headers["X-Request-Id"] != "bad id <script>" and len(other.headers["X-Request-Id"]) == 32


def test_openapi_document_is_valid_openapi3(api_server: ApiServer) -> None:
    """/api/openapi.json is OpenAPI 3 with every contract path, bearer security and resolvable $refs."""
    spec = requests.get(api_server.url + "/api/openapi.json", timeout=5).json()
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] and spec["info"]["version"]
    ops = {(m, p) for p, item in spec["paths"].items() for m in item if m in {"get", "post", "put", "delete"}}
    assert ops >= CONTRACT_PATHS
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["paths"]["/api/v1/audit"]["get"]["security"] == [{"bearerAuth": []}]
    schemas = spec["components"]["schemas"]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                kind, name = ref.split("/")[-2:]
                assert name in spec["components"][kind], ref
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    for op in (spec["paths"][p][m] for m, p in CONTRACT_PATHS):
        assert op["responses"], op
    assert "Error" in schemas


def test_docs_page_loads_without_internet(api_server: ApiServer) -> None:
    """/api/docs is a self-contained HTML page (no external scripts) listing the endpoints."""
    resp = requests.get(api_server.url + "/api/docs", timeout=5)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
    assert "/api/v1/gate/exit" in resp.text and "<script" not in resp.text and "cdn" not in resp.text.lower()


def test_wechat_login_gives_a_working_token(api_server: ApiServer) -> None:
    """A bound openid logs in through the fake WeChat server and the token works for its role."""
    bound = api_server.cli(
        "users", "bind-wechat", "--openid", "o-contractor", "--role", "contractor", "--tenant", "ORG-001"
    )
    assert bound.returncode == 0, bound.stderr
    resp = requests.post(
        api_server.url + "/api/v1/auth/wechat", json={"code": "test-o-contractor"}, timeout=10
    )
    assert resp.status_code == 200, resp.text
    login = resp.json()
    assert (login["role"], login["tenant"]) == ("contractor", "ORG-001")
    assert datetime.fromisoformat(login["expires_at"]) > datetime.now(UTC)
    me = requests.get(api_server.url + "/api/v1/auth/me", headers=bearer(login["token"]), timeout=5).json()
    assert (me["role"], me["tenant"], me["subject"]) == ("contractor", "ORG-001", "wx:o-contractor")
    # a contractor cannot audit; the regulator can reach the (not yet wired) audit
    assert_error(
        requests.get(api_server.url + "/api/v1/audit", headers=bearer(login["token"]), timeout=5),
        403,
        "forbidden",
    )
    regulator = api_server.issue("regulator", "CQ")
    assert_error(
        requests.get(api_server.url + "/api/v1/audit", headers=bearer(regulator), timeout=5),
        503,
        "ledger_unavailable",
    )


def test_wechat_login_refusals(api_server: ApiServer) -> None:
    """Unknown openid is 403 not_registered; a bad or reused code is 401 wechat_code_invalid."""
    url = api_server.url + "/api/v1/auth/wechat"
    assert_error(requests.post(url, json={"code": "test-o-stranger"}, timeout=10), 403, "not_registered")
    assert_error(requests.post(url, json={"code": "nonsense"}, timeout=10), 401, "wechat_code_invalid")
    assert_error(requests.post(url, json={"code": "test-o-stranger"}, timeout=10), 401, "wechat_code_invalid")
    assert_error(requests.post(url, json={}, timeout=10), 422, "invalid_request")
    resp = requests.post(url, json={"code": "nonsense"}, headers={"Accept-Language": "en"}, timeout=10)
    assert resp.json()["error"]["message"] == "The WeChat login code is invalid or expired"


def test_missing_wrong_expired_and_revoked_tokens(api_server: ApiServer) -> None:
    """No token, a wrong one, an expired one and a revoked one are 401 with their reasons."""
    me = api_server.url + "/api/v1/auth/me"
    assert_error(requests.get(me, timeout=5), 401, "unauthenticated")
    assert_error(requests.get(me, headers=bearer("mtk_wrong"), timeout=5), 401, "token_invalid")
    assert_error(requests.get(me, headers={"Authorization": "Basic abc"}, timeout=5), 401, "token_invalid")
    store = TokenStore(make_engine(api_server.database_url))
    expired = store.issue(
        role="exit_gate", tenant="P-001", subject="old", expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert_error(requests.get(me, headers=bearer(expired.token), timeout=5), 401, "token_expired")
    gate = api_server.issue("exit_gate", "P-001", "gate-9")
    assert requests.get(me, headers=bearer(gate), timeout=5).status_code == 200
    listing = api_server.cli("tokens", "list", "--json")
    assert gate not in listing.stdout
    import json

    token_id = next(t["id"] for t in json.loads(listing.stdout) if t["subject"] == "gate-9")
    assert api_server.cli("tokens", "revoke", token_id).returncode == 0
    assert_error(requests.get(me, headers=bearer(gate), timeout=5), 401, "token_revoked")
    bad = api_server.cli("tokens", "revoke", "no-such-id")
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0


def test_logout_revokes_the_token(api_server: ApiServer) -> None:
    """POST /auth/logout revokes the calling token."""
    token = api_server.issue("operator", "centre-1")
    assert (
        requests.post(api_server.url + "/api/v1/auth/logout", headers=bearer(token), timeout=5).status_code
        == 204
    )
    assert_error(
        requests.get(api_server.url + "/api/v1/auth/me", headers=bearer(token), timeout=5),
        401,
        "token_revoked",
    )


def test_errors_are_json_without_traceback(api_server: ApiServer) -> None:
    """Broken JSON, wrong methods, unknown paths and oversize bodies answer JSON errors, no traceback."""
    u = api_server.url
    contractor = api_server.issue("contractor", "ORG-001")
    cases = [
        requests.post(
            u + "/api/v1/auth/wechat",
            data=b"{not json",
            headers={"Content-Type": "application/json"},
            timeout=5,
        ),
        requests.delete(u + "/api/v1/keys", timeout=5),
        requests.get(u + "/api/v1/nothing-here", timeout=5),
        requests.post(
            u + "/api/v1/tickets",
            data=b"x" * (2 << 20),
            headers={**bearer(contractor), "Content-Type": "application/json"},
            timeout=10,
        ),
    ]
    for resp in cases:
        assert 400 <= resp.status_code < 500, resp.status_code
        body = resp.json()
        assert body["reason"] and "Traceback" not in resp.text and 'File "' not in resp.text
    gate = api_server.issue("exit_gate", "P-001")
    resp = requests.post(
        u + "/api/v1/gate/exit",
        json={"qr": "MT1:XX", "plate": "渝A12345", "covered": True},
        headers=bearer(gate),
        timeout=5,
    )
    assert resp.status_code == 400 and resp.json() == {
        "accepted": False,
        "reason": "malformed",
        "message": resp.json()["message"],
    }


def test_logs_are_json_with_request_ids_and_no_secrets(api_server: ApiServer) -> None:
    """The server log is JSON lines with request ids; no token or app secret ever appears."""
    token = api_server.issue("regulator", "CQ", "log-check")
    requests.get(
        api_server.url + "/api/v1/auth/me", headers={**bearer(token), "X-Request-Id": "log-req-1"}, timeout=5
    )
    import json
    import time

    time.sleep(0.3)
    text = api_server.log_path.read_text(encoding="utf-8")
    assert token not in text and SECRET not in text and "mtk_" not in text
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(r.get("request_id") == "log-req-1" and r.get("path") == "/api/v1/auth/me" for r in records)
