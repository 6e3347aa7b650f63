"""Work lists on the ledger's state (``ledger.eticket.lists``): keyset pages, tenant scope, filters, queues."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.eticket import lists, queries
from ledger.eticket.testing import World, make_world


def _world() -> World:
    """ORG-001 (P-001) with an approved permit and tickets on TR-1/TR-2 (C-01); ORG-002 (P-002) with a
    pending permit; violations on both projects and a penalty on TR-1."""
    w = make_world()
    w.approved_permit("PM-1")
    w.advance(60)
    w.apply_permit("PM-2", project="P-002", actor="contractor:ORG-002", companies=("C-02",))
    for i in range(5):
        w.advance(10)
        assert w.issue(f"T-{i}", truck="TR-1" if i % 2 else "TR-2").ok
    w.advance(10)
    w.ok("violation.report", {"violation_id": "FGBY20261123200100001", "type": "uncovered_load",
                              "source": "camera", "project_id": "P-001", "truck_id": "TR-1"})
    w.advance(10)
    w.ok("violation.report", {"violation_id": "FGBY20261123200100002", "type": "uncovered_load",
                              "source": "camera", "project_id": "P-002", "truck_id": "TR-3"})
    w.ok("violation.confirm", {"violation_id": "FGBY20261123200100001"})
    w.ok("penalty.record", {"penalty_id": "PN-1", "target_kind": "truck", "target_id": "TR-1",
                            "violation_ids": ["FGBY20261123200100001"], "amount_yuan": "500"},
         "enforcement:u1")
    return w


def _ids(page: dict[str, Any], field: str) -> list[str]:
    return [i[field] for i in page["items"]]


def _all(w: World, kind: str, field: str, *, limit: int, **kw: Any) -> list[str]:
    out: list[str] = []
    after = None
    while True:
        page = lists.page(w.machine, kind, after=after, limit=limit, **kw)
        out += _ids(page, field)
        if not page["more"]:
            return out
        after = page["last"]


def test_pages_cover_every_item_once_newest_first() -> None:
    """Pages of 2 walk the five tickets newest first, each exactly once; the last page says no more."""
    w = _world()
    assert _all(w, "ticket", "ticket_id", limit=2) == ["T-4", "T-3", "T-2", "T-1", "T-0"]
    last = lists.page(w.machine, "ticket", limit=5)
    assert last["more"] is False and last["last"] == [-w.machine.state.tables["ticket"]["T-0"].issued_at, "T-0"]


def test_items_arriving_between_pages_neither_lost_nor_repeated() -> None:
    """Tickets issued between two pages (newer: before the cursor) do not shift the old ones: the walk that
    began before them still sees each old ticket exactly once."""
    w = _world()
    first = lists.page(w.machine, "ticket", limit=2)
    for i in range(5, 8):
        w.advance(5)
        assert w.issue(f"T-{i}", truck="TR-2").ok
    rest: list[str] = []
    after = first["last"]
    while after is not None:
        page = lists.page(w.machine, "ticket", after=after, limit=2)
        rest += _ids(page, "ticket_id")
        after = page["last"] if page["more"] else None
    assert _ids(first, "ticket_id") + rest == ["T-4", "T-3", "T-2", "T-1", "T-0"]


def test_tenant_scope_of_contractor_and_company() -> None:
    """A contractor sees its own permits, projects, tickets and its projects' violations; a company its trucks'
    tickets, violations and penalties; neither sees the other tenant's, even when filtering for it."""
    m = _world().machine
    org1 = {"org": "ORG-001"}
    assert _ids(lists.page(m, "permit", scope=org1), "permit_id") == ["PM-1"]
    assert _ids(lists.page(m, "permit", scope={"org": "ORG-002"}), "permit_id") == ["PM-2"]
    assert _ids(lists.page(m, "project", scope=org1, order="oldest"), "project_id") == ["P-001"]
    assert _ids(lists.page(m, "violation", scope=org1), "violation_id") == ["FGBY20261123200100001"]
    assert lists.page(m, "violation", scope=org1, filters={"project_id": "P-002"})["items"] == []
    assert lists.page(m, "permit", scope=org1, filters={"project_id": "P-002"})["items"] == []
    c1 = {"company": "C-01"}
    assert sorted(_ids(lists.page(m, "ticket", scope=c1), "ticket_id")) == [f"T-{i}" for i in range(5)]
    assert lists.page(m, "ticket", scope={"company": "C-02"})["items"] == []
    assert _ids(lists.page(m, "penalty", scope=c1), "penalty_id") == ["PN-1"]
    assert lists.page(m, "penalty", scope={"company": "C-02"})["items"] == []
    assert _ids(lists.page(m, "penalty", scope=org1), "penalty_id") == ["PN-1"]  # for its project's violation
    assert lists.page(m, "permit", scope=c1)["items"] == []  # permits are the contractors' and staff's
    assert {t["company_id"] for t in lists.page(m, "truck", scope=c1)["items"]} == {"C-01"}


