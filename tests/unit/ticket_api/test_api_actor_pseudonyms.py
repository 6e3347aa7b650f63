"""Ledger actors the API writes: every user part a keyed pseudonym, roles and tenants readable, nothing the
personal-data screen would refuse."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.core.crypto import PrivateKey
from ledger.eticket import pii
from ledger.eticket.errors import PersonalData
from ticket_api.adapter.gateway import Gateway, actor_of, pseudonym, pseudonym_key
from ticket_api.tokens import Principal

KEY = PrivateKey.generate()
SECRET = pseudonym_key(KEY)


def who(role: str, tenant: str, subject: str) -> Principal:
    return Principal(token_id="t", role=role, tenant=tenant, subject=subject, expires_at=datetime.now(UTC))


@pytest.mark.parametrize(
    ("role", "tenant", "prefix"),
    [("operator", "CG", "operator:"), ("enforcement", "chengguan", "enforcement:chengguan:"),
     ("approver", "zhujian", "approver:zhujian:")],
)
def test_staff_subjects_are_pseudonymous(role: str, tenant: str, prefix: str) -> None:
    """A staff subject such as zhangsan-13800138000 goes on the chain as u + 16 letters after the readable
    kind and tenant, never in clear; the actor passes the personal-data screen."""
    actor = actor_of(who(role, tenant, "zhangsan-13800138000"), SECRET)
    assert actor.startswith(prefix)
    user = actor.removeprefix(prefix)
    assert len(user) == 17 and user[0] == "u" and set(user[1:]) <= set("abcdefghijklmnop")
    assert "zhangsan" not in actor and "138" not in actor
    pii.screen({}, actor)


def test_wechat_and_staff_subjects_use_the_same_scheme() -> None:
    """wx: subjects and staff subjects are pseudonymised the same way: one function of the subject."""
    assert actor_of(who("operator", "CG", "wx:o6_bmjrPTlm6_2sgVt7hMZOPfL2M"), SECRET) == (
        "operator:" + pseudonym(SECRET, "wx:o6_bmjrPTlm6_2sgVt7hMZOPfL2M"))


def test_pseudonyms_are_stable_per_gateway_key_and_keyed() -> None:
    """The same subject gives the same pseudonym for the same gateway key (every worker agrees), another
    pseudonym under another key, and is not the plain hash of the subject."""
    again = pseudonym_key(PrivateKey.from_pem(KEY.to_pem()))  # another worker reading the same key file
    assert pseudonym(again, "zhangsan") == pseudonym(SECRET, "zhangsan")
    assert pseudonym(pseudonym_key(PrivateKey.generate()), "zhangsan") != pseudonym(SECRET, "zhangsan")
    assert pseudonym(SECRET, "zhangsan") != pseudonym(SECRET, "lisi")


@given(st.text(min_size=1, max_size=80))
def test_no_pseudonym_looks_like_personal_data(subject: str) -> None:
    """Whatever the subject, its pseudonym holds no digit and so never trips the screen."""
    assert pii.find(pseudonym(SECRET, subject)) is None


def test_the_gateway_refuses_personal_data_before_signing() -> None:
    """The gateway runs the rules' screen before it signs: a payload with a mobile number raises
    PersonalData (reason personal_data) naming the field, and nothing is signed."""
    gw = Gateway(key=KEY, client=None)  # type: ignore[arg-type]
    with pytest.raises(PersonalData) as info:
        gw.sign(type="ticket.void", payload={"ticket_id": "T-1", "reason": "司机 13800138000"},
                actor=gw.actor(who("operator", "CG", "op-1")), now=datetime.now(UTC))
    assert (info.value.reason, info.value.field) == ("personal_data", "reason")
