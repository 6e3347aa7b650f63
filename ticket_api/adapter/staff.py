"""Departments, operators, enforcement and regulators on the ledger: registry, violations, penalties, sites,
statistics, chain health and the audit."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import Forbidden, NotFound
from ..services import Json, Pending, Result, Submission
from ..tokens import Principal
from .gateway import Gateway, actor_of, iso, new_id

Clock = Callable[[], datetime]
REGISTRY_KINDS = {"org": "org_id", "project": "project_id", "site": "site_id", "company": "company_id",
                  "truck": "truck_id", "driver": "driver_id"}
STEPS = ("confirm", "dismiss", "dispatch", "resolve")
#: Violation id prefixes (docs/ETICKET.md "Violations").
PREFIX = {"no_ticket": "WPYS", "unapproved_disposal": "LZZTC", "uncovered_load": "FGBY", "overloaded": "CZYS",
          "spilling": "SLWR", "speeding": "CSXS", "off_route": "PLXS", "suspicious_stop": "YCTK",
          "suspected_dumping": "YSTD", "other": "QTSJ"}


def _epoch(t: datetime | None) -> int | None:
    return None if t is None else int(t.timestamp())


class LedgerStaff:
    """What staff need beyond permits: the registry, violations, penalties, site load, statistics, health."""

    def __init__(self, *, gateway: Gateway, clock: Clock, local_consortium: Path | None = None) -> None:
        self.gw = gateway
        self.clock = clock
        self.local_consortium = local_consortium

    def _submit(self, principal: Principal, type: str, payload: dict[str, Any], sub: Submission) -> Pending | None:
        now = self.clock()
        if type != "system.tick":
            payload.setdefault("time", iso(now))
        fin = self.gw.submit(type=type, payload=payload, actor=actor_of(principal), now=now, wait=sub.wait)
        return None if sub.wait else Pending(fin.tx_id)

    # -- registry --------------------------------------------------------------
    def register(self, principal: Principal, kind: str, data: Mapping[str, Any], sub: Submission) -> Result:
        """``registry.<kind>``: the payload is the ledger's own (docs/ETICKET.md "Registry")."""
        if kind not in REGISTRY_KINDS:
            raise NotFound(f"no registry kind {kind}")
        payload = {k: v for k, v in data.items() if k != "time"}
        pending = self._submit_registry(principal, kind, payload, sub)
        if pending is not None:
            return pending
        key = str(payload[REGISTRY_KINDS[kind]])
        found = self.gw.query(kind, **{REGISTRY_KINDS[kind]: key}) if kind in ("project", "site", "truck") else None
        return {"kind": kind, "id": key, **(found or {})}

    def _submit_registry(self, principal: Principal, kind: str, payload: dict[str, Any],
                         sub: Submission) -> Pending | None:
        now = self.clock()
        fin = self.gw.submit(type=f"registry.{kind}", payload=payload, actor=actor_of(principal), now=now,
                             wait=sub.wait)
        return None if sub.wait else Pending(fin.tx_id)

    # -- violations ------------------------------------------------------------
    def violations(self, principal: Principal, filters: Mapping[str, Any]) -> Json:
        args = {k: v for k, v in filters.items() if v is not None and k not in ("since", "until")}
        args.update({k: _epoch(filters.get(k)) for k in ("since", "until") if filters.get(k) is not None})
        return {"violations": self.gw.query("violations", **args)}

    def violation(self, principal: Principal, violation_id: str) -> Json:
        v = self.gw.query("violation", violation_id=violation_id)
        if v is None:
            raise NotFound("no such violation")
        return dict(v)

    def report_violation(self, principal: Principal, data: Mapping[str, Any], sub: Submission) -> Result:
        at = data.get("time") or self.clock()
        payload = {k: v for k, v in data.items() if v is not None}
        payload["time"] = iso(at)
        payload.setdefault("violation_id", new_id(PREFIX.get(str(data["type"]), "QTSJ"), at, digits=5))
        if "location" in payload:
            payload["location"] = {k: round(float(payload["location"][k]), 6) for k in ("lat", "lon")}
        pending = self._submit(principal, "violation.report", payload, sub)
        return pending or self.violation(principal, payload["violation_id"])

    def violation_step(self, principal: Principal, violation_id: str, step: str, data: Mapping[str, Any],
                       sub: Submission) -> Result:
        if step not in STEPS:
            raise NotFound(f"no step {step}")
        payload = {"violation_id": violation_id, **{k: v for k, v in data.items() if v is not None}}
        pending = self._submit(principal, f"violation.{step}", payload, sub)
        return pending or self.violation(principal, violation_id)

    # -- penalties -------------------------------------------------------------
    def record_penalty(self, principal: Principal, data: Mapping[str, Any], sub: Submission) -> Result:
        at = self.clock()
        payload = {k: (str(v) if k == "amount_yuan" else v) for k, v in data.items() if v is not None}
        payload.setdefault("penalty_id", new_id("PN", at))
        pending = self._submit(principal, "penalty.record", payload, sub)
        if pending is not None:
            return pending
        found = self.gw.query("penalties", target_kind=payload["target_kind"], target_id=payload["target_id"])
        return next(p for p in found if p["penalty_id"] == payload["penalty_id"])

    def penalties(self, principal: Principal, filters: Mapping[str, Any]) -> Json:
        return {"penalties": self.gw.query("penalties", **{k: v for k, v in filters.items() if v is not None})}

    # -- sites and statistics --------------------------------------------------
    def sites(self, principal: Principal) -> Json:
        return {"sites": self.gw.query("sites")}

    def site(self, principal: Principal, site_id: str) -> Json:
        s = self.gw.query("site", site_id=site_id)
        if s is None:
            raise NotFound("no such site")
        return dict(s)

    def recommend(self, principal: Principal, params: Mapping[str, Any]) -> Json:
        project = self.gw.query("project", project_id=params["project_id"])
        if project is None:
            raise NotFound("no such project")
        if principal.role == "contractor" and project["contractor_org_id"] != principal.tenant:
            raise NotFound("no such project")
        kinds = params.get("kinds") or None
        return {"project_id": params["project_id"], "volume_m3": str(params["volume_m3"]),
                "sites": self.gw.query("recommend_sites", project_id=params["project_id"],
                                       volume_m3=str(params["volume_m3"]), kinds=kinds,
                                       exclude=params.get("exclude"), limit=int(params.get("limit") or 5))}

    def statistics(self, principal: Principal) -> Json:
        return dict(self.gw.query("statistics"))

    def chain_status(self, principal: Principal) -> Json:
        """Every node's height, head, final height and divergences, and whether they agree."""
        nodes = self.gw.client.statuses()
        return {"nodes": nodes, **_agreement(nodes)}

    # -- audit -----------------------------------------------------------------
    def audit(self, principal: Principal, params: Mapping[str, Any]) -> Json:
        """Full audit of every node's database when the nodes run here; else compare the nodes' heads."""
        if principal.role != "regulator":
            raise Forbidden("only the regulator audits")
        nodes = self.gw.client.statuses()
        agreement = _agreement(nodes)
        if self.local_consortium is None:
            return {"ok": agreement["agree"], "mode": "heads", "nodes": nodes, **agreement,
                    "next_step": "run `ledger audit` where the node databases are for a full verification"}
        from consortium_nodes.audit import audit_consortium

        report = audit_consortium(self.local_consortium, kept_checkpoint=params.get("kept_checkpoint"))
        ok = bool(report.get("ok")) and agreement["agree"]
        return {**report, "ok": ok, "mode": "full", "heads": nodes, **agreement}


def _agreement(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Do the reachable nodes agree on the newest block they all have?  Names the ones that do not."""
    up = [n for n in nodes if n.get("reachable")]
    diverged = sorted({n["node"] for n in up if n.get("diverged")})
    unreachable = [n["url"] for n in nodes if not n.get("reachable")]
    return {"agree": not diverged and not unreachable, "diverged_nodes": diverged, "unreachable": unreachable,
            "height": min((int(n["height"]) for n in up), default=-1)}
