"""The personal-data screen (ledger.eticket.pii): what it catches, what it leaves alone, and the rules using it."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.eticket import pii
from ledger.eticket.errors import PersonalData
from ledger.eticket.testing import make_world
from ledger.eticket.units import is_plate

ID_BASE = "11010519491231002"
ID_NUMBER = ID_BASE + pii.id_check_digit(ID_BASE)  # 11010519491231002X
VID = "LZZTC2026112320000000001"


def _luhn_complete(prefix: str) -> str:
    for d in "0123456789":
        if pii.luhn(prefix + d):
            return prefix + d
    raise AssertionError


CARD = _luhn_complete("622202123456789012")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"张三，身份证{ID_NUMBER}，电话13800138000，倾倒渣土", "id_number"),
        (ID_NUMBER.lower(), "id_number"),
        ("110105491231002", "id_number"),
        ("13800138000", "mobile"),
        ("联系 138 0013 8000", "mobile"),
        ("+86-138-0013-8000", "mobile"),
        ("8613800138000", "mobile"),
        ("008613800138000", "mobile"),
        ("１３８００１３８０００", "mobile"),
        ("zhangsan-13800138000", "mobile"),
        ("邮箱 zhang.san@example.com.cn", "email"),
        (CARD, "bank_card"),
        (f"卡号 {CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:16]} {CARD[16:]}", "bank_card"),
    ],
)
def test_finds_personal_data(text: str, kind: str) -> None:
    """ID numbers (18 with GB 11643 check digit, 15-digit old form), mobiles with prefixes and separators,
    full-width digits, e-mails and Luhn-valid card numbers are each recognised as their kind."""
    assert pii.find(text) == kind


@pytest.mark.parametrize(
    "text",
    [
        "渝A12345",
        "渝AD12345",
        VID,
        "ET202611232210054711",
        "ORG-001:T-2026-0001",
        "P-001-G1",
        "sha256:" + "1" * 64,
        "装载 12.5 立方米，2026-11-23 22:10 出场",
        ID_BASE + ("1" if pii.id_check_digit(ID_BASE) != "1" else "2"),  # wrong check digit
        "20261123221005471",  # 17 digits: a time stamp, no ID
        "23800138000",  # not a mobile prefix
        "138001380001",  # 12 digits
        _luhn_complete("202611232210054") + "1",  # 16 digits starting with 2: no card
        "巴福镇基层治理中心",
        "",
    ],
)
def test_leaves_non_personal_values_alone(text: str) -> None:
    """Plates, registry, ticket and violation ids, digests, quantities, dates and near-misses are not refused."""
    assert pii.find(text) is None


@given(st.integers(min_value=0, max_value=10**17 - 1))
def test_every_valid_18_digit_id_is_found(n: int) -> None:
    """Any 17 digits with a province code and a real birth date, completed with the check digit, is an ID."""
    body = f"{n:017d}"
    body = "50" + body[2:6] + "19900101" + body[14:]
    assert pii.find(f"号码{body}{pii.id_check_digit(body)}。") == "id_number"


_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
plates = st.builds(
    lambda p, a, rest: p + a + rest,
    st.sampled_from(_PROVINCES),
    st.sampled_from(_LETTERS),
    st.text(alphabet=_LETTERS + "0123456789", min_size=5, max_size=5),
).filter(is_plate)
stamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
generated_ids = st.builds(
    lambda prefix, t, seq: f"{prefix}{t:%Y%m%d%H%M%S}{seq:04d}",
    st.sampled_from(["ET", "PM", "PN", *["LZZTC", "WPYS", "CSXS", "YSTD"]]),
    stamps,
    st.integers(0, 9999),
)
registry_ids = st.builds(
    lambda prefix, n, sep: f"{prefix}{sep}{n:03d}",
    st.sampled_from(["ORG", "P", "S", "C", "TR", "DRV", "G", "CAM", "T"]),
    st.integers(0, 99999),
    st.sampled_from(["-", "_", ".", ":"]),
)
amounts = st.decimals(min_value=0, max_value=10**9, places=2).map(str)


@settings(max_examples=300)
@given(st.one_of(plates, generated_ids, registry_ids, amounts))
def test_no_false_positive_on_generated_values(value: str) -> None:
    """Plates, ids in the project's generated styles (prefix + time stamp + sequence), registry ids and
    money amounts never look like personal data."""
    assert pii.find(value) is None


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)), st.integers(0, 86399))
def test_no_false_positive_on_times(day: date, seconds: int) -> None:
    """ISO times as the payloads carry them never look like personal data."""
    t = datetime(day.year, day.month, day.day) + timedelta(seconds=seconds)
    assert pii.find(t.isoformat() + "+08:00") is None


def test_screen_names_the_field_not_the_value() -> None:
    """The refusal carries reason personal_data and the field's path; the value appears nowhere in it."""
    with pytest.raises(PersonalData) as info:
        pii.screen({"violation_id": VID, "measures": [{"kind": "warning", "note": f"身份证{ID_NUMBER}"}]})
    err = info.value
    assert (err.reason, err.field, err.kind, err.fields) == (
        "personal_data", "measures[0].note", "id_number", {"measures[0].note": "personal_data"})
    assert ID_NUMBER not in str(err)
    with pytest.raises(PersonalData) as info:
        pii.screen({"ticket_id": "T-1"}, "operator:zhangsan-13800138000")
    assert info.value.field == "actor"


