"""Work lists against the real stack (4 ledger nodes, gunicorn, fake WeChat): every role's pages, cursor
pagination while new tickets arrive, filters, an approver's queue, the operators' queues, credit scores, and
tenant safety (another tenant's items are never listed, filtered or read: their ids answer as unknown ones)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from ledger.core.encoding import CHINA_TZ
from miniprogram_stub.client import ApiClient

from .serve_fixtures import Stack, stack  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow]
TRUCKS = [(f"TR-8{i:03d}", f"渝D8{i:04d}") for i in range(16)]
OTHER_TRUCK = ("TR-7001", "渝E70001")


def now() -> datetime:
    return datetime.now(CHINA_TZ).replace(microsecond=0)


def call(s: Stack, method: str, path: str, role: str, body: Any = None, **kw: Any) -> requests.Response:
    return requests.request(method, s.api + path, json=body, headers=s.headers(role), timeout=60, **kw)


def get(s: Stack, path: str, role: str, **params: Any) -> requests.Response:
    return call(s, "GET", path, role, params=params)


def ok(resp: requests.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def apply(s: Stack, role: str, project: str, *, volume: str = "2000") -> dict[str, Any]:
    return dict(ok(call(s, "POST", "/api/v1/permits", role, {
        "project_id": project, "volume_m3": volume, "disposal_site_ids": ["S-003", "S-001"],
        "company_ids": ["C-01"], "valid_from": (now() - timedelta(hours=1)).isoformat(),
        "valid_to": (now() + timedelta(days=30)).isoformat()}), 201))


def approve(s: Stack, permit_id: str) -> None:
    for dept in s.demo["tokens"]["approvers"]:
        ok(call(s, "POST", f"/api/v1/permits/{permit_id}/decisions", f"approvers.{dept}",
                s.decision(dept, permit_id)))


@pytest.fixture(scope="module")
def world(stack: Stack) -> dict[str, Any]:  # noqa: F811
    """Trucks for C-01, another company C-02 with a truck, an approved permit of each contractor."""
    for tid, plate in TRUCKS:
        ok(call(stack, "POST", "/api/v1/registry/truck", "operator",
                {"truck_id": tid, "plate": plate, "company_id": "C-01", "capacity_m3": "18"}), 201)
    ok(call(stack, "POST", "/api/v1/registry/company", "operator", {"company_id": "C-02", "name": "重庆二运"}), 201)
    ok(call(stack, "POST", "/api/v1/registry/truck", "operator",
            {"truck_id": OTHER_TRUCK[0], "plate": OTHER_TRUCK[1], "company_id": "C-02", "capacity_m3": "18"}), 201)
    mine = apply(stack, "contractor", "P-001")
    theirs = apply(stack, "contractor_other", "P-002")
    approve(stack, mine["id"])
    approve(stack, theirs["id"])
    return {"mine": mine, "theirs": theirs, "free": list(TRUCKS)}


def issue(s: Stack, w: dict[str, Any], role: str = "contractor", permit: str = "mine") -> dict[str, Any]:
    _tid, plate = w["free"].pop(0)
    return dict(ok(call(s, "POST", "/api/v1/tickets", role, {
        "permit_id": w[permit]["id"], "truck_plate": plate, "disposal_site_id": "S-003", "volume_m3": "12"}), 201))


def walk(s: Stack, path: str, role: str, *, between: Any = None, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, page by page (``between(page_no)`` runs after each page)."""
    items: list[dict[str, Any]] = []
    cursor = None
    for page_no in range(100):
        body = ok(get(s, path, role, **params, **({"cursor": cursor} if cursor else {})))
        assert set(body) == {"items", "next"}
        items += body["items"]
        cursor = body["next"]
        if between is not None:
            between(page_no)
        if cursor is None:
            return items
    raise AssertionError("more than 100 pages")


