"""People are told (issue 13 part 3), on the served stack (4 nodes, gunicorn, fake WeChat, the notifier):
WeChat subscribe messages to a contractor's openid in the real API's shape, staff server-sent events that
resume from Last-Event-ID, and an outbox that loses and repeats nothing when the notifier is killed."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from ledger.core.encoding import CHINA_TZ

from .serve_fixtures import Stack, stack  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow]
OPENID = "demo-openid-org001"  # bound to the contractor ORG-001 by the demo seed
WAIT_S = 90.0


def now() -> datetime:
    return datetime.now(CHINA_TZ).replace(microsecond=0)


def call(s: Stack, method: str, path: str, role: str, body: Any = None, *, lang: str = "en",
         **kw: Any) -> requests.Response:
    return requests.request(method, s.api + path, json=body, headers=s.headers(role, lang=lang), timeout=60, **kw)


def until(what: str, fn: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {timeout:.0f} s: {what}")
        time.sleep(0.3)


def wechat(s: Stack) -> list[dict[str, Any]]:
    return list(requests.get(f"{s.demo['wechat']}/test/messages", timeout=10).json()["messages"])


def caught_up(s: Stack) -> bool:
    """The notifier has written every final block's notifications and sent every WeChat message."""
    st = call(s, "GET", "/api/v1/notifications/status", "operator").json()
    return st["lag_blocks"] == 0 and st["wechat"]["pending"] == 0


def about(messages: list[dict[str, Any]], subject: str, openid: str = OPENID) -> list[dict[str, Any]]:
    return [m for m in messages if m["touser"] == openid and m["data"]["character_string2"]["value"] == subject]


