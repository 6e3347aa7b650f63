"""The catalogue of reason codes with their Chinese and English messages."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

_CATALOGUE: dict[str, tuple[str, str]] = {
    "valid": ("有效", "valid"),
    "malformed": ("报文格式错误", "malformed payload"),
    "bad_signature": ("签名无效", "bad signature"),
    "unknown_type": ("未知的交易类型", "unknown transaction type"),
    "forbidden": ("无权操作", "forbidden"),
    "bad_time": ("时间无效（晚于区块时间）", "event time is after the block time"),
    "duplicate_id": ("编号已存在", "id already used"),
    "unknown_org": ("单位不存在", "unknown organisation"),
    "unknown_project": ("工程不存在", "unknown project"),
    "unknown_site": ("消纳场不存在", "unknown disposal site"),
    "unknown_company": ("运输企业不存在", "unknown transport company"),
    "unknown_truck": ("车辆不存在", "unknown truck"),
    "unknown_driver": ("驾驶员不存在", "unknown driver"),
    "unknown_permit": ("核准不存在", "unknown permit"),
    "unknown_ticket": ("渣票不存在", "unknown ticket"),
    "unknown_violation": ("事件不存在", "unknown violation"),
    "unknown_department": ("非本核准的审批部门", "department is not an approver of this permit"),
    "already_decided": ("该部门已作出审批决定", "department has already decided"),
    "permit_closed": ("核准已办结", "permit is no longer pending"),
    "permit_not_approved": ("核准未通过或已撤销", "permit not approved or revoked"),
    "expired": ("已过有效期", "expired"),
    "quota_exceeded": ("超出核准处置量", "permit quota exceeded"),
    "truck_suspended": ("车辆或运输企业已被停运", "truck or company suspended"),
    "truck_retired": ("车辆已注销", "truck retired"),
    "truck_busy": ("车辆有未完成的运输", "truck has an open trip"),
    "over_capacity": ("超出车辆核定装载量", "volume exceeds truck capacity"),
    "driver_suspended": ("驾驶员已被停止运输资格", "driver suspended"),
    "contractor_suspended": ("施工单位已被暂停处置", "contractor suspended"),
    "wrong_truck": ("车辆与渣票不符", "wrong truck"),
    "wrong_site": ("消纳场与渣票不符", "wrong disposal site"),
    "wrong_project": ("工地与渣票不符", "wrong construction site"),
    "site_full": ("消纳场容量不足", "disposal site full"),
    "voided": ("渣票已作废", "ticket voided"),
    "not_departed": ("渣票尚未出场", "ticket has not departed"),
    "already_departed": ("渣票已出场", "ticket already departed"),
    "already_received": ("渣票已消纳", "ticket already received"),
    "uncovered_load": ("车辆未密闭覆盖，禁止出场", "load not covered: departure refused"),
    "bad_state": ("当前状态不允许此操作", "not allowed in the current state"),
}

#: ``code -> {"zh": ..., "en": ...}``
MESSAGES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {code: MappingProxyType({"zh": zh, "en": en}) for code, (zh, en) in _CATALOGUE.items()}
)

#: Every reason code ``apply`` or ``admit`` can return (plus ``valid``).
CODES: frozenset[str] = frozenset(_CATALOGUE)


def describe(code: str, lang: str = "zh") -> str:
    """The catalogue message of ``code`` in ``lang`` ("zh" or "en"; anything else falls back to zh)."""
    entry = MESSAGES.get(code)
    if entry is None:
        return code
    return entry["en"] if lang.lower().startswith("en") else entry["zh"]


def message(code: str, detail: str = "") -> str:
    """The Chinese outcome message: catalogue text, then the language-neutral details."""
    text = describe(code, "zh")
    return f"{text}：{detail}" if detail else text