def test_pages_lose_and_repeat_nothing_while_tickets_arrive(stack: Stack, world: dict[str, Any]) -> None:  # noqa: F811
    """Seven tickets walked three a page, newest first, while two more are issued between the pages: each of
    the seven is on exactly one page, and the walk ends with ``next: null``."""
    first = [issue(stack, world)["id"] for _ in range(7)]
    walked = walk(stack, "/api/v1/tickets", "contractor", limit=3,
                  between=lambda n: issue(stack, world) if n < 2 else None)
    ids = [t["id"] for t in walked]
    assert len(ids) == len(set(ids)), "an item was repeated"
    assert set(first) <= set(ids), "an item was lost"
    keys = [(-datetime.fromisoformat(t["valid_from"]).timestamp(), t["id"]) for t in walked]
    assert keys == sorted(keys)  # newest first, ties (one second) by id
    assert all("qr" not in t for t in walked) and walked[0]["project_name"]


def test_bad_limits_cursors_and_periods(stack: Stack, world: dict[str, Any]) -> None:  # noqa: F811
    """``limit`` outside 1..200 is 422; a cursor that is not ours, or one used with other filters or by another
    tenant, is 400 bad_cursor; ``from`` after ``to`` is 422 bad_period; awaiting=me without a queue is 422
    no_queue; messages in Chinese by default."""
    for limit in (0, 201, "many"):
        assert get(stack, "/api/v1/tickets", "contractor", limit=limit).status_code == 422
    page = ok(get(stack, "/api/v1/tickets", "contractor", limit=1))
    assert page["next"]
    bad = get(stack, "/api/v1/tickets", "contractor", cursor="garbage!")
    assert (bad.status_code, bad.json()["reason"]) == (400, "bad_cursor")
    other_filter = get(stack, "/api/v1/tickets", "contractor", cursor=page["next"], status="voided")
    assert (other_filter.status_code, other_filter.json()["reason"]) == (400, "bad_cursor")
    other_tenant = get(stack, "/api/v1/tickets", "contractor_other", cursor=page["next"])
    assert (other_tenant.status_code, other_tenant.json()["reason"]) == (400, "bad_cursor")
    other_list = get(stack, "/api/v1/permits", "contractor", cursor=page["next"])
    assert other_list.json()["reason"] == "bad_cursor"
    period = get(stack, "/api/v1/tickets", "contractor", **{"from": now().isoformat(),
                                                           "to": (now() - timedelta(days=1)).isoformat()})
    assert (period.status_code, period.json()["reason"]) == (422, "bad_period")
    zh = requests.get(f"{stack.api}/api/v1/permits", params={"awaiting": "me"}, timeout=30,
                      headers={"Authorization": stack.headers("contractor")["Authorization"]})
    assert (zh.status_code, zh.json()["reason"]) == (422, "no_queue")
    assert zh.json()["error"]["message"] == "该角色没有待办队列"


def test_filters_status_plate_project_period(stack: Stack, world: dict[str, Any]) -> None:  # noqa: F811
    """Tickets by status, by plate, by project and by period; the regulator filters across tenants."""
    t = issue(stack, world)
    voided = issue(stack, world)
    ok(call(stack, "POST", f"/api/v1/tickets/{voided['id']}/void", "contractor", {"reason": "车辆故障"}))
    by_status = walk(stack, "/api/v1/tickets", "contractor", status="voided", limit=200)
    assert voided["id"] in {x["id"] for x in by_status} and {x["status"] for x in by_status} == {"voided"}
    by_plate = ok(get(stack, "/api/v1/tickets", "contractor", plate=t["truck_plate"]))["items"]
    assert [x["id"] for x in by_plate] == [t["id"]]
    since = datetime.fromisoformat(t["valid_from"])
    window = ok(get(stack, "/api/v1/tickets", "regulator", **{"from": since.isoformat(),
                                                              "to": (since + timedelta(seconds=1)).isoformat()}))
    assert t["id"] in {x["id"] for x in window["items"]}
    assert all(since <= datetime.fromisoformat(x["valid_from"]) < since + timedelta(seconds=1)
               for x in window["items"])
    theirs = ok(get(stack, "/api/v1/tickets", "regulator", project_id="P-002"))["items"]
    assert all(x["project_id"] == "P-002" for x in theirs)
    projects = ok(get(stack, "/api/v1/projects", "regulator"))["items"]
    assert [p["project_id"] for p in projects][:2] == ["P-001", "P-002"]