@pytest.fixture(scope="module")
def login(stack: Stack) -> dict[str, Any]:  # noqa: F811
    """The contractor logs in with WeChat once (the fake now knows its openid, as the real one would)."""
    r = requests.post(f"{stack.api}/api/v1/auth/wechat", json={"code": stack.demo["contractor_wechat_code"]},
                      timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def apply(s: Stack, plates: list[str]) -> str:
    r = call(s, "POST", "/api/v1/permits", "contractor", {
        "project_id": "P-001", "volume_m3": "300", "disposal_site_ids": ["S-003"], "truck_plates": plates,
        "valid_from": (now() - timedelta(hours=1)).isoformat(), "valid_to": (now() + timedelta(days=10)).isoformat()})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def approve(s: Stack, permit_id: str) -> None:
    for dept in s.demo["tokens"]["approvers"]:
        r = call(s, "POST", f"/api/v1/permits/{permit_id}/decisions", f"approvers.{dept}",
                 s.decision(dept, permit_id))
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def permit(stack: Stack, login: dict[str, Any]) -> str:  # noqa: F811
    pid = apply(stack, ["渝A23456"])
    approve(stack, pid)
    return pid


def test_permit_approval_sends_one_subscribe_message_in_the_real_shape(stack: Stack, permit: str) -> None:  # noqa: F811
    """Approved by every department, the permit yields exactly one subscribe message to the contractor's
    openid: touser, template_id, page, data {keyword: {value}} within WeChat's limits, miniprogram_state,
    lang; Chinese by default; still one after the notifier has caught up."""
    got = until("the approval message", lambda: about(wechat(stack), permit))
    until("the notifier caught up", lambda: caught_up(stack))
    msgs = about(wechat(stack), permit)
    assert len(msgs) == 1, msgs
    m = msgs[0]
    assert set(m) == {"touser", "template_id", "page", "data", "miniprogram_state", "lang", "received_at"}
    assert m["touser"] == OPENID and m["template_id"] and m["page"].endswith(f"?id={permit}")
    assert m["lang"] == "zh_CN" and m["miniprogram_state"] in ("developer", "trial", "formal")
    assert m["data"]["thing1"]["value"] == "处置核准已批准"
    assert all(set(v) == {"value"} for v in m["data"].values())
    assert len(m["data"]["thing1"]["value"]) <= 20 and "年" in m["data"]["time3"]["value"]
    assert got[0]["data"] == m["data"]
    # the contractor's own list (any authenticated user): the same event, English on request, +08:00
    items = call(stack, "GET", "/api/v1/notifications", "contractor").json()["items"]
    mine = [i for i in items if i["subject_id"] == permit]
    assert [i["kind"] for i in mine] == ["permit_approved"] and mine[0]["title"] == "Permit approved"
    assert mine[0]["time"].endswith("+08:00")
    other = call(stack, "GET", "/api/v1/notifications", "contractor_other").json()["items"]
    assert not [i for i in other if i["subject_id"] == permit]


def test_violation_on_a_truck_reaches_its_projects_contractor(stack: Stack, permit: str) -> None:  # noqa: F811
    """An uncovered load refused at the exit gate: the contractor of the ticket's project is told the truck
    was held (and why) and of the violation raised on the truck, by WeChat and in its list."""
    r = call(stack, "POST", "/api/v1/tickets", "contractor", {"permit_id": permit, "truck_plate": "渝A23456",
                                                            "disposal_site_id": "S-003", "volume_m3": "12"})
    assert r.status_code == 201, r.text
    t = r.json()
    ex = call(stack, "POST", "/api/v1/gate/exit", "exit_gate", stack.exit(t["qr"], "渝A23456", covered=False))
    assert ex.status_code == 422 and ex.json()["reason"] == "uncovered_load", ex.text
    vid = ex.json()["fields"]["violation_id"]
    got = until("the violation message", lambda: about(wechat(stack), str(vid)))
    assert len(got) == 1 and got[0]["touser"] == OPENID
    held = until("the held message", lambda: about(wechat(stack), t["id"]))
    assert len(held) == 1 and "未密闭" in held[0]["data"]["thing4"]["value"]
    items = call(stack, "GET", "/api/v1/notifications", "contractor").json()["items"]
    kinds = {i["kind"] for i in items if t["id"] in (i["subject_id"], i["facts"].get("ticket_id"))}
    assert {"gate_held", "violation_raised"} <= kinds


class Sse:
    """A server-sent event stream read in a thread: ``(id, event, data)`` frames."""

    def __init__(self, s: Stack, role: str, last_id: int | None) -> None:
        h = s.headers(role)
        if last_id is not None:
            h["Last-Event-ID"] = str(last_id)
        self.resp = requests.get(f"{s.api}/api/v1/notifications/stream", headers=h, stream=True, timeout=60)
        assert self.resp.status_code == 200 and self.resp.headers["Content-Type"].startswith("text/event-stream")
        self.frames: list[tuple[int, str, dict[str, Any]]] = []
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            self._frames()
        except (requests.RequestException, AttributeError, ValueError):
            if not self.closed:  # closing the response under the reader ends it with one of these
                raise

    def _frames(self) -> None:
        frame: dict[str, str] = {}
        for line in self.resp.iter_lines(decode_unicode=True):
            if line == "":
                if "id" in frame:
                    self.frames.append((int(frame["id"]), frame["event"], json.loads(frame["data"])))
                frame = {}
            elif not line.startswith(":"):
                k, _, v = line.partition(": ")
                frame[k] = v

    def close(self) -> None:
        self.closed = True
        self.resp.close()


def test_staff_stream_gets_a_penalty_and_resumes_from_last_event_id(stack: Stack, permit: str) -> None:  # noqa: F811
    """An enforcement officer's stream receives a recorded penalty; reconnecting with the Last-Event-ID of
    an earlier event gets exactly the events after it, in order, none lost or repeated."""
    until("the notifier caught up", lambda: caught_up(stack))
    listed = call(stack, "GET", "/api/v1/notifications?limit=200", "enforcement").json()["items"]
    before = listed[0]["id"] if listed else 0
    live = Sse(stack, "enforcement", before)
    pids = [f"PN-NOTIFY-{i}-{int(time.time())}" for i in range(3)]
    for pid in pids:
        r = call(stack, "POST", "/api/v1/penalties", "enforcement", stack.penalty({
            "penalty_id": pid, "target_kind": "company", "target_id": "C-01", "amount_yuan": "2000"}))
        assert r.status_code in (200, 201), r.text
    until("three penalties on the stream",
          lambda: {f[2]["subject_id"] for f in live.frames if f[1] == "penalty_recorded"} >= set(pids))
    live.close()
    ids = [f[0] for f in live.frames]
    assert ids == sorted(set(ids)) and ids[0] > before
    first = next(f for f in live.frames if f[2]["subject_id"] == pids[0])
    assert first[2]["title"] == "Penalty recorded" and first[2]["time"].endswith("+08:00")
    again = Sse(stack, "enforcement", first[0])
    until("the stream after the first penalty", lambda: {f[2]["subject_id"] for f in again.frames} >= set(pids[1:]))
    again.close()
    resumed = [f[0] for f in again.frames]
    assert resumed[: len([i for i in ids if i > first[0]])] == [i for i in ids if i > first[0]]
    assert len(resumed) == len(set(resumed)) and min(resumed) > first[0]
    fresh = call(stack, "GET", "/api/v1/notifications/stream", "enforcement", stream=True)  # from now on
    assert fresh.status_code == 200
    fresh.close()
    bad = requests.get(f"{stack.api}/api/v1/notifications/stream", timeout=10,
                       headers={**stack.headers("enforcement"), "Last-Event-ID": "x"})
    assert bad.status_code == 422 and bad.json()["reason"] == "invalid_request"


def test_notifier_killed_midway_loses_and_repeats_nothing(stack: Stack, login: dict[str, Any]) -> None:  # noqa: F811
    """With WeChat failing (retryable errcode -1) the notifier retries with backoff; killed (SIGKILL) while
    messages are pending and blocks are unread, it is started again and every rejection reaches the
    contractor exactly once."""
    until("the notifier caught up", lambda: caught_up(stack))
    requests.post(f"{stack.demo['wechat']}/test/fail", json={"count": 4, "errcode": -1}, timeout=10)
    permits = [apply(stack, ["渝A23456"]) for _ in range(4)]
    dept = next(iter(stack.demo["tokens"]["approvers"]))
    for pid in permits[:2]:
        r = call(stack, "POST", f"/api/v1/permits/{pid}/decisions", f"approvers.{dept}",
                 stack.decision(dept, pid, "reject", "材料不全"))
        assert r.status_code == 200, r.text
    until("a failed send is recorded",
          lambda: call(stack, "GET", "/api/v1/notifications/status", "operator").json()["last_send_error"])
    old = int((stack.var / "notify.pid").read_text())
    for pid in permits[2:]:  # blocks the killed notifier has not read yet
        r = call(stack, "POST", f"/api/v1/permits/{pid}/decisions", f"approvers.{dept}",
                 stack.decision(dept, pid, "reject", "材料不全"))
        assert r.status_code == 200, r.text
    os.kill(old, signal.SIGKILL)
    until("the notifier started again", lambda: int((stack.var / "notify.pid").read_text() or 0) not in (0, old))
    until("every rejection told", lambda: all(about(wechat(stack), p) for p in permits))
    until("the notifier caught up", lambda: caught_up(stack))
    msgs = wechat(stack)
    assert [len(about(msgs, p)) for p in permits] == [1, 1, 1, 1]
    assert {m["data"]["thing1"]["value"] for p in permits for m in about(msgs, p)} == {"处置核准被驳回"}
    st = call(stack, "GET", "/api/v1/notifications/status", "operator").json()
    assert st["wechat"]["failed"] == 0 and st["error"] is None
