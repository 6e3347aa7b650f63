"""What crosses the work lists' seam (``views/lists`` → ``ListService`` → ``adapter/lists``): the query
schemas' loaded data and the pages answered."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict


class ListQuery(TypedDict, total=False):
    """``GET /api/v1/<list>`` query (``ticket_api.schemas.lists``); each list declares the filters it takes.

    ``since``/``until`` are the query's ``from``/``to``; ``awaiting`` is ``"me"`` for the caller's queue."""

    limit: int
    cursor: str
    awaiting: str
    status: str
    type: str
    project_id: str
    permit_id: str
    ticket_id: str
    truck_id: str
    plate: str
    company_id: str
    site_id: str
    town: str
    district: str
    target_kind: str
    target_id: str
    violation_id: str
    since: datetime
    until: datetime


class Page(TypedDict):
    """One page of a work list: ``next`` is the cursor of the following page, None on the last."""

    items: list[dict[str, Any]]
    next: str | None


class Credit(TypedDict):
    """``GET /api/v1/credit/{kind}/{id}``."""

    kind: str
    id: str
    credit: int
    suspended_until: str | None
    company_id: str | None