def test_awaiting_me_is_the_departments_queue_oldest_first(stack: Stack, world: dict[str, Any]) -> None:  # noqa: F811
    """An approver's ``awaiting=me`` lists the pending permits its department has not decided, oldest first,
    with project name and location, volume, sites, trucks, application time and age; once it decides one, that
    one leaves its queue but stays in the other departments'."""
    a = apply(stack, "contractor", "P-001", volume="300")
    b = apply(stack, "contractor_other", "P-002", volume="400")
    queue = walk(stack, "/api/v1/permits", "approvers.zhujian", awaiting="me", limit=200)
    assert {a["id"], b["id"]} <= {p["id"] for p in queue}
    keys = [(datetime.fromisoformat(p["applied_at"]), p["id"]) for p in queue]
    assert keys == sorted(keys)  # oldest application first, ties (one second) by id
    item = next(p for p in queue if p["id"] == b["id"])
    assert item["project"]["name"] == "九龙坡区巴福镇道路改造工程" and item["project"]["location"]["lat"]
    assert item["volume_m3"] == "400" and {s["site_id"] for s in item["sites"]} == {"S-003", "S-001"}
    assert "truck_plates" in item and item["applied_at"].endswith("+08:00") and item["age_seconds"] >= 0
    assert item["status"] == "pending"
    ok(call(stack, "POST", f"/api/v1/permits/{a['id']}/decisions", "approvers.zhujian",
            stack.decision("zhujian", a["id"])))
    after = {p["id"] for p in walk(stack, "/api/v1/permits", "approvers.zhujian", awaiting="me", limit=200)}
    assert a["id"] not in after and b["id"] in after
    other = {p["id"] for p in walk(stack, "/api/v1/permits", "approvers.chengguan", awaiting="me", limit=200)}
    assert {a["id"], b["id"]} <= other
    assert world["mine"]["id"] not in other  # decided by every department


def test_tenant_safety_by_list_filter_and_id(stack: Stack, world: dict[str, Any]) -> None:  # noqa: F811
    """The other contractor never sees ORG-001's permits, tickets or projects, not by list, not by filtering
    for them, not by id (404 with exactly the body an unknown id gets); the other company sees none of
    C-01's tickets or credit scores."""
    t = issue(stack, world)
    issue(stack, world, "contractor_other", "theirs")
    for path, field in (("/api/v1/tickets", "project_id"), ("/api/v1/permits", "project_id"),
                        ("/api/v1/projects", "project_id")):
        items = walk(stack, path, "contractor_other", limit=200)
        assert items and {i[field] for i in items} == {"P-002"}, path
    for path in ("/api/v1/tickets", "/api/v1/permits"):
        assert ok(get(stack, path, "contractor_other", project_id="P-001"))["items"] == [], path
    assert ok(get(stack, "/api/v1/tickets", "contractor_other", plate=t["truck_plate"]))["items"] == []
    for path in (f"/api/v1/tickets/{t['id']}", f"/api/v1/permits/{world['mine']['id']}"):
        theirs = get(stack, path, "contractor_other")
        unknown = get(stack, path.rsplit("/", 1)[0] + "/ET20990101000000" + "0000", "contractor_other")
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json() == unknown.json()
    company = ApiClient(stack.api, token=stack.demo["tokens"]["company"])
    mine = {x["id"] for x in company.work_list("tickets", limit=2)}  # the client follows `next`
    assert t["id"] in mine and len(mine) > 2
    assert ok(get(stack, "/api/v1/tickets", "company_other"))["items"] == []
    trucks = walk(stack, "/api/v1/trucks", "company_other", limit=200)
    assert [x["truck_id"] for x in trucks] == [OTHER_TRUCK[0]] and trucks[0]["credit"] == 100
    theirs_credit = get(stack, "/api/v1/credit/truck/TR-0001", "company_other")
    unknown_credit = get(stack, "/api/v1/credit/truck/TR-NOPE", "company_other")
    assert theirs_credit.status_code == unknown_credit.status_code == 404
    assert theirs_credit.json() == unknown_credit.json()