def test_filters_status_plate_project_period() -> None:
    """Filters combine: status, plate (an unknown plate finds nothing), project, and the period [since, until)."""
    w = _world()
    m = w.machine
    assert _ids(lists.page(m, "ticket", filters={"plate": "渝A12345"}), "ticket_id") == ["T-3", "T-1"]
    assert lists.page(m, "ticket", filters={"plate": "渝Z99999"})["items"] == []
    assert _ids(lists.page(m, "permit", filters={"status": "approved"}), "permit_id") == ["PM-1"]
    t2 = m.state.tables["ticket"]["T-2"].issued_at
    got = lists.page(m, "ticket", filters={"since": t2, "until": t2 + 20})
    assert _ids(got, "ticket_id") == ["T-3", "T-2"]
    assert _ids(lists.page(m, "violation", filters={"status": "reported", "project_id": "P-002"}),
                "violation_id") == ["FGBY20261123200100002"]


def test_awaiting_department_oldest_first_with_project_and_sites() -> None:
    """A department's queue holds the pending permits it has not decided, oldest first, with the project's
    name and place and the sites; a decision takes the permit off that department's queue only."""
    w = _world()
    w.advance(30)
    w.apply_permit("PM-3")
    q = lists.page(w.machine, "permit", filters={"awaiting_department": "zhujian"}, order="oldest")
    assert _ids(q, "permit_id") == ["PM-2", "PM-3"]
    assert q["items"][0]["project"]["name"] == "礼嘉商业中心" and q["items"][0]["sites"][0]["site_id"] == "S-001"
    assert w.decide("PM-2", "zhujian").ok
    assert _ids(lists.page(w.machine, "permit", filters={"awaiting_department": "zhujian"}, order="oldest"),
                "permit_id") == ["PM-3"]
    assert _ids(lists.page(w.machine, "permit", filters={"awaiting_department": "chengguan"}, order="oldest"),
                "permit_id") == ["PM-2", "PM-3"]


def test_credit_scoped_like_the_lists() -> None:
    """Credit scores: staff any; a company its own, its trucks'; a contractor its permits' trucks and companies;
    another tenant's answers None like an unknown id."""
    m = _world().machine
    assert lists.credit(m, "truck", "TR-3")["credit"] == 100  # type: ignore[index]
    assert lists.credit(m, "truck", "TR-1", scope={"company": "C-01"}) is not None
    assert lists.credit(m, "truck", "TR-3", scope={"company": "C-01"}) is None
    assert lists.credit(m, "company", "C-02", scope={"company": "C-01"}) is None
    assert lists.credit(m, "company", "C-01", scope={"org": "ORG-001"}) is not None
    assert lists.credit(m, "truck", "TR-3", scope={"org": "ORG-001"}) is None
    assert lists.credit(m, "truck", "nope") is None and lists.credit(m, "permit", "PM-1") is None


@pytest.mark.parametrize("kw", [{"kind": "nope"}, {"order": "sideways"}, {"limit": 0}, {"limit": 201},
                                {"after": ["x", "T-1"]}, {"after": [1]}, {"filters": {"colour": "red"}},
                                {"scope": {"planet": "mars"}}])
def test_bad_arguments_are_refused(kw: dict[str, Any]) -> None:
    """Arguments the API never sends are refused (the node answers 400 malformed through queries.list_page)."""
    m = _world().machine
    args: dict[str, Any] = {"kind": "ticket", **kw}
    with pytest.raises(lists.ListArgumentError):
        lists.page(m, args.pop("kind"), **args)
    with pytest.raises(TypeError):
        queries.list_page(m, **{"kind": "ticket", **kw})
