"""Sending WeChat subscribe messages from the outbox, at least once, with retries and backoff.

The real API: an access token from ``GET /cgi-bin/token?grant_type=client_credential&appid&secret``
(``{"access_token", "expires_in"}``), then ``POST /cgi-bin/message/subscribe/send?access_token=…`` with
``{"touser", "template_id", "page", "data": {"thing1": {"value": …}, …}, "miniprogram_state", "lang"}``,
answered ``{"errcode": 0, "errmsg": "ok"}`` or an error code.  The token URL holds the app secret and
the send URL the token: neither URL nor a requests exception text (which quotes it) is ever logged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from ticket_api.notify import messages
from ticket_api.notify.outbox import Outbox, Pending

log = logging.getLogger("ticket_api.notify")

#: errcodes after which sending the same message again cannot help: invalid openid (40003), invalid
#: template (40037), invalid page (41030), user refused / did not subscribe (43101), bad data (47003)
PERMANENT = frozenset({40003, 40037, 41030, 43101, 47003})
#: the access token is no good (expired, revoked): fetch another and try again
TOKEN_ERRORS = frozenset({40001, 40014, 42001})

DEFAULT_TEMPLATES: dict[str, str] = {
    "permit_approved": "tmpl-permit-decided",
    "permit_rejected": "tmpl-permit-decided",
    "gate_held": "tmpl-gate-held",
    "violation_raised": "tmpl-violation",
    "penalty_recorded": "tmpl-penalty",
    "site_alarm": "tmpl-site-alarm",
}


class SendError(Exception):
    """One failed send; ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class WechatSender:
    """Sends one subscribe message; keeps the access token until shortly before it expires."""

    def __init__(self, *, base_url: str, appid: str, secret: str, templates: Mapping[str, str] | None = None,
                 state: str = "formal", language: str = "zh", timeout: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.base = base_url.rstrip("/")
        self.appid, self.secret = appid, secret
        self.templates = {**DEFAULT_TEMPLATES, **(templates or {})}
        self.state, self.language, self.timeout = state, language, timeout
        self.http = requests.Session()
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._monotonic = monotonic

    def _get_json(self, resp: requests.Response) -> dict[str, Any]:
        try:
            data = json.loads(resp.text)
        except ValueError:
            raise SendError(f"WeChat answered non-JSON (HTTP {resp.status_code})") from None
        if not isinstance(data, dict):
            raise SendError("WeChat answered a non-object")
        return data

    def access_token(self, *, fresh: bool = False) -> str:
        with self._lock:
            if self._token and not fresh and self._monotonic() < self._token[1]:
                return self._token[0]
            if not self.appid or not self.secret:
                raise SendError("WeChat appid/secret are not configured")
            try:
                resp = self.http.get(self.base + "/cgi-bin/token", timeout=self.timeout, params={
                    "grant_type": "client_credential", "appid": self.appid, "secret": self.secret})
            except requests.RequestException as exc:
                raise SendError(f"WeChat token endpoint unreachable ({type(exc).__name__})") from None
            data = self._get_json(resp)
            token = data.get("access_token")
            if data.get("errcode") or not isinstance(token, str):
                raise SendError(f"WeChat token errcode {data.get('errcode')}")
            ttl = float(data.get("expires_in") or 7200)
            self._token = (token, self._monotonic() + max(60.0, ttl - 300))
            return token

    def body(self, p: Pending) -> dict[str, Any]:
        """The subscribe message for one outbox row."""
        return {
            "touser": p.openid,
            "template_id": self.templates.get(p.event.kind, p.event.kind),
            "page": messages.wechat_page(p.event),
            "data": messages.wechat_data(p.event, self.language),
            "miniprogram_state": self.state,
            "lang": "en_US" if self.language == "en" else "zh_CN",
        }

    def send(self, p: Pending) -> None:
        """Send once (a stale token is renewed once); :class:`SendError` when WeChat did not take it."""
        body = json.dumps(self.body(p), ensure_ascii=False).encode("utf-8")
        for attempt in (0, 1):
            token = self.access_token(fresh=attempt == 1)
            try:
                resp = self.http.post(self.base + "/cgi-bin/message/subscribe/send", params={"access_token": token},
                                      data=body, headers={"Content-Type": "application/json; charset=utf-8"},
                                      timeout=self.timeout)
            except requests.RequestException as exc:
                raise SendError(f"WeChat send unreachable ({type(exc).__name__})") from None
            data = self._get_json(resp)
            code = int(data.get("errcode") or 0)
            if code == 0:
                return
            if code in TOKEN_ERRORS and attempt == 0:
                continue
            raise SendError(f"WeChat errcode {code}: {str(data.get('errmsg', ''))[:200]}", permanent=code in PERMANENT)


def deliver_due(outbox: Outbox, sender: WechatSender, *, limit: int = 50) -> int:
    """Send the due WeChat rows once each; mark them sent or failed (with backoff). The rows sent."""
    done = 0
    for p in outbox.due(limit):
        try:
            sender.send(p)
        except SendError as exc:
            log.warning("subscribe message not sent", extra={"notification": p.id, "attempts": p.attempts + 1,
                                                             "error": str(exc), "permanent": exc.permanent})
            outbox.failed(p.id, str(exc), permanent=exc.permanent)
            continue
        outbox.sent(p.id)
        done += 1
    return done
