"""The stub client sends a call once more when its kept-alive connection was reset before any answer, only when
a repeat cannot do the act twice (a read, or a write under an Idempotency-Key)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from miniprogram_stub.client import ApiClient


class ResetOnce:
    """A session whose first request fails as a connection the server closed while it was reused."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.error = error or requests.ConnectionError("('Connection aborted.', ConnectionResetError(104))")

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append((method, url, kwargs))
        if len(self.calls) == 1:
            raise self.error
        r = requests.Response()
        r.status_code = 200
        r._content = b'{"ok": true}'
        return r


def test_a_write_under_an_idempotency_key_is_sent_again_with_the_same_key() -> None:
    """POST with an Idempotency-Key: reset once, sent again with the same key, and the answer is returned."""
    s = ResetOnce()
    client = ApiClient("http://api.test", "t0k", session=s)  # type: ignore[arg-type]
    r = client.request("POST", "/api/v1/gate/exit", json={"qr": "x"}, idempotency_key="k1")
    assert r.status_code == 200 and len(s.calls) == 2
    assert [c[2]["headers"]["Idempotency-Key"] for c in s.calls] == ["k1", "k1"]


def test_a_read_is_sent_again() -> None:
    """GET: reset once, sent again."""
    s = ResetOnce()
    assert ApiClient("http://api.test", session=s).request("GET", "/api/health").status_code == 200  # type: ignore[arg-type]
    assert len(s.calls) == 2


def test_a_write_without_a_key_is_not_sent_twice() -> None:
    """POST without an Idempotency-Key: the error is the caller's, the request went once."""
    s = ResetOnce()
    with pytest.raises(requests.ConnectionError):
        ApiClient("http://api.test", session=s).request("POST", "/api/v1/tickets", json={})  # type: ignore[arg-type]
    assert len(s.calls) == 1


def test_a_connect_timeout_is_not_waited_for_twice() -> None:
    """A connection that timed out is not tried again (the caller's timeout holds)."""
    s = ResetOnce(requests.ConnectTimeout("timed out"))
    with pytest.raises(requests.ConnectTimeout):
        ApiClient("http://api.test", session=s).request("GET", "/api/health")  # type: ignore[arg-type]
    assert len(s.calls) == 1
