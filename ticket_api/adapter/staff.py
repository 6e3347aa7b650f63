"""Departments, operators, enforcement and regulators on the ledger: registry, violations, penalties, sites,
statistics, chain health and the audit."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.core.encoding import CHINA_TZ
from ledger.eticket import staff_acts as acts
from ledger.wire import NodeReport
from ticket_api.adapter.acts import relay, signed_time
from ticket_api.adapter.gateway import Gateway, iso, new_id
from ticket_api.errors import Forbidden, InvalidRequest, NotFound
from ticket_api.service_data import (
    Agreement,
    AuditParams,
    CertificateView,
    ChainStatus,
    Dashboard,
    Json,
    NodeHealth,
    PenaltyRecord,
    Recommendation,
    RecommendParams,
    SiteList,
    ViolationReport,
    ViolationStep,
)
from ticket_api.services import Changed, Pending, Submission
from ticket_api.tokens import Principal

Clock = Callable[[], datetime]
REGISTRY_KINDS = {"org": "org_id", "project": "project_id", "site": "site_id", "company": "company_id",
                  "truck": "truck_id", "driver": "driver_id", "camera": "camera_id", "key": "key_id"}
STEPS = ("confirm", "dismiss", "dispatch", "resolve")
#: Violation id prefixes (docs/ETICKET.md "Violations").
PREFIX = {"no_ticket": "WPYS", "unapproved_disposal": "LZZTC", "uncovered_load": "FGBY", "overloaded": "CZYS",
          "spilling": "SLWR", "speeding": "CSXS", "off_route": "PLXS", "suspicious_stop": "YCTK",
          "suspected_dumping": "YSTD", "other": "QTSJ", "outside_hours": "FSDYS", "forbidden_zone": "JXQY"}

#: The dashboard: how many newest violations, and the truckload the alternatives to a full site must take.
DASHBOARD_VIOLATIONS = 100
DASHBOARD_TRUCKLOAD_M3 = "20"


class LedgerStaff:
    """What staff need beyond permits: the registry, violations, penalties, site load, statistics, health."""

    def __init__(self, *, gateway: Gateway, clock: Clock, local_consortium: Path | None = None) -> None:
        self.gw = gateway
        self.clock = clock
        self.local_consortium = local_consortium

    def _submit(self, principal: Principal, type: str, payload: dict[str, Any], sub: Submission, *,
                stamp: bool = True) -> Pending | int:
        """Sign and submit as the caller (event ``time`` = now unless given or ``stamp`` is off); ``Pending``
        when the caller does not wait, else the final block's height (read what was written at it)."""
        now = self.clock()
        if stamp:
            payload.setdefault("time", iso(now))
        done = self.gw.change(principal, sub, type=type, payload=payload, now=now)
        return done if isinstance(done, Pending) else int(done.height or 0)

    # -- registry --------------------------------------------------------------
    def register(self, principal: Principal, kind: str, data: Mapping[str, Any], sub: Submission) -> Changed[Json]:
        """``registry.<kind>``: the payload is the ledger's own (docs/ETICKET.md "Registry")."""
        if kind not in REGISTRY_KINDS:
            raise NotFound(f"no registry kind {kind}")
        payload = {k: v for k, v in data.items() if k != "time"}
        done = self._submit(principal, f"registry.{kind}", payload, sub, stamp=False)
        if isinstance(done, Pending):
            return done
        key = str(payload[REGISTRY_KINDS[kind]])
        found = (self.gw.query(kind, min_height=done, **{REGISTRY_KINDS[kind]: key})
                 if kind in ("project", "site", "truck", "camera") else None)
        return {"kind": kind, "id": key, **(found or {})}

    # -- violations ------------------------------------------------------------
    def violation(self, principal: Principal, violation_id: str, *, min_height: int | None = None) -> Json:
        v = self.gw.query("violation", min_height=min_height, violation_id=violation_id)
        if v is None:
            raise NotFound("no such violation")
        return dict(v)

    def report_violation(self, principal: Principal, data: ViolationReport, sub: Submission) -> Changed[Json]:
        at = data.get("time") or self.clock()
        payload: dict[str, Any] = {k: v for k, v in data.items() if v is not None}
        payload["time"] = iso(at)
        payload.setdefault("violation_id", new_id(PREFIX.get(str(data["type"]), "QTSJ"), at, digits=5))
        if "location" in payload:
            payload["location"] = {k: round(float(payload["location"][k]), 6) for k in ("lat", "lon")}
        done = self._submit(principal, "violation.report", payload, sub)
        return done if isinstance(done, Pending) else self.violation(principal, payload["violation_id"],
                                                                      min_height=done)

    def violation_step(self, principal: Principal, violation_id: str, step: str, data: ViolationStep,
                       sub: Submission) -> Changed[Json]:
        if step not in STEPS:
            raise NotFound(f"no step {step}")
        # an officer that signs signed this very payload (``ledger.eticket.acts``); the step's own text only
        extra = sorted(k for k in ("note", "centre", "result") if k in data and k != acts.STEP_FIELDS[step])
        if extra:
            raise InvalidRequest(f"violation.{step} takes no {', '.join(extra)}",
                                 fields={k: [f"not a field of {step}"] for k in extra})
        text = {"note": data.get("note"), "centre": data.get("centre"), "result": data.get("result")}[
            acts.STEP_FIELDS[step]]
        payload = acts.step_payload(step, violation_id, text, iso(signed_time(data, self.clock(), "step")))
        done = self._submit(principal, f"violation.{step}", relay(payload, data.get("act_sig")), sub)
        return done if isinstance(done, Pending) else self.violation(principal, violation_id, min_height=done)

    # -- penalties -------------------------------------------------------------
    def record_penalty(self, principal: Principal, data: PenaltyRecord, sub: Submission) -> Changed[Json]:
        now = self.clock()
        if data.get("act_sig") and not data.get("penalty_id"):
            raise InvalidRequest("a signed penalty names its penalty_id",
                                 fields={"penalty_id": ["required with act_sig"]})
        at = signed_time(data, now, "penalty")
        payload = acts.penalty_payload(
            data.get("penalty_id") or new_id("PN", now), data["target_kind"], data["target_id"],
            str(data["amount_yuan"]), iso(at), violation_ids=data.get("violation_ids") or [],
            measures=[dict(m) for m in data.get("measures") or []], credit_points=data.get("credit_points"),
            decision_no=data.get("decision_no"))
        done = self._submit(principal, "penalty.record", relay(payload, data.get("act_sig")), sub)
        if isinstance(done, Pending):
            return done
        found = self.gw.query("penalties", min_height=done, target_kind=payload["target_kind"],
                              target_id=payload["target_id"])
        return dict(next(p for p in found if p["penalty_id"] == payload["penalty_id"]))

    # -- sites and statistics --------------------------------------------------
    def sites(self, principal: Principal) -> SiteList:
        return {"sites": self.gw.query("sites")}

    def site(self, principal: Principal, site_id: str) -> Json:
        s = self.gw.query("site", site_id=site_id)
        if s is None:
            raise NotFound("no such site")
        return dict(s)

    def recommend(self, principal: Principal, params: RecommendParams) -> Recommendation:
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

    def dashboard(self, principal: Principal) -> Dashboard:
        """The governance centre's screen (一屏掌控) in one answer: counters, site load with alarms and the
        alternatives offered for each site in alarm, the newest violations with their age, trucks on the road,
        the map's sites and projects, and every node's health.  Times are ISO 8601 in China time (+08:00)."""
        now = self.clock().astimezone(CHINA_TZ)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        counts = dict(self.gw.query("live_counts", since=int(midnight.timestamp())))
        stats = dict(self.gw.query("statistics"))
        sites = list(self.gw.query("sites"))
        for s in sites:
            s["threshold_pct"] = s.get("alarm_threshold_pct")
            s["alternatives"] = (self.gw.query("site_alternatives", site_id=s["site_id"],
                                               volume_m3=DASHBOARD_TRUCKLOAD_M3, limit=3)
                                 if s.get("alarm") else [])
        violations = list(self.gw.query("violations", limit=DASHBOARD_VIOLATIONS))
        for v in violations:
            v["age_seconds"] = max(0, int((now - datetime.fromisoformat(v["reported_at"])).total_seconds()))
            v["evidence_urls"] = evidence_urls(v)  # the photos, as GET /api/v1/violations/<id> gives them
        projects = list(self.gw.query("projects"))
        chain = self.chain_status(principal)
        # yesterday and today (a night shift crosses midnight): the place-days whose trips outrun the tickets
        recon = list(self.gw.query("reconciliation", since=int((midnight - timedelta(days=1)).timestamp()),
                                   until=int(now.timestamp()) + 1, alarms_only=True))
        _name_places(recon, projects, sites)
        return {
            "generated_at": iso(now),
            "today": midnight.date().isoformat(),
            "counters": {
                "tickets_today": counts["tickets_since"],
                "tickets_issued": stats.get("tickets_issued"),
                "trucks_on_the_road": counts["on_the_road"],
                "open_violations": counts["open_violations"],
                "open_violations_by_state": counts["open_violations_by_state"],
                "sites_in_alarm": counts["sites_in_alarm"],
                "utilisation_rate_pct": stats.get("utilisation_rate_pct"),
                "ledger_time": counts.get("as_of"),
                "reconciliation_alarms": len(recon),
            },
            "statistics": stats,
            "sites": sites,
            "alarms": [{"site_id": s["site_id"], "name": s["name"], "load_rate_pct": s["load_rate_pct"],
                        "threshold_pct": s["threshold_pct"], "alternatives": s["alternatives"]}
                       for s in sites if s.get("alarm")],
            "violations": violations,
            "on_the_road": list(self.gw.query("on_the_road", limit=500)),
            "projects": projects,
            "chain": {**chain, "nodes": [_node_health(n) for n in chain["nodes"]]},
            "reconciliation": recon,
        }

    def chain_status(self, principal: Principal) -> ChainStatus:
        """Every node's height, head, final height and divergences, and whether they agree."""
        nodes = self.gw.client.statuses()
        return {"nodes": nodes, **_agreement(nodes), "keys_expiring": _keys_expiring(nodes)}

    # -- audit -----------------------------------------------------------------
    def audit(self, principal: Principal, params: AuditParams) -> Json:
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


