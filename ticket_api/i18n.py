"""Messages for every reason code, in Chinese (default) and English.

The language is chosen from ``Accept-Language``: English only when the
client prefers it over Chinese; anything else (missing, unknown, ``*``) gets
Chinese.
"""

from __future__ import annotations

DEFAULT_LANGUAGE = "zh"
LANGUAGES = ("zh", "en")

MESSAGES: dict[str, dict[str, str]] = {
    # gate and ticket refusals
    "bad_signature": {"zh": "电子渣票签名无效", "en": "The e-ticket signature is not valid"},
    "malformed": {"zh": "数据格式错误，无法识别", "en": "The data is malformed and cannot be read"},
    "unknown_ticket": {"zh": "电子渣票不存在", "en": "No such e-ticket"},
    "expired": {"zh": "电子渣票已过期", "en": "The e-ticket has expired"},
    "not_yet_valid": {"zh": "电子渣票尚未生效", "en": "The e-ticket is not valid yet"},
    "wrong_truck": {"zh": "车牌与电子渣票不符", "en": "The plate does not match the e-ticket"},
    "wrong_site": {"zh": "电子渣票不属于本消纳场", "en": "The e-ticket is not for this disposal site"},
    "wrong_project": {"zh": "电子渣票不属于本工地", "en": "The e-ticket is not for this construction site"},
    "not_departed": {"zh": "车辆尚未从工地出场", "en": "The truck has not left the construction site"},
    "already_departed": {
        "zh": "该电子渣票已出场",
        "en": "The e-ticket has already been used to leave the site",
    },
    "already_received": {
        "zh": "该电子渣票已消纳",
        "en": "The load on this e-ticket has already been received",
    },
    "permit_not_approved": {"zh": "处置核准未通过", "en": "The disposal permit is not approved"},
    "quota_exceeded": {"zh": "超出核准处置量", "en": "The permit's approved volume is exceeded"},
    "truck_suspended": {"zh": "车辆已被暂停运输", "en": "The truck is suspended"},
    "site_full": {"zh": "消纳场已满", "en": "The disposal site is full"},
    "forbidden": {"zh": "无权执行此操作", "en": "You are not allowed to do this"},
    "not_covered": {"zh": "车辆未密闭覆盖", "en": "The load is not covered"},
    "unknown_key": {"zh": "签发密钥未公布", "en": "The issuer key is not published"},
    # sign-in and tokens
    "unauthenticated": {"zh": "请先登录", "en": "Authentication is required"},
    "token_invalid": {"zh": "访问令牌无效", "en": "The access token is not valid"},
    "token_expired": {"zh": "访问令牌已过期", "en": "The access token has expired"},
    "token_revoked": {"zh": "访问令牌已被吊销", "en": "The access token has been revoked"},
    "not_registered": {"zh": "该微信用户尚未登记", "en": "This WeChat user is not registered"},
    "wechat_code_invalid": {
        "zh": "微信登录凭证无效或已过期",
        "en": "The WeChat login code is invalid or expired",
    },
    "wechat_unavailable": {"zh": "微信服务暂时不可用", "en": "The WeChat service is unavailable"},
    # requests
    "bad_request": {"zh": "请求无效", "en": "The request is not valid"},
    "invalid_request": {"zh": "请求参数有误", "en": "Some request fields are not valid"},
    "not_found": {"zh": "资源不存在", "en": "Not found"},
    "method_not_allowed": {"zh": "不支持该请求方法", "en": "Method not allowed"},
    "conflict": {"zh": "请求与当前状态冲突", "en": "The request conflicts with the current state"},
    "payload_too_large": {"zh": "请求内容过大", "en": "The request body is too large"},
    "unsupported_media_type": {"zh": "不支持的内容类型", "en": "Unsupported media type"},
    "rate_limited": {"zh": "请求过于频繁", "en": "Too many requests"},
    "idempotency_key_reused": {
        "zh": "幂等键已用于另一请求",
        "en": "The Idempotency-Key was already used for a different request",
    },
    "idempotency_in_progress": {
        "zh": "相同幂等键的请求正在处理中",
        "en": "A request with this Idempotency-Key is still in progress",
    },
    "internal": {"zh": "服务器内部错误", "en": "Internal server error"},
    "not_implemented": {"zh": "功能尚未实现", "en": "Not implemented yet"},
    "ledger_unavailable": {"zh": "账本服务暂不可用", "en": "The ledger is unavailable"},
    "ledger_timeout": {
        "zh": "交易已提交，但未在规定时间内完成共识，请稍后查询",
        "en": "The transaction was submitted but not final in time; check again later",
    },
    # ledger errors (ledger.errors reasons)
    "oversize_payload": {"zh": "交易内容过大", "en": "The transaction payload is too large"},
    "unsupported_algorithm": {"zh": "不支持的密码算法", "en": "Unsupported cryptographic algorithm"},
    "unknown_signer": {"zh": "签名者未登记", "en": "The signer is not known to the consortium"},
    "duplicate_tx": {"zh": "重复的交易", "en": "Duplicate transaction"},
    "wrong_previous_hash": {"zh": "区块链接不一致", "en": "The block does not link to the head"},
    "invalid_block": {"zh": "区块无效", "en": "Invalid block"},
    "bad_consortium": {"zh": "联盟配置错误", "en": "Consortium configuration error"},
    "bad_proof_request": {"zh": "无法生成证明", "en": "The proof cannot be built"},
    "bad_checkpoint": {"zh": "检查点无效", "en": "Invalid checkpoint"},
    "store_error": {"zh": "存储错误", "en": "Storage error"},
    "database_busy": {"zh": "服务繁忙，请稍后重试", "en": "The service is busy, retry shortly"},
    "ledger_error": {"zh": "账本错误", "en": "Ledger error"},
}


def parse_accept_language(header: str | None) -> list[tuple[str, float]]:
    """``Accept-Language`` as (lower-case tag, q) pairs, best first (stable)."""
    out: list[tuple[str, float]] = []
    for part in (header or "").split(","):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            out.append((tag, q))
    out.sort(key=lambda item: -item[1])
    return out


def pick_language(header: str | None) -> str:
    """``"en"`` or ``"zh"`` for an ``Accept-Language`` header (default Chinese)."""
    for tag, _q in parse_accept_language(header):
        primary = tag.split("-", 1)[0]
        if primary in LANGUAGES:
            return primary
    return DEFAULT_LANGUAGE


def message(reason: str, language: str = DEFAULT_LANGUAGE, default: str | None = None) -> str:
    """The message for ``reason`` in ``language``; ``default`` (or the code) if unknown."""
    texts = MESSAGES.get(reason)
    if texts is None:
        ledger_text = _ledger_message(reason, language)
        return ledger_text or default or reason
    return texts.get(language) or texts[DEFAULT_LANGUAGE]


def _ledger_message(reason: str, language: str) -> str | None:
    """The e-ticket state machine's catalogue (``ledger.eticket.reasons``), if present."""
    try:
        from ledger.eticket.reasons import MESSAGES as LEDGER_MESSAGES
    except ImportError:  # pragma: no cover - the package is optional here
        return None
    entry = LEDGER_MESSAGES.get(reason)
    if not entry:
        return None
    return str(entry.get(language) or entry.get(DEFAULT_LANGUAGE) or "") or None
