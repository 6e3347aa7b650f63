"""``LedgerStaff.dashboard``: the screen's one answer, composed from the ledger queries (run here on a machine)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ledger.core.encoding import CHINA_TZ
from ledger.eticket import gate_queries, queries
from ledger.eticket.testing import PHOTO, World, make_world
from ledger.eticket.units import epoch
from ticket_api.adapter.staff import LedgerStaff
from ticket_api.tokens import Principal


class _Client:
    def statuses(self) -> list[dict[str, Any]]:
        up = {"reachable": True, "height": 7, "head": "ab" * 32, "final_height": 7, "transactions": 9, "pool": 0,
              "ordering": "solo", "ready": True, "fault": None, "diverged": [],
              "certificate": {"height": 7, "header_hash": "ab" * 32, "signers": ["chengguan", "zhujian", "shengtai"],
                              "quorum": 3, "nodes": 4}}
        return [{"url": "http://127.0.0.1:1", "node": "chengguan", **up},
                {"url": "http://127.0.0.1:2", "node": "zhujian", **up,
                 "diverged": [{"height": 7, "signers": "jiaotong"}]},
                {"url": "http://127.0.0.1:3", "reachable": False, "error": "ConnectionError"}]


class _Gateway:
    """Runs ``queries.<name>`` (or ``gate_queries.<name>``) on the world's machine, like a node's
    ``POST /v1/query/<name>``."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.client = _Client()

    def query(self, name: str, **kwargs: Any) -> Any:
        module = queries if hasattr(queries, name) else gate_queries
        return getattr(module, name)(self.world.machine, **kwargs)


def test_dashboard_composes_counters_alarms_alternatives_violations_trips_and_health() -> None:
    world = make_world()
    world.approved_permit()
    world.issue("T-1")
    world.depart("T-1")
    world.ok("registry.site", {"site_id": "S-009", "name": "小回填点", "kind": "backfill", "capacity_m3": "100",
                               "alarm_threshold_pct": 85, "initial_load_m3": "90",
                               "location": {"lat": "29.690000", "lon": "106.440000"}})
    world.ok("violation.report", {"violation_id": "FGBY2026112320000000001", "type": "uncovered_load",
                                  "source": "camera", "evidence": [PHOTO], "plate": "渝A12345"}, "camera:CAM-1")
    now = datetime.fromtimestamp(epoch("2026-11-23T20:10:00+08:00"), tz=CHINA_TZ)
    staff = LedgerStaff(gateway=_Gateway(world), clock=lambda: now)  # type: ignore[arg-type]
    body = staff.dashboard(Principal(token_id="t1", role="operator", tenant="centre", subject="u1", expires_at=now))

    assert body["generated_at"] == "2026-11-23T20:10:00+08:00" and body["today"] == "2026-11-23"
    c = body["counters"]
    assert (c["tickets_today"], c["trucks_on_the_road"], c["open_violations"], c["sites_in_alarm"]) == (1, 1, 1, 1)
    assert c["reconciliation_alarms"] == len(body["reconciliation"]) == 0  # one ticket, one exit: no gap
    by_id = {s["site_id"]: s for s in body["sites"]}
    assert by_id["S-009"]["alarm"] and by_id["S-009"]["threshold_pct"] == 85
    assert by_id["S-009"]["alternatives"] and all(a["site_id"] != "S-009" for a in by_id["S-009"]["alternatives"])
    assert by_id["S-001"]["alternatives"] == []
    assert [a["site_id"] for a in body["alarms"]] == ["S-009"]
    (v,) = body["violations"]
    assert v["state"] == "reported" and v["age_seconds"] == 600
    (trip,) = body["on_the_road"]
    assert trip["ticket_id"] == "T-1" and trip["plate"] == "渝A12345"
    assert [p["project_id"] for p in body["projects"]] == ["P-001", "P-002"]
    nodes = body["chain"]["nodes"]
    assert [(n["node"], n["reachable"], n.get("diverged")) for n in nodes] == [
        ("chengguan", True, False), ("zhujian", True, True), ("http://127.0.0.1:3", False, None)]
    assert nodes[1]["divergences"] == 1 and nodes[0]["final_height"] == 7
    assert body["chain"]["agree"] is False and body["chain"]["diverged_nodes"] == ["zhujian"]
    assert nodes[0]["certificate"] == {"height": 7, "header_hash": "ab" * 32, "quorum": 3, "nodes": 4,
                                       "signers": ["chengguan", "zhujian", "shengtai"]}
    assert "certificate" not in nodes[2]  # unreachable: nothing to show but why