def test_violations_penalties_and_credit_for_contractors_companies_and_staff(stack: Stack, world: dict[str, Any]) -> None:  # noqa: F811,E501
    """A violation on ORG-001's project and C-01's truck is in the operator's queue with its age; once
    confirmed it moves on in the queue, the truck's credit drops, and after a penalty the contractor and the
    company see the violation and the penalty — the other contractor and the other company see neither."""
    reported = ok(call(stack, "POST", "/api/v1/violations", "operator", {
        "type": "uncovered_load", "source": "camera", "plate": "渝A12345", "project_id": "P-001",
        "location": {"lat": 29.71, "lon": 106.53}}), 201)
    vid = reported["violation_id"]
    queue = walk(stack, "/api/v1/violations", "operator", awaiting="me", limit=200)
    item = next(v for v in queue if v["violation_id"] == vid)
    assert item["state"] == "reported" and item["age_seconds"] >= 0
    keys = [(datetime.fromisoformat(v["reported_at"]), v["violation_id"]) for v in queue]
    assert keys == sorted(keys)  # oldest first
    before = ok(get(stack, "/api/v1/credit/truck/TR-0001", "regulator"))["credit"]
    ok(call(stack, "POST", f"/api/v1/violations/{vid}/confirm", "enforcement", stack.step(vid, "confirm", "非误报")))
    confirmed = ok(get(stack, "/api/v1/violations", "operator", awaiting="me", status="confirmed", limit=200))
    assert vid in {v["violation_id"] for v in confirmed["items"]}
    assert vid in {v["violation_id"] for v in walk(stack, "/api/v1/violations", "enforcement", awaiting="me",
                                                    limit=200)}
    assert ok(get(stack, "/api/v1/credit/truck/TR-0001", "company"))["credit"] < before
    ok(call(stack, "POST", "/api/v1/penalties", "enforcement", stack.penalty({
        "penalty_id": "PN-LISTS-1", "target_kind": "truck", "target_id": "TR-0001", "violation_ids": [vid],
        "amount_yuan": "500"})), 201)
    for role in ("contractor", "company"):
        assert vid in {v["violation_id"] for v in walk(stack, "/api/v1/violations", role, limit=200)}, role
        pens = walk(stack, "/api/v1/penalties", role, limit=200)
        assert any(vid in p["violation_ids"] for p in pens), role
    for role in ("contractor_other", "company_other"):
        assert vid not in {v["violation_id"] for v in walk(stack, "/api/v1/violations", role, limit=200)}, role
        assert not any(vid in p["violation_ids"] for p in walk(stack, "/api/v1/penalties", role, limit=200))
    assert ok(get(stack, "/api/v1/violations", "contractor_other", project_id="P-001"))["items"] == []
    truck = next(x for x in walk(stack, "/api/v1/trucks", "company", limit=200) if x["truck_id"] == "TR-0001")
    assert truck["credit"] < before and truck["company_credit"] is not None
    for kind, key in (("company", "C-01"), ("truck", "TR-0001")):
        assert ok(get(stack, f"/api/v1/credit/{kind}/{key}", "contractor"))["id"] == key
    assert get(stack, "/api/v1/credit/truck/TR-0001", "exit_gate").status_code == 403


def test_lists_are_in_the_openapi_document(stack: Stack) -> None:  # noqa: F811
    """Every list is a GET in /api/openapi.json with its filters, limit and cursor, and /api/docs shows it."""
    spec = requests.get(f"{stack.api}/api/openapi.json", timeout=10).json()
    for path in ("/permits", "/tickets", "/projects", "/trucks", "/violations", "/penalties"):
        op = spec["paths"][f"/api/v1{path}"]["get"]
        names = {p["name"] for p in op["parameters"]}
        assert {"limit", "cursor"} <= names, path
        assert "200" in op["responses"], path
    assert {"from", "to", "awaiting", "status", "plate"} <= {
        p["name"] for p in spec["paths"]["/api/v1/permits"]["get"]["parameters"]}
    assert "post" in spec["paths"]["/api/v1/permits"]
    assert "/api/v1/credit/{kind}/{key}" in spec["paths"]
    assert "/api/v1/trucks" in requests.get(f"{stack.api}/api/docs", timeout=10).text


