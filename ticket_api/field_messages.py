"""Field validation messages in the caller's language: marshmallow's and the API's own, Chinese by default.

The schemas and services write field messages in English (marshmallow's defaults and our validators');
:func:`localise` turns a whole ``fields`` tree (``{"devices": {"3": {"id": ["Unknown truck plate."]}}}``)
into Chinese unless the caller asked for English.  A message no pattern knows stays as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: (English message with ``{name}`` placeholders, Chinese message with the same placeholders)
_MESSAGES: tuple[tuple[str, str], ...] = (
    # marshmallow fields
    ("Missing data for required field.", "缺少必填字段"),
    ("Field may not be null.", "字段不能为空值"),
    ("Unknown field.", "未知字段"),
    ("Invalid value.", "值无效"),
    ("Invalid type.", "类型无效"),
    ("Invalid input type.", "输入类型无效"),
    ("Invalid input.", "输入无效"),
    ("Not a valid list.", "不是有效的列表"),
    ("Not a valid tuple.", "不是有效的元组"),
    ("Not a valid string.", "不是有效的字符串"),
    ("Not a valid utf-8 string.", "不是有效的 UTF-8 字符串"),
    ("Not a valid UUID.", "不是有效的 UUID"),
    ("Not a valid number.", "不是有效的数字"),
    ("Number too large.", "数字过大"),
    ("Not a valid integer.", "不是有效的整数"),
    ("Special numeric values (nan or infinity) are not permitted.", "不允许特殊数值（nan 或无穷大）"),
    ("Not a valid boolean.", "不是有效的布尔值"),
    ("Not a valid aware datetime.", "不是带时区的有效时间（如 2026-11-23T22:15:00+08:00）"),
    ("Not a valid naive datetime.", "不是有效的无时区时间"),
    ("Not a valid datetime.", "不是有效的时间"),
    ("Not a valid date.", "不是有效的日期"),
    ("Not a valid period of time.", "不是有效的时间段"),
    ("Not a valid mapping type.", "不是有效的对象"),
    ("Not a valid URL.", "不是有效的网址"),
    ("Not a valid email address.", "不是有效的电子邮件地址"),
    ("Not a valid {what}.", "不是有效的{what}"),
    ("\"{input}\" cannot be formatted as a {what}.", "“{input}”无法格式化为{what}"),
    # marshmallow validators
    ("Must be one of: {choices}.", "必须是以下之一：{choices}"),
    ("Must be greater than or equal to {min} and less than or equal to {max}.", "必须在 {min} 到 {max} 之间"),
    ("Must be greater than {min} and less than {max}.", "必须大于 {min} 且小于 {max}"),
    ("Must be greater than or equal to {min} and less than {max}.", "必须大于等于 {min} 且小于 {max}"),
    ("Must be greater than {min} and less than or equal to {max}.", "必须大于 {min} 且小于等于 {max}"),
    ("Must be greater than or equal to {min}.", "必须大于等于 {min}"),
    ("Must be greater than {min}.", "必须大于 {min}"),
    ("Must be less than or equal to {max}.", "必须小于等于 {max}"),
    ("Must be less than {max}.", "必须小于 {max}"),
    ("Length must be between {min} and {max}.", "长度必须在 {min} 到 {max} 之间"),
    ("Length must be {n}.", "长度必须为 {n}"),
    ("Longer than maximum length {max}.", "超过最大长度 {max}"),
    ("Shorter than minimum length {min}.", "短于最小长度 {min}"),
    ("Must be equal to {other}.", "必须等于 {other}"),
    ("String does not match expected pattern.", "格式不符合要求"),
    ("One or more of the choices you made was not in: {choices}.", "有选项不在可选范围内：{choices}"),
    ("One or more of the choices you made was in: {values}.", "有选项属于禁止的值：{values}"),
    # the API's validators (ticket_api.schemas) and services
    ("1-64 of A-Z a-z 0-9 _ . : - (first alphanumeric)",
     "1 至 64 个字符，限 A-Z a-z 0-9 _ . : -（首字符为字母或数字）"),
    ("1-64 characters, no spaces", "1 至 64 个字符，不含空格"),
    ("at most one decimal", "最多一位小数"),
    ("must be at most {max}", "不能超过 {max}"),
    ("must be between {min} and {max}", "必须在 {min} 到 {max} 之间"),
    ("must be greater than {min}", "必须大于 {min}"),
    ("must be after valid_from", "必须晚于 valid_from"),
    ("give truck_plates and/or company_ids", "请提供 truck_plates 或 company_ids"),
    ("a rejection needs a comment", "驳回必须填写意见"),
    ("must be from {start} to before {end}", "必须在 {start} 至 {end} 之前"),
    ("within {n} s of now", "须在服务器当前时间前后 {n} 秒内"),
    ("before the trip's exit", "早于本次运输的出场时间"),
    ("in the future", "晚于当前时间"),
    ("unknown", "未知"),
    # devices (ticket_api.devices, ticket_api.adapter.devices)
    ("Unknown truck plate.", "车牌未在账本登记"),
    ("Unknown disposal site.", "消纳场不存在"),
    ("Unknown project.", "工程不存在"),
    ("Unknown device.", "未知设备"),
    ("Listed twice.", "重复列出"),
    ("Already provisioned: revoke its token first.", "设备已开通：请先吊销其令牌"),
    ("The truck's registered terminal is {terminal}.", "该车登记的终端为 {terminal}"),
    ("Invalid cursor.", "分页游标无效"),
)


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
    return re.compile(f"^{pattern}$", re.DOTALL)


_EXACT: dict[str, str] = {en: zh for en, zh in _MESSAGES if "{" not in en}
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (_compile(en), zh) for en, zh in _MESSAGES if "{" in en)
_WORDS = {"datetime": "时间", "aware datetime": "带时区的时间", "date": "日期", "time": "时刻",
          "decimal": "小数", "float": "数字", "dict": "对象", "list": "列表"}


def translate(text: str) -> str:
    """``text`` in Chinese (as written when no pattern knows it)."""
    if text in _EXACT:
        return _EXACT[text]
    for pattern, zh in _PATTERNS:
        m = pattern.match(text)
        if m:
            return zh.format(**{k: _WORDS.get(v, v) for k, v in m.groupdict().items()})
    return text


def localise(fields: Any, language: str) -> Any:
    """A ``fields`` tree with every message (a string in a list) in ``language`` (``en``: as written; anything
    else Chinese); other members (``{"violation_id": "FGBY..."}``) stay as they are."""
    if language == "en":
        return fields
    if isinstance(fields, Mapping):
        return {k: localise(v, language) for k, v in fields.items()}
    if isinstance(fields, list | tuple):  # messages are lists of strings; a bare value (an id) is no message
        return [translate(v) if isinstance(v, str) else localise(v, language) for v in fields]
    return fields
