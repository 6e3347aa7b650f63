"""The fake WeChat server's access tokens and subscribe messages, validated like the real API."""

from __future__ import annotations

from typing import Any

from miniprogram_stub.wechat import DEFAULT_APPID, DEFAULT_SECRET, create_wechat_app

GOOD: dict[str, Any] = {"touser": "o-1", "template_id": "tmpl-penalty", "page": "pages/penalty/detail?id=PN1",
                        "data": {"thing1": {"value": "处罚决定已记录"}, "character_string2": {"value": "PN1"},
                                 "time3": {"value": "2026年12月02日 21:00"}},
                        "miniprogram_state": "formal", "lang": "zh_CN"}


def test_token_then_send_is_recorded_and_bad_ones_get_their_errcode() -> None:
    """A token needs the app's secret (40125); a send needs a valid token (40001), an openid that logged in
    (40003), data within the keyword limits (47003); accepted messages are listed; /test/fail fails the
    next sends with the given errcode."""
    c = create_wechat_app().test_client()
    assert c.get("/cgi-bin/token", query_string={"grant_type": "client_credential", "appid": DEFAULT_APPID,
                                                  "secret": "x"}).get_json()["errcode"] == 40125
    tok = c.post("/cgi-bin/stable_token", json={"grant_type": "client_credential", "appid": DEFAULT_APPID,
                                                "secret": DEFAULT_SECRET}).get_json()["access_token"]

    def send(body: Any, token: str = tok) -> int:
        return int(c.post("/cgi-bin/message/subscribe/send", query_string={"access_token": token},
                          json=body).get_json()["errcode"])

    assert send(GOOD, "nope") == 40001
    assert send(GOOD) == 40003
    c.get("/sns/jscode2session", query_string={"appid": DEFAULT_APPID, "secret": DEFAULT_SECRET,
                                               "js_code": "test-o-1", "grant_type": "authorization_code"})
    assert send({**GOOD, "data": {"thing1": {"value": "x" * 21}}}) == 47003
    assert send({**GOOD, "data": {"time3": {"value": "tomorrow"}}}) == 47003
    assert send({**GOOD, "template_id": ""}) == 40037
    c.post("/test/fail", json={"count": 1, "errcode": -1})
    assert send(GOOD) == -1
    assert send(GOOD) == 0
    [m] = c.get("/test/messages").get_json()["messages"]
    assert m["touser"] == "o-1" and m["data"] == GOOD["data"]