def test_driver_bound_by_company_sees_its_trucks_tickets_and_qr(stack: Stack, world: dict[str, Any]) -> None:  # noqa: F811
    """A transport company binds a driver's WeChat openid to one of its trucks; the driver signs in with WeChat
    (role driver) and lists exactly that truck's tickets, reads one with its QR and the QR PNG; another truck's
    ticket answers as an unknown one.  A company cannot bind another company's truck (404 as unknown) nor take
    over a contractor's openid (409 openid_taken)."""
    t = issue(stack, world)
    other = issue(stack, world)
    bound = call(stack, "POST", "/api/v1/drivers/bind", "company",
                 {"openid": "drv-openid-1", "truck_plate": t["truck_plate"], "name": "张师傅"})
    assert ok(bound, 201)["role"] == "driver"
    login = ok(requests.post(f"{stack.api}/api/v1/auth/wechat", json={"code": "test-drv-openid-1"}, timeout=30))
    assert login["role"] == "driver"
    h = {"Authorization": f"Bearer {login['token']}"}
    page = ok(requests.get(f"{stack.api}/api/v1/tickets", headers=h, timeout=30))
    assert [x["id"] for x in page["items"]] == [t["id"]] and page["next"] is None
    one = ok(requests.get(f"{stack.api}/api/v1/tickets/{t['id']}", headers=h, timeout=30))
    assert one["qr"] == t["qr"]
    png = requests.get(f"{stack.api}/api/v1/tickets/{t['id']}/qr.png", headers=h, timeout=30)
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    theirs = requests.get(f"{stack.api}/api/v1/tickets/{other['id']}", headers=h, timeout=30)
    unknown = requests.get(f"{stack.api}/api/v1/tickets/ET209901010000000000", headers=h, timeout=30)
    assert theirs.status_code == unknown.status_code == 404 and theirs.json() == unknown.json()
    assert requests.get(f"{stack.api}/api/v1/permits", headers=h, timeout=30).status_code == 403
    foreign = call(stack, "POST", "/api/v1/drivers/bind", "company_other",
                   {"openid": "drv-openid-2", "truck_plate": t["truck_plate"]})
    assert (foreign.status_code, foreign.json()["reason"]) == (404, "unknown_truck")
    taken = call(stack, "POST", "/api/v1/drivers/bind", "company",
                 {"openid": "demo-openid-org001", "truck_plate": t["truck_plate"]})
    assert (taken.status_code, taken.json()["reason"]) == (409, "openid_taken")
    moved = call(stack, "POST", "/api/v1/drivers/bind", "company",
                 {"openid": "drv-openid-1", "truck_plate": other["truck_plate"]})
    assert ok(moved, 201)["truck_plate"] == other["truck_plate"]


def test_company_unbinds_a_driver_and_the_drivers_logins_end_at_once(stack: Stack, world: dict[str, Any]) -> None:  # noqa: F811
    """A company removes a driver who left: the driver's live token is refused at once (401 token_revoked) and a
    new WeChat login is refused (not registered); another company cannot remove it (404 unknown_driver, as an
    openid never bound), and removing it twice answers the same 404."""
    t = issue(stack, world)
    bind = {"openid": "drv-openid-9", "truck_plate": t["truck_plate"]}
    ok(call(stack, "POST", "/api/v1/drivers/bind", "company", bind), 201)
    login = ok(requests.post(f"{stack.api}/api/v1/auth/wechat", json={"code": "test-drv-openid-9"}, timeout=30))
    h = {"Authorization": f"Bearer {login['token']}"}
    assert requests.get(f"{stack.api}/api/v1/tickets", headers=h, timeout=30).status_code == 200
    foreign = call(stack, "POST", "/api/v1/drivers/unbind", "company_other", {"openid": "drv-openid-9"})
    never = call(stack, "POST", "/api/v1/drivers/unbind", "company", {"openid": "drv-never-bound"})
    assert (foreign.status_code, foreign.json()["reason"]) == (never.status_code, never.json()["reason"]) == (
        404, "unknown_driver")
    assert ok(call(stack, "POST", "/api/v1/drivers/unbind", "company", {"openid": "drv-openid-9"})) == {
        "unbound": True, "tokens_revoked": 1}
    after = requests.get(f"{stack.api}/api/v1/tickets", headers=h, timeout=30)
    assert (after.status_code, after.json()["reason"]) == (401, "token_revoked")
    again = requests.post(f"{stack.api}/api/v1/auth/wechat", json={"code": "test-drv-openid-9"}, timeout=30)
    assert (again.status_code, again.json()["reason"]) == (403, "not_registered")
    twice = call(stack, "POST", "/api/v1/drivers/unbind", "company", {"openid": "drv-openid-9"})
    assert (twice.status_code, twice.json()["reason"]) == (404, "unknown_driver")