def evidence_urls(violation: Mapping[str, Any]) -> list[str]:
    """Where staff GET a violation's photos (``/api/v1/evidence/<digest>``, one per digest of its evidence)."""
    return [f"/api/v1/evidence/{d}" for d in violation.get("evidence") or () if isinstance(d, str)]


def _name_places(recon: list[Json], projects: list[Json], sites: list[Json]) -> None:
    """Each reconciliation row's ``place_name``: its project's name (an exit) or its site's (a disposal site);
    null for a place the registry no longer lists."""
    names: dict[tuple[Any, Any], Any] = {("exit", p.get("project_id")): p.get("name") for p in projects}
    names.update({("site", s.get("site_id")): s.get("name") for s in sites})
    for r in recon:
        r["place_name"] = names.get((r.get("kind"), r.get("place_id")))


def _keys_expiring(nodes: list[NodeReport]) -> list[Json]:
    """The ``keys_expiring`` the nodes report (each key once, soonest first)."""
    seen: dict[str, Json] = {}
    for n in nodes:
        for k in n.get("keys_expiring") or []:
            if isinstance(k, Mapping) and isinstance(k.get("key_id"), str):
                seen.setdefault(k["key_id"], dict(k))
    return sorted(seen.values(), key=lambda k: (k.get("days_left", 0), str(k.get("member"))))


