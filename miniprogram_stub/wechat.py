"""A fake WeChat server: ``code2session``, access tokens and subscribe messages.

``GET /sns/jscode2session?appid&secret&js_code&grant_type=authorization_code``

* a code in the configured mapping, or of the form ``test-<openid>``, answers
  ``{"openid", "session_key"}``; each code works once, like WeChat's
  (a reused code answers errcode 40163) unless ``reusable_codes`` is set;
* an unknown code answers ``{"errcode": 40029, "errmsg": "invalid code"}``;
* a wrong appid or secret answers ``{"errcode": 40125, "errmsg": "invalid appsecret"}``.

Subscribe messages (``subscribeMessage.send``), validated like the real API:

* ``GET /cgi-bin/token?grant_type=client_credential&appid&secret`` and ``POST /cgi-bin/stable_token``
  (``{"grant_type", "appid", "secret"}``) answer ``{"access_token", "expires_in": 7200}`` (40125 on a wrong
  secret, 40002 on a wrong grant type);
* ``POST /cgi-bin/message/subscribe/send?access_token=…`` answers ``{"errcode": 0, "errmsg": "ok"}``, or
  40001 (invalid access token), 40003 (touser not an openid this app has seen log in), 40037 (no
  template_id), 41030 (bad page), 47003 (``data`` not ``{key: {"value": text}}`` or a value too long for
  its keyword type: thing 20, character_string 32, time, phrase 5, number 32), 47001 (not JSON);
* test hooks: ``GET /test/messages`` lists every message accepted (``{"messages": [...]}`` with
  ``received_at``); ``POST /test/fail`` ``{"count": N, "errcode": -1}`` makes the next N sends fail with
  that errcode (-1: "system error", retryable).

Run it: ``python -m miniprogram_stub wechat --port 8081 --appid wx-test --secret s3cret``.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

DEFAULT_APPID = "wx-test-appid"
DEFAULT_SECRET = "wx-test-secret"
TEST_PREFIX = "test-"


def create_wechat_app(
    *,
    appid: str = DEFAULT_APPID,
    secret: str = DEFAULT_SECRET,
    codes: Mapping[str, str] | None = None,
    reusable_codes: bool = False,
) -> Flask:
    """The fake server as a Flask app (``codes`` maps code -> openid)."""
    app = Flask("miniprogram_stub.wechat")
    known = dict(codes or {})
    used: set[str] = set()
    lock = threading.Lock()
    seen_openids: set[str] = set()
    tokens: set[str] = set()
    messages: list[dict[str, Any]] = []
    failures: dict[str, int] = {"count": 0, "errcode": -1}

    @app.get("/sns/jscode2session")
    def jscode2session() -> ResponseReturnValue:
        args = request.args
        if args.get("appid") != appid or args.get("secret") != secret:
            return jsonify({"errcode": 40125, "errmsg": "invalid appsecret"})
        if args.get("grant_type") != "authorization_code":
            return jsonify({"errcode": 40002, "errmsg": "invalid grant_type"})
        code = args.get("js_code", "")
        openid = known.get(code)
        if openid is None and code.startswith(TEST_PREFIX) and len(code) > len(TEST_PREFIX):
            openid = code[len(TEST_PREFIX) :]
        if openid is None:
            return jsonify({"errcode": 40029, "errmsg": "invalid code"})
        with lock:
            if code in used and not reusable_codes:
                return jsonify({"errcode": 40163, "errmsg": "code been used"})
            used.add(code)
        session_key = hashlib.sha256(f"{secret}:{code}".encode()).hexdigest()[:24]
        with lock:
            seen_openids.add(openid)
        return jsonify({"openid": openid, "session_key": session_key})

    def _token(grant_type: Any, app_id: Any, app_secret: Any) -> ResponseReturnValue:
        if grant_type != "client_credential":
            return jsonify({"errcode": 40002, "errmsg": "invalid grant_type"})
        if app_id != appid or app_secret != secret:
            return jsonify({"errcode": 40125, "errmsg": "invalid appsecret"})
        token = "fake-at-" + secrets.token_urlsafe(24)
        with lock:
            tokens.add(token)
        return jsonify({"access_token": token, "expires_in": 7200})

    @app.get("/cgi-bin/token")
    def access_token() -> ResponseReturnValue:
        a = request.args
        return _token(a.get("grant_type"), a.get("appid"), a.get("secret"))

    @app.post("/cgi-bin/stable_token")
    def stable_token() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return jsonify({"errcode": 47001, "errmsg": "data format error"})
        return _token(body.get("grant_type"), body.get("appid"), body.get("secret"))

    @app.post("/cgi-bin/message/subscribe/send")
    def subscribe_send() -> ResponseReturnValue:
        with lock:
            if request.args.get("access_token") not in tokens:
                return jsonify({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"})
        try:
            body = json.loads(request.get_data(as_text=True))
        except ValueError:
            return jsonify({"errcode": 47001, "errmsg": "data format error"})
        problem = check_subscribe_message(body)
        if problem is not None:
            return jsonify({"errcode": problem[0], "errmsg": problem[1]})
        with lock:
            if body["touser"] not in seen_openids and not str(body["touser"]).startswith(TEST_PREFIX):
                return jsonify({"errcode": 40003, "errmsg": "invalid openid"})
            if failures["count"] > 0:
                failures["count"] -= 1
                return jsonify({"errcode": failures["errcode"], "errmsg": "system error"})
            messages.append({**body, "received_at": time.time()})
        return jsonify({"errcode": 0, "errmsg": "ok", "msgid": len(messages)})

    @app.get("/test/messages")
    def test_messages() -> ResponseReturnValue:
        with lock:
            return jsonify({"messages": list(messages)})

    @app.post("/test/fail")
    def test_fail() -> ResponseReturnValue:
        body = request.get_json(silent=True) or {}
        with lock:
            failures["count"] = int(body.get("count", 0))
            failures["errcode"] = int(body.get("errcode", -1))
        return jsonify({"ok": True})

    @app.post("/test/openids")
    def test_openids() -> ResponseReturnValue:
        """Mark openids as users of this app (as if they had logged in)."""
        body = request.get_json(silent=True) or {}
        with lock:
            seen_openids.update(str(o) for o in body.get("openids", []))
        return jsonify({"ok": True})

    @app.get("/health")
    def health() -> ResponseReturnValue:
        return jsonify({"status": "ok"})

    return app


#: the longest value of each keyword type of a subscribe message's data (characters)
KEYWORD_LIMITS = {"thing": 20, "character_string": 32, "phrase": 5, "number": 32, "letter": 32, "symbol": 5,
                  "amount": 32, "name": 10, "phone_number": 17, "car_number": 8, "time": 40, "date": 40}
_KEY = re.compile(r"^([a-z_]+?)(\d+)$")
_TIME = re.compile(r"^(\d{4}年\d{1,2}月\d{1,2}日 )?\d{1,2}:\d{2}$|^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2})?)?$")
_ASCII = re.compile(r"^[\x21-\x7e]+$")


def check_subscribe_message(body: Any) -> tuple[int, str] | None:
    """``(errcode, errmsg)`` the real API would answer for a malformed subscribe message, else None."""
    if not isinstance(body, dict):
        return 47001, "data format error"
    if not isinstance(body.get("touser"), str) or not body["touser"]:
        return 40003, "invalid openid"
    if not isinstance(body.get("template_id"), str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", body["template_id"]):
        return 40037, "invalid template_id"
    page = body.get("page")
    if page is not None and (not isinstance(page, str) or len(page) > 1024 or page.startswith("/")):
        return 41030, "invalid page"
    if body.get("miniprogram_state", "formal") not in ("developer", "trial", "formal"):
        return 47003, "argument invalid! miniprogram_state"
    if body.get("lang", "zh_CN") not in ("zh_CN", "en_US", "zh_HK", "zh_TW"):
        return 47003, "argument invalid! lang"
    data = body.get("data")
    if not isinstance(data, dict) or not data:
        return 47003, "argument invalid! data"
    for key, entry in data.items():
        m = _KEY.match(str(key))
        if m is None or m.group(1) not in KEYWORD_LIMITS:
            return 47003, f"argument invalid! data.{key}"
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), str) or not entry["value"]:
            return 47003, f"argument invalid! data.{key}.value"
        kind, value = m.group(1), entry["value"]
        if len(value) > KEYWORD_LIMITS[kind]:
            return 47003, f"argument invalid! data.{key}.value too long"
        if kind == "time" and not _TIME.match(value):
            return 47003, f"argument invalid! data.{key}.value is not a time"
        if kind == "character_string" and not _ASCII.match(value):
            return 47003, f"argument invalid! data.{key}.value"
    return None


def serve(host: str, port: int, *, appid: str, secret: str, reusable_codes: bool = False,
          fd: int | None = None) -> None:
    """Serve the fake server with waitress (blocking): on ``host:port``, or on the listening socket ``fd`` a
    launcher bound and handed down (so no other process can take the port between its choice and our start).
    :class:`OSError` when the port is taken."""
    import socket

    from waitress import serve as waitress_serve

    where: dict[str, Any] = {"host": host, "port": port}
    if fd is not None:
        where = {"sockets": [socket.socket(fileno=fd)]}
    waitress_serve(
        create_wechat_app(appid=appid, secret=secret, reusable_codes=reusable_codes),
        threads=4,
        _quiet=True,
        **where,
    )
