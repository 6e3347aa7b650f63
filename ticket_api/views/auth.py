"""Sign-in: WeChat mini-program login, who-am-I, logout."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from ledger.core.encoding import iso
from ticket_api.auth import authenticate, ctx, require
from ticket_api.errors import ApiError
from ticket_api.jsonbody import Blueprint
from ticket_api.schemas import LoginResultSchema, PrincipalSchema, WechatLoginSchema
from ticket_api.wechat import code2session

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Sign-in and tokens")
log = logging.getLogger("ticket_api.auth")


class NotRegistered(ApiError):
    reason = "not_registered"
    status = 403


@blp.route("/wechat", methods=["POST"])
@blp.arguments(WechatLoginSchema)
@blp.response(200, LoginResultSchema)
def wechat_login(data: dict[str, Any]) -> dict[str, Any]:
    """Exchange a ``wx.login`` code for a bearer token of the registered person's role.

    401 ``wechat_code_invalid`` for a code WeChat refuses, 403 ``not_registered``
    for an openid nobody bound to a role.
    """
    c = ctx()
    cfg = c.config
    openid = code2session(
        cfg["WECHAT_API_BASE"],
        cfg["WECHAT_APPID"],
        cfg["WECHAT_SECRET"],
        data["code"],
        timeout=float(cfg["WECHAT_TIMEOUT"]),
        session=c.http,
    )
    user = c.tokens.wechat_user(openid)
    if user is None:
        log.info("login of unregistered openid")
        raise NotRegistered("openid not bound to a role")
    issued = c.tokens.issue(
        role=user.role,
        tenant=user.tenant,
        subject=f"wx:{openid}",
        ttl=timedelta(hours=float(cfg["LOGIN_TOKEN_TTL_HOURS"])),
        source="wechat",
    )
    log.info("wechat login", extra={"role": user.role, "tenant": user.tenant, "token_id": issued.id})
    return {
        "token": issued.token,
        "token_type": "Bearer",
        "role": issued.role,
        "tenant": issued.tenant,
        "subject": issued.subject,
        "expires_at": iso(issued.expires_at, timespec="seconds"),
    }


@blp.route("/me")
@require()
@blp.response(200, PrincipalSchema)
def me() -> dict[str, Any]:
    """The caller's role, tenant and token expiry."""
    p = authenticate()
    return {
        "token_id": p.token_id,
        "role": p.role,
        "tenant": p.tenant,
        "subject": p.subject,
        "expires_at": iso(p.expires_at, timespec="seconds"),
    }


@blp.route("/logout", methods=["POST"])
@require()
@blp.response(204)
def logout() -> None:
    """Revoke the token used for this call."""
    ctx().tokens.revoke(authenticate().token_id)
