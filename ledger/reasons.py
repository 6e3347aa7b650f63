"""The one registry of reason codes: for each code its HTTP status and its Chinese and English message.

Every refusal in the project carries a stable ASCII ``reason`` code: the ledger core and its errors
(:mod:`ledger.errors`), the e-ticket rules (:mod:`ledger.eticket`), the QR ticket format
(:mod:`ledger.qrticket`), the consortium nodes (``consortium_nodes``) and the Flask API
(``ticket_api``).  This module is the only place that says what each code means: the API's error
answers (status and localised message), the nodes' HTTP answers and the e-ticket outcome messages
all look the code up here.  Pure: no I/O, nothing but data and lookups.

A code that is missing here still works everywhere (callers pass a default status and get the code
itself as message), but ``tests/unit/ledger/test_reasons.py`` fails until it is added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

#: The languages of the messages; anything else falls back to the first (Chinese).
LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class Reason:
    """One reason code: ``status`` is the HTTP status of an answer refusing with it, ``zh`` and ``en``
    its message for people; the API and the consortium nodes answer with the same status.
    """

    code: str
    status: int
    zh: str
    en: str

    def text(self, lang: str = "zh") -> str:
        """The message in ``lang`` (``"en"``, ``"en-US"``…: English; anything else Chinese)."""
        return self.en if lang.lower().startswith("en") else self.zh


_ALL: tuple[Reason, ...] = (
    # -- outcome of a transaction the rules accept ------------------------------------------------------
    Reason("valid", 200, "有效", "The transaction is valid"),
    # -- the ledger core (ledger.errors): admission, blocks, consortium, store --------------------------
    Reason("ledger_error", 500, "账本错误", "Ledger error"),
    Reason("malformed", 400, "数据格式错误，无法识别", "The data is malformed and cannot be read"),
    Reason("oversize_payload", 413, "交易内容过大", "The transaction payload is too large"),
    Reason("unsupported_algorithm", 400, "不支持的密码算法", "Unsupported cryptographic algorithm"),
    Reason("unknown_signer", 403, "签名者未登记", "The signer is not known to the consortium"),
    Reason("bad_signature", 403, "签名无效", "The signature is not valid"),
    Reason("forbidden", 403, "无权执行此操作", "You are not allowed to do this"),
    Reason("duplicate_tx", 409, "重复的交易", "Duplicate transaction"),
    Reason("wrong_previous_hash", 409, "区块链接不一致", "The block does not link to the head"),
    Reason("invalid_block", 422, "区块无效", "Invalid block"),
    Reason("bad_consortium", 500, "联盟配置错误", "Consortium configuration error"),
    Reason("bad_proof_request", 400, "无法生成证明", "The proof cannot be built"),
    Reason("bad_checkpoint", 422, "检查点无效", "Invalid checkpoint"),
    Reason("store_error", 503, "存储错误", "Storage error"),
    Reason("reexecution", 500, "账本重新执行的结果与记录不一致", "The chain does not re-execute to its records"),
    # member cards, the co-signed genesis and key validity (ledger.core.card, ledger.core.genesis)
    Reason("card_invalid", 500, "成员名片的自签名无效（内容被改动或未签名）",
           "A member card's self-signature does not verify: its content changed or it was never signed"),
    Reason("genesis_unsigned", 500, "创世文件缺少创始成员的签名", "The genesis lacks a founding member's signature"),
    Reason("genesis_bad_signature", 500, "创始成员对创世文件的签名无效（签名后内容被改动）",
           "A founding member's signature does not verify over the genesis: it changed after being signed"),
    Reason("key_exists", 409, "密钥文件已存在，不会覆盖", "The key file exists: a key is never overwritten"),
    Reason("node_refused", 502, "节点拒绝了该交易", "The node refused the transaction"),
    Reason("act_unsigned", 403, "该操作须由操作者本人（部门或设备）的密钥签名",
           "This act must be signed with its actor's own key (the department's or the device's)"),
    Reason("unknown_act_key", 403, "操作签名密钥未在链上登记", "The act's signing key is not registered on the chain"),
    Reason("act_key_mismatch", 403, "签名密钥不属于该操作者", "The signing key is not registered to this actor"),
    Reason("key_revoked", 403, "签名密钥已被撤销", "The signing key has been revoked"),
    Reason("bad_act_signature", 403, "操作者签名无效", "The actor's signature is not valid"),
    Reason("key_expired", 403, "签名密钥已过有效期", "The signing key's validity period has ended"),
    Reason("key_not_yet_valid", 403, "签名密钥尚未生效", "The signing key is not valid yet"),
    # governance on the chain (ledger.core.governance, ledger.core.membership)
    Reason("governance_invalid", 422, "治理提案或投票无效", "The governance proposal or vote is not valid"),
    Reason("governance_not_node", 403, "只有在任的节点成员可以提出治理提案和投票",
           "Only node members in force may propose and vote on governance"),
    Reason("governance_unknown_proposal", 404, "该治理提案不存在或已结束",
           "The governance proposal is not pending (unknown, applied, rejected or expired)"),
    Reason("governance_duplicate", 409, "治理提案编号已使用，或该成员已对此提案投票",
           "The proposal id is taken, or this member has already voted on the proposal"),
    Reason("key_rotated", 403, "签名密钥已经治理投票轮换，请使用新密钥",
           "The signing key was rotated out by a governance vote: sign with the new key"),
    Reason("member_retired", 403, "签名成员已经治理投票退出联盟",
           "The signing member was retired by a governance vote"),
    # -- the e-ticket rules (ledger.eticket; docs/ETICKET.md "Reason codes") ----------------------------
    Reason("eticket_error", 422, "电子渣票业务规则错误", "E-ticket rule error"),
    Reason("personal_data", 422, "字段含有个人信息（身份证号、手机号、邮箱或银行卡号），不得上链",
           "A field holds personal data (an ID, mobile, e-mail or bank card number) and cannot go on the chain"),
    Reason("unknown_type", 400, "未知的交易类型", "unknown transaction type"),
    Reason("bad_time", 422, "时间无效（晚于区块时间）", "event time is after the block time"),
    Reason("duplicate_id", 409, "编号已存在", "id already used"),
    Reason("unknown_org", 404, "单位不存在", "unknown organisation"),
    Reason("unknown_project", 404, "工程不存在", "unknown project"),
    Reason("unknown_site", 404, "消纳场不存在", "unknown disposal site"),
    Reason("unknown_company", 404, "运输企业不存在", "unknown transport company"),
    Reason("unknown_truck", 404, "车辆不存在", "unknown truck"),
    Reason("unknown_driver", 404, "驾驶员不存在", "unknown driver"),
    Reason("unknown_permit", 404, "核准不存在", "unknown permit"),
    Reason("unknown_ticket", 404, "电子渣票不存在", "No such e-ticket"),
    Reason("unknown_violation", 404, "事件不存在", "unknown violation"),
    Reason("unknown_camera", 404, "摄像头未登记", "unknown camera"),
    Reason("unknown_department", 403, "非本核准的审批部门", "department is not an approver of this permit"),
    Reason("already_decided", 409, "该部门已作出审批决定", "department has already decided"),
    Reason("permit_closed", 409, "核准已办结", "permit is no longer pending"),
    Reason("permit_not_approved", 422, "处置核准未通过", "The disposal permit is not approved"),
    # Permits and tickets both expire: the rules' general text (asserted by the e-ticket tests).
    Reason("expired", 422, "已过有效期", "The validity period has passed"),
    Reason("quota_exceeded", 422, "超出核准处置量", "The permit's approved volume is exceeded"),
    Reason("truck_suspended", 422, "车辆已被暂停运输", "The truck is suspended"),
    Reason("truck_retired", 422, "车辆已注销", "truck retired"),
    Reason("truck_busy", 409, "车辆有未完成的运输", "truck has an open trip"),
    Reason("over_capacity", 422, "超出车辆核定装载量", "volume exceeds truck capacity"),
    Reason("driver_suspended", 422, "驾驶员已被停止运输资格", "driver suspended"),
    Reason("contractor_suspended", 422, "施工单位已被暂停处置", "contractor suspended"),
    Reason("wrong_truck", 422, "车牌与电子渣票不符", "The plate does not match the e-ticket"),
    Reason("wrong_site", 403, "电子渣票不属于本消纳场", "The e-ticket is not for this disposal site"),
    Reason("wrong_project", 403, "电子渣票不属于本工地", "The e-ticket is not for this construction site"),
    Reason("site_full", 422, "消纳场已满", "The disposal site is full"),
    Reason("unknown_amendment", 404, "许可变更申请不存在", "unknown permit amendment"),
    Reason("site_alarm", 422, "消纳场已达预警负荷，请改选推荐的消纳场",
           "The disposal site is at its alarm threshold: choose one of the recommended sites"),
    Reason("bad_weighing", 422, "过磅数据无效（需净重，或毛重与皮重且皮重小于毛重）",
           "Bad weighing: give the net weight, or gross and tare with tare below gross"),
    Reason("voided", 409, "渣票已作废", "ticket voided"),
    Reason("revoked_before_scan", 409, "离线放行时车辆、企业或核准已被撤销，已记录违规",
           "The truck, company or permit was revoked before this offline exit: recorded as a violation"),
    Reason("not_departed", 409, "车辆尚未从工地出场", "The truck has not left the construction site"),
    Reason("already_departed", 409, "该电子渣票已出场", "The e-ticket has already been used to leave the site"),
    Reason("already_received", 409, "该电子渣票已消纳", "The load on this e-ticket has already been received"),
    Reason("uncovered_load", 422, "车辆未密闭覆盖，禁止出场", "load not covered: departure refused"),
    Reason("bad_state", 409, "当前状态不允许此操作", "not allowed in the current state"),
    Reason("bad_report_request", 400, "报表的时间段或分组无效", "The report period or grouping is not valid"),
    # -- the QR e-ticket checked at a gate (ledger.qrticket) ---------------------------------------------
    Reason("not_yet_valid", 422, "电子渣票尚未生效", "The e-ticket is not valid yet"),
    Reason("unknown_key", 403, "签发密钥未公布", "The issuer key is not published"),
    Reason("not_covered", 422, "车辆未密闭覆盖", "The load is not covered"),
    # -- the offline gates' revocation list (ledger.qrticket.revocations, miniprogram_stub.gate) -----------
    Reason("bad_revocation_list", 422, "吊销名单格式错误，无法识别", "The revocation list is malformed"),
    Reason("bad_revocation_signature", 403, "吊销名单签名无效", "The revocation list's signature is not valid"),
    Reason("revocations_stale", 503, "吊销名单已过期，闸机不能离线放行，请联网更新",
           "The revocation list is too old: the gate cannot work offline until it is refreshed"),
    Reason("revocations_missing", 503, "闸机尚无吊销名单，不能离线放行，请联网获取",
           "The gate has no revocation list: it cannot work offline until it fetches one"),
    Reason("bad_since", 400, "增量参数 since 无效（应为版本号或带时区的时间）",
           "since must be a version number or a time with its offset"),
    # -- the consortium nodes (consortium_nodes.errors) --------------------------------------------------
    Reason("node_error", 500, "节点错误", "Node error"),
    Reason("not_ready", 503, "节点尚未就绪", "The node is not ready yet"),
    Reason("diverged", 500, "成员在同一高度签署了不同的区块", "Members signed different blocks at the same height"),
    Reason("peer_error", 502, "对等节点无法访问或应答异常", "A peer node could not be reached or answered nonsense"),
    Reason("chain_halted", 503, "节点已停止出块（存储与状态不一致）",
           "The node stopped building blocks: its store and state disagree"),
    Reason("store_failed", 503, "区块已生成但未能写入数据库", "A block was built but the database did not store it"),
    Reason("store_tampered", 503, "已存储的链无法重放（数据库被改动）",
           "The stored chain does not re-execute: the database was changed"),
    Reason("ordering_error", 503, "排序服务不可用或拒绝了请求",
           "The ordering service is unavailable or refused the request"),
    Reason("malformed_order", 502, "排序服务中的数据不是批次", "The ordering service holds data that is not a batch"),
    Reason("malformed_batch", 422, "排序批次无法生成区块（格式错误）",
           "An ordered batch is malformed and cannot become a block"),
    Reason("unsigned_batch", 403, "排序批次未经提议节点签名", "The batch is not signed by the node that proposed it"),
    Reason("order_conflict", 409, "该序号已被其他批次占用，请按最新序号重新签名",
           "Another batch took this sequence number: sign for the next one"),
    Reason("not_proposer", 409, "该节点不是当前的批次提议节点，请自行提议",
           "This node is not the proposer of the moment: propose the batch yourself"),
    Reason("block_time_ahead", 422, "批次或区块时间超前于节点时钟（超过允许的时钟偏差）",
           "The batch or block time is too far ahead of the node's clock"),
    Reason("bad_config", 500, "节点配置错误", "Node configuration error"),
    Reason("database_held", 409, "节点数据库已被另一个运行中的进程占用",
           "Another live process holds the node's database"),
    Reason("storage_fault", 503, "节点存储故障（数据库被删除、只读或无响应）",
           "The node's storage failed: its database was deleted, became read-only or does not answer"),
    Reason("port_in_use", 409, "端口已被其他进程占用", "The port is taken by another process"),
    Reason("tls_required", 500, "节点在非回环地址上监听时必须启用 TLS",
           "A node listening on a non-loopback address must use TLS"),
    Reason("tls_client_required", 401, "请使用联盟成员的 TLS 客户端证书连接节点",
           "Connect to a node with a consortium member's TLS client certificate"),
    Reason("tls_unknown_peer", 403, "TLS 证书不是联盟成员签发的",
           "The TLS certificate was not issued by a consortium member"),
    Reason("tls_member_forbidden", 403, "该联盟成员无权调用此节点接口",
           "This consortium member may not call this node route"),
    Reason("checkpoint_mismatch", 409, "检查点与本节点的账本不一致", "The checkpoint does not match this node's log"),
    # -- the API: sign-in and tokens ---------------------------------------------------------------------
    Reason("unauthenticated", 401, "请先登录", "Authentication is required"),
    Reason("token_invalid", 401, "访问令牌无效", "The access token is not valid"),
    Reason("token_expired", 401, "访问令牌已过期", "The access token has expired"),
    Reason("token_revoked", 401, "访问令牌已被吊销", "The access token has been revoked"),
    Reason("wechat_code_invalid", 401, "微信登录凭证无效或已过期", "The WeChat login code is invalid or expired"),
    Reason("not_registered", 403, "该微信用户尚未登记", "This WeChat user is not registered"),
    Reason("wechat_unavailable", 502, "微信服务暂时不可用", "The WeChat service is unavailable"),
    # -- the API: requests -------------------------------------------------------------------------------
    Reason("bad_request", 400, "请求无效", "The request is not valid"),
    Reason("invalid_request", 422, "请求参数有误", "Some request fields are not valid"),
    Reason("not_found", 404, "资源不存在", "Not found"),
    Reason("method_not_allowed", 405, "不支持该请求方法", "Method not allowed"),
    Reason("conflict", 409, "请求与当前状态冲突", "The request conflicts with the current state"),
    Reason("payload_too_large", 413, "请求内容过大", "The request body is too large"),
    Reason("unsupported_media_type", 415, "不支持的内容类型", "Unsupported media type"),
    Reason("rate_limited", 429, "请求过于频繁", "Too many requests"),
    Reason("clock_skew", 422, "闸机时间与服务器时间相差过大", "The gate's time is too far from the server's clock"),
    Reason("bad_position_time", 422, "定位时间早于出场或晚于当前时间",
           "A position is dated before the trip's exit or in the future"),
    Reason("json_too_deep", 400, "JSON 嵌套层数过深", "The JSON body nests too deep"),
    Reason("bad_text", 400, "文本含有无效字符（孤立的代理项）", "A text holds an invalid character (a lone surrogate)"),
    Reason("time_out_of_range", 400, "时间超出允许范围（2000 年至 2099 年）",
           "The time is out of range (years 2000 to 2099)"),
    Reason(
        "idempotency_key_reused", 422, "幂等键已用于另一请求",
        "The Idempotency-Key was already used for a different request",
    ),
    Reason(
        "idempotency_in_progress", 409, "相同幂等键的请求正在处理中",
        "A request with this Idempotency-Key is still in progress",
    ),
    # camera photos and the evidence store (ticket_api/evidence.py, ticket_api/views/cameras.py)
    Reason("bad_photo", 400, "照片不是有效的 JPEG 或 PNG 图像", "The photo is not a valid JPEG or PNG image"),
    Reason("photo_too_large", 413, "照片超过大小限制", "The photo is larger than the limit"),
    Reason("evidence_not_found", 404, "证据照片不存在或已过保存期限", "No such evidence photo (or past its retention)"),
    Reason("evidence_corrupt", 500, "证据照片与其摘要不符，拒绝提供",
           "The stored photo does not match its digest and is not served"),
    # work lists (ticket_api/views/lists.py)
    Reason("bad_cursor", 400, "分页游标无效（请从第一页重新查询）",
           "The page cursor is not valid (start again from the first page)"),
    Reason("bad_period", 422, "时间段无效（起始时间晚于结束时间）", "The period is not valid (from is after to)"),
    Reason("no_queue", 422, "该角色没有待办队列", "This role has no work queue here"),
    Reason("openid_taken", 409, "该微信用户已绑定其他角色或单位",
           "This WeChat user is bound to another role or company"),
    Reason("internal", 500, "服务器内部错误", "Internal server error"),
    Reason("not_implemented", 501, "功能尚未实现", "Not implemented yet"),
    Reason("ledger_unavailable", 503, "账本服务暂不可用", "The ledger is unavailable"),
    Reason(
        "ledger_timeout", 503, "交易已提交，但未在规定时间内完成共识，请稍后查询",
        "The transaction was submitted but not final in time; check again later",
    ),
    Reason("database_busy", 503, "服务繁忙，请稍后重试", "The service is busy, retry shortly"),
)

#: ``code -> Reason`` for every reason code.
REASONS: Mapping[str, Reason] = MappingProxyType({r.code: r for r in _ALL})

#: ``code -> HTTP status`` (the API's answer).
STATUS: Mapping[str, int] = MappingProxyType({r.code: r.status for r in _ALL})


def get(code: str) -> Reason | None:
    """The registry entry of ``code`` (None for a code it does not know)."""
    return REASONS.get(code)


def status_of(code: str, default: int = 422) -> int:
    """The HTTP status of an answer refusing with ``code`` (``default`` for an unknown code)."""
    entry = REASONS.get(code)
    return default if entry is None else entry.status


def message(code: str, lang: str = "zh", default: str | None = None) -> str:
    """The message of ``code`` in ``lang`` ("en…": English, else Chinese); ``default`` (else the code
    itself) for an unknown code."""
    entry = REASONS.get(code)
    if entry is None:
        return code if default is None else default
    return entry.text(lang)