def _certificate(c: Any) -> CertificateView | None:
    """The newest final block's certificate as a node reports it: height, header hash, the members who signed
    it (by name), the quorum and how many nodes there are."""
    if not isinstance(c, Mapping):
        return None
    return {"height": c.get("height"), "header_hash": c.get("header_hash"), "signers": list(c.get("signers") or []),
            "quorum": c.get("quorum"), "nodes": c.get("nodes")}


def _node_health(n: NodeReport) -> NodeHealth:
    """One node's line on the screen: height, head, last certificate (final height, who signed it), diverged
    or not."""
    if not n.get("reachable"):
        return {"node": n.get("node") or n.get("url"), "url": n.get("url"), "reachable": False,
                "error": n.get("error")}
    return {"node": n.get("node"), "url": n.get("url"), "reachable": True, "height": n.get("height"),
            "head": n.get("head"), "final_height": n.get("final_height"),
            "certificate": _certificate(n.get("certificate")), "transactions": n.get("transactions"),
            "pool": n.get("pool"), "ordering": n.get("ordering"), "ready": n.get("ready"), "fault": n.get("fault"),
            "diverged": bool(n.get("diverged")), "divergences": len(n.get("diverged") or [])}


def _agreement(nodes: list[NodeReport]) -> Agreement:
    """Do the reachable nodes agree on the newest block they all have?  Names the ones that do not, the faulty
    ones (with their fault) and the ones not ready."""
    up = [n for n in nodes if n.get("reachable")]
    diverged = sorted({n["node"] for n in up if n.get("diverged")})
    unreachable = [n["url"] for n in nodes if not n.get("reachable")]
    # a node with a fault (storage, halted chain) or not ready serves what may be stale: no agreement with it
    faults = {n["node"]: str(n["fault"]) for n in up if n.get("fault")}
    not_ready = sorted({n["node"] for n in up if not n.get("ready")})
    return {"agree": not diverged and not unreachable and not faults and not not_ready,
            "diverged_nodes": diverged, "unreachable": unreachable, "faults": faults, "not_ready": not_ready,
            "height": min((int(n["height"]) for n in up), default=-1)}