def test_screen_skips_digests_plates_and_points() -> None:
    """Digest, plate and credit-code members and GPS points are not screened (they hold no personal data)."""
    pii.screen({"photo_digest": "sha256:" + "13800138000" + "0" * 53, "plate": "渝A12345",
                "points": [{"t": "2026-11-23T20:00:00+08:00", "lat": "29.6", "lon": "106.3", "speed_kmh": 0}]})


def test_rules_refuse_a_description_with_an_id_number() -> None:
    """Every node's rules refuse a violation report whose description holds an ID number, with personal_data,
    naming the field in the outcome message and never the number; the state is unchanged."""
    world = make_world()
    payload = {"violation_id": VID, "type": "other", "source": "patrol",
               "description": f"张三（身份证{ID_NUMBER}，电话13800138000）倾倒渣土"}
    out = world.submit("violation.report", payload, "operator:u1")
    assert out.code == "personal_data"
    assert "description" in out.message and ID_NUMBER not in out.message and "13800138000" not in out.message
    payload["description"] = "一辆渣土车倾倒渣土"
    assert world.submit("violation.report", payload, "operator:u1").ok


@pytest.mark.parametrize(
    ("type_", "payload"),
    [
        ("ticket.void", {"ticket_id": "T-404", "reason": "司机电话 13800138000"}),
        ("permit.revoke", {"permit_id": "PM-404", "reason": "联系 zhang@example.com"}),
        ("violation.resolve", {"violation_id": VID, "result": f"罚款已由卡 {CARD} 缴纳"}),
        ("registry.driver", {"driver_id": "13800138000", "company_id": "C-01", "person_hash": "sha256:" + "0" * 64}),
    ],
)
def test_rules_refuse_personal_data_in_any_type(type_: str, payload: dict[str, object]) -> None:
    """Reasons, results and ids of every transaction type are screened, before any state-dependent rule."""
    world = make_world()
    assert world.submit(type_, payload, "operator:u1").code == "personal_data"


def test_admission_refuses_personal_data_in_the_actor() -> None:
    """A node's admission refuses an actor whose user part is a phone number in clear."""
    world = make_world()
    tx = world.tx("registry.org", {"org_id": "ORG-NEW", "name": "新单位", "kind": "other"},
                  "operator:zhangsan-13800138000")
    with pytest.raises(PersonalData):
        world.machine.admit(tx, world.consortium)
