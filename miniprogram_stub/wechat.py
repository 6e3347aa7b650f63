"""A fake WeChat ``code2session`` server.

``GET /sns/jscode2session?appid&secret&js_code&grant_type=authorization_code``

* a code in the configured mapping, or of the form ``test-<openid>``, answers
  ``{"openid", "session_key"}``; each code works once, like WeChat's
  (a reused code answers errcode 40163) unless ``reusable_codes`` is set;
* an unknown code answers ``{"errcode": 40029, "errmsg": "invalid code"}``;
* a wrong appid or secret answers ``{"errcode": 40125, "errmsg": "invalid appsecret"}``.

Run it: ``python -m miniprogram_stub wechat --port 8081 --appid wx-test --secret s3cret``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping

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
        return jsonify({"openid": openid, "session_key": session_key})

    @app.get("/health")
    def health() -> ResponseReturnValue:
        return jsonify({"status": "ok"})

    return app


def serve(host: str, port: int, *, appid: str, secret: str, reusable_codes: bool = False) -> None:
    """Serve the fake server with waitress (blocking)."""
    from waitress import serve as waitress_serve

    waitress_serve(
        create_wechat_app(appid=appid, secret=secret, reusable_codes=reusable_codes),
        host=host,
        port=port,
        threads=4,
        _quiet=True,
    )
