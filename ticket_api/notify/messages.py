"""What a notification says, in Chinese (default) or English, and its WeChat subscribe-message data.

Reason codes (a gate's refusal) read through the one registry (``ledger.reasons`` via
``ticket_api.i18n.message``).  WeChat's keyword types bound the values: ``thing`` at most 20 characters,
``character_string`` at most 32 ASCII characters, ``time`` like ``2026年12月02日 15:01``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ledger.core.encoding import CHINA_TZ
from ticket_api.i18n import message as reason_message
from ticket_api.notify.events import Event

TITLES: dict[str, tuple[str, str]] = {
    "permit_approved": ("处置核准已批准", "Permit approved"),
    "permit_rejected": ("处置核准被驳回", "Permit rejected"),
    "gate_held": ("车辆在闸口被拦截", "Truck held at a gate"),
    "violation_raised": ("车辆违规告警", "Violation raised"),
    "penalty_recorded": ("处罚决定已记录", "Penalty recorded"),
    "site_alarm": ("消纳场负荷告警", "Disposal site in alarm"),
}

#: the mini-program page each kind opens
PAGES: dict[str, str] = {
    "permit_approved": "pages/permit/detail",
    "permit_rejected": "pages/permit/detail",
    "gate_held": "pages/ticket/detail",
    "violation_raised": "pages/violation/detail",
    "penalty_recorded": "pages/penalty/detail",
    "site_alarm": "pages/site/detail",
}

VIOLATION_TYPES_ZH = {
    "off_route": "偏离路线", "overspeed": "超速", "suspected_dumping": "疑似偷倒", "overloaded": "超载",
    "uncovered_load": "未密闭覆盖", "no_ticket": "无票运输", "outside_hours": "非规定时段运输",
    "forbidden_zone": "驶入禁行区域",
}


def _lang(language: str) -> int:
    return 1 if language == "en" else 0


def subject_id(e: Event) -> str:
    """The id the message is about (permit, ticket, violation, penalty or site)."""
    f = e.facts
    for key in ("permit_id", "violation_id", "penalty_id", "ticket_id", "site_id"):
        if f.get(key):
            return str(f[key])
    return e.event_id


def body(e: Event, language: str) -> str:
    """One sentence for a person, in ``language`` ("zh" or "en")."""
    f, en = e.facts, language == "en"
    plate = f.get("plate") or ""
    if e.kind == "permit_approved":
        return (f"Permit {f.get('permit_id')} of project {f.get('project_id')} was approved by every department."
                if en else f"项目 {f.get('project_id')} 的处置核准 {f.get('permit_id')} 已获全部部门批准。")
    if e.kind == "permit_rejected":
        return (f"Permit {f.get('permit_id')} was rejected by {f.get('department')}: {f.get('reason_text') or ''}"
                if en else f"处置核准 {f.get('permit_id')} 被 {f.get('department')} 驳回：{f.get('reason_text') or ''}")
    if e.kind == "gate_held":
        why = reason_message(str(f.get("reason")), language)
        gate = ("exit" if f.get("gate") == "exit" else "disposal") if en else (
            "出场" if f.get("gate") == "exit" else "消纳场")
        gid, tid = f.get("gate_id"), f.get("ticket_id")
        return (f"Truck {plate} was held at the {gate} gate {gid} (ticket {tid}): {why}"
                if en else f"车辆 {plate} 在{gate}闸口 {gid} 被拦截（电子渣票 {tid}）：{why}")
    if e.kind == "violation_raised":
        vtype = str(f.get("type") or "")
        what = vtype.replace("_", " ") if en else VIOLATION_TYPES_ZH.get(vtype, vtype)
        return (f"Violation {f.get('violation_id')} ({what}) on truck {plate}, project {f.get('project_id')}."
                if en else f"车辆 {plate}（项目 {f.get('project_id')}）发生违规 {f.get('violation_id')}：{what}。")
    if e.kind == "penalty_recorded":
        return (f"Penalty {f.get('penalty_id')} on {f.get('target_kind')} {f.get('target_id')}: "
                f"{f.get('amount_yuan')} yuan." if en else
                f"处罚 {f.get('penalty_id')}：对 {f.get('target_id')} 罚款 {f.get('amount_yuan')} 元。")
    if e.kind == "site_alarm":
        return (f"Disposal site {f.get('site_id')} is at {f.get('load_rate_pct')}% of its capacity."
                if en else f"消纳场 {f.get('site_name') or f.get('site_id')} 负荷率 {f.get('load_rate_pct')}%，已告警。"
                )
    return e.kind


def title(e: Event, language: str) -> str:
    return TITLES.get(e.kind, (e.kind, e.kind))[_lang(language)]


def wechat_time(iso_time: str) -> str:
    """``2026年12月02日 15:01`` (WeChat's ``time`` keyword), China time."""
    t = datetime.fromisoformat(iso_time).astimezone(CHINA_TZ)
    return f"{t:%Y年%m月%d日 %H:%M}"


def _thing(text: str) -> str:
    return text if len(text) <= 20 else text[:19] + "…"


def _detail(e: Event, language: str) -> str:
    f = e.facts
    if e.kind == "gate_held":
        return f"{f.get('plate') or ''} {reason_message(str(f.get('reason')), language)}".strip()
    if e.kind in ("violation_raised",):
        vtype = str(f.get("type") or "")
        return f"{f.get('plate') or ''} " + (vtype.replace("_", " ") if language == "en"
                                            else VIOLATION_TYPES_ZH.get(vtype, vtype))
    if e.kind == "penalty_recorded":
        return f"{f.get('amount_yuan')} " + ("yuan" if language == "en" else "元")
    if e.kind == "permit_rejected":
        return str(f.get("reason_text") or f.get("department") or "")
    if e.kind == "site_alarm":
        return f"{f.get('load_rate_pct')}%"
    return str(f.get("project_id") or "")


def wechat_data(e: Event, language: str) -> dict[str, dict[str, str]]:
    """The subscribe message's ``data``: thing1 what, character_string2 which, time3 when, thing4 detail."""
    ident = "".join(ch for ch in subject_id(e) if ch.isascii() and (ch.isalnum() or ch in "-_."))[:32]
    return {
        "thing1": {"value": _thing(title(e, language))},
        "character_string2": {"value": ident or "-"},
        "time3": {"value": wechat_time(e.time)},
        "thing4": {"value": _thing(_detail(e, language).strip() or "-")},
    }


def wechat_page(e: Event) -> str:
    return f"{PAGES.get(e.kind, 'pages/index/index')}?id={subject_id(e)}"


def item(row_id: int, e: Event, language: str, *, created_at: datetime) -> dict[str, Any]:
    """A notification as the API lists and streams it."""
    return {"id": row_id, "event_id": e.event_id, "kind": e.kind, "time": e.time,
            "created_at": created_at.astimezone(CHINA_TZ).isoformat(timespec="seconds"),
            "title": title(e, language), "body": body(e, language), "subject_id": subject_id(e),
            "facts": _public(e.facts), "block_height": e.height}


def _public(facts: Mapping[str, Any]) -> dict[str, Any]:
    return dict(facts)