def test_dashboard_schema_documents_the_chain_health_with_certificates() -> None:
    """The response schema of the screen describes each node's line, its certificate included, and dumps the
    adapter's answer unchanged (a node without a final block yet has a null certificate)."""
    from ticket_api.schemas import DashboardSchema

    chain = {"agree": True, "diverged_nodes": [], "unreachable": ["http://127.0.0.1:3"], "height": 0, "nodes": [
        {"node": "chengguan", "url": "http://127.0.0.1:1", "reachable": True, "height": 0, "head": "cd" * 32,
         "final_height": 0, "certificate": {"height": 0, "header_hash": "cd" * 32, "quorum": 3, "nodes": 4,
                                            "signers": ["chengguan", "jiaotong", "zhujian"]},
         "transactions": 1, "pool": 0, "ordering": "solo", "ready": True, "fault": None, "diverged": False,
         "divergences": 0},
        {"node": "zhujian", "url": "http://127.0.0.1:2", "reachable": True, "height": -1, "head": None,
         "final_height": -1, "certificate": None, "transactions": 0, "pool": 0, "ordering": "solo", "ready": True,
         "fault": None, "diverged": False, "divergences": 0},
        {"node": "http://127.0.0.1:3", "url": "http://127.0.0.1:3", "reachable": False, "error": "ConnectionError"}]}
    schema = DashboardSchema()
    node = schema.fields["chain"].schema.fields["nodes"].inner.schema  # type: ignore[attr-defined]
    assert set(node.fields["certificate"].schema.fields) == {"height", "header_hash", "signers", "quorum", "nodes"}
    body = {"generated_at": "2026-11-23T20:10:00+08:00", "counters": {}, "sites": [], "alarms": [], "violations": [],
            "on_the_road": [], "projects": [], "chain": chain}
    assert schema.dump(body)["chain"] == chain


class _ExpiringKeys(_Client):
    """Two nodes reporting the keys they see ending: the same key twice, the gateway's expired one."""

    def statuses(self) -> list[dict[str, Any]]:
        jiaotong = {"member": "jiaotong", "key_id": "k-jt", "not_after": "2026-11-28T19:00:00+08:00", "days_left": 4}
        gateway = {"member": "gateway", "key_id": "k-gw", "not_after": "2026-11-22T19:00:00+08:00", "days_left": -2}
        up = super().statuses()
        up[0]["keys_expiring"] = [jiaotong]
        up[1]["keys_expiring"] = [jiaotong, gateway]
        return up


def test_dashboard_carries_what_the_screen_reads_for_keys_and_photos() -> None:
    """The snapshot carries what the screen shows without asking again: the member keys close to expiry in the
    chain panel (each once, soonest first), each violation's photo URLs beside its digests, and each
    reconciliation alarm's place named (a black truck seen at P-001's exit, never scanned: 悦来安置房)."""
    world = make_world()
    world.ok("registry.camera", {"camera_id": "CAM-EXIT", "placement": "exit", "project_id": "P-001"})
    world.ok("camera.sighting", {"sighting_id": "SG-1", "camera_id": "CAM-EXIT", "plate": "渝D88888",
                                 "covered": True, "photo_digest": PHOTO, "time": "2026-11-23T20:05:00+08:00"},
             "camera:CAM-EXIT")
    gw = _Gateway(world)
    gw.client = _ExpiringKeys()
    now = datetime.fromtimestamp(epoch("2026-11-23T20:10:00+08:00"), tz=CHINA_TZ)
    staff = LedgerStaff(gateway=gw, clock=lambda: now)  # type: ignore[arg-type]
    body = staff.dashboard(Principal(token_id="t1", role="operator", tenant="centre", subject="u1", expires_at=now))

    assert [(k["member"], k["days_left"]) for k in body["chain"]["keys_expiring"]] == [("gateway", -2),
                                                                                       ("jiaotong", 4)]
    (v,) = body["violations"]
    assert v["type"] == "unapproved_disposal" and v["source"] == "camera"
    assert v["evidence"] == [PHOTO] and v["evidence_urls"] == [f"/api/v1/evidence/{PHOTO}"]
    (r,) = body["reconciliation"]
    assert (r["kind"], r["place_id"], r["place_name"], r["day"]) == ("exit", "P-001", "悦来安置房", "2026-11-23")
    assert r["reasons"] == ["seen_not_scanned"] and (r["sightings"], r["scans"], r["unscanned"]) == (1, 0, 1)
    from ticket_api.schemas import DashboardSchema

    dumped = DashboardSchema().dump(body)
    assert dumped["chain"]["keys_expiring"] == body["chain"]["keys_expiring"]
    assert dumped["violations"][0]["evidence_urls"] == v["evidence_urls"]
    assert dumped["reconciliation"][0]["place_name"] == "悦来安置房"
