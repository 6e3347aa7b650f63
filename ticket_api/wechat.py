"""WeChat mini-program login: exchange a ``wx.login`` code at code2session.

``GET {base}/sns/jscode2session?appid&secret&js_code&grant_type=authorization_code``
answers ``{"openid", "session_key", ...}`` or ``{"errcode", "errmsg"}``.  The
request URL holds the app secret, so neither the URL nor a requests exception
text (which quotes the URL) is ever logged or returned.
"""

from __future__ import annotations

import json
import logging

import requests

from ticket_api.errors import ApiError, UpstreamError

log = logging.getLogger("ticket_api.wechat")

# errcodes that mean "this code is no good" (the caller's fault): 40029 invalid
# code, 40163 code already used, 40226 high-risk user blocked.
CODE_ERRORS = frozenset({40029, 40163, 40226})


class WechatCodeInvalid(ApiError):
    reason = "wechat_code_invalid"
    status = 401


def code2session(
    base_url: str,
    appid: str,
    secret: str,
    code: str,
    *,
    timeout: float = 5.0,
    session: requests.Session | None = None,
) -> str:
    """Return the openid for a login ``code`` (raises ``wechat_code_invalid`` / ``wechat_unavailable``)."""
    if not appid or not secret:
        raise UpstreamError("WeChat appid/secret are not configured")
    http = session or requests
    url = base_url.rstrip("/") + "/sns/jscode2session"
    params = {"appid": appid, "secret": secret, "js_code": code, "grant_type": "authorization_code"}
    try:
        resp = http.get(url, params=params, timeout=timeout)
    except requests.RequestException as exc:
        log.warning("code2session unreachable", extra={"error_type": type(exc).__name__})
        raise UpstreamError("WeChat code2session is unreachable") from None
    except UnicodeError:  # a code that is no text (a lone surrogate) cannot even be put in the URL
        raise WechatCodeInvalid("the code cannot be encoded") from None
    try:
        data = json.loads(resp.text)
    except ValueError:
        log.warning("code2session answered non-JSON", extra={"status": resp.status_code})
        raise UpstreamError("WeChat code2session answered non-JSON") from None
    if not isinstance(data, dict):
        raise UpstreamError("WeChat code2session answered a non-object")
    errcode = data.get("errcode") or 0
    if errcode in CODE_ERRORS:
        raise WechatCodeInvalid(f"WeChat refused the code (errcode {errcode})")
    if errcode:
        log.error("code2session refused the app", extra={"errcode": errcode})
        raise UpstreamError(f"WeChat code2session errcode {errcode}")
    openid = data.get("openid")
    if not isinstance(openid, str) or not openid:
        raise UpstreamError("WeChat code2session answered without openid")
    return openid
