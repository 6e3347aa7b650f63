"""Demo data for ``scripts/serve``: a small Chongqing district on the ledger and a token for every role.

Writes ``demo.json`` as issue 5 specifies::

    {"api", "tokens": {"contractor", "contractor_other", "approvers": {dept: token}, "exit_gate",
     "disposal_gate", "operator", "enforcement", "regulator", "truck_terminal", "company", "company_other",
     "camera"}, "project_id", "camera_id", "trucks": [plates], "disposal_sites": [{"id", "kind"}], ...}

``tokens.camera`` is the site-exit camera of P-001 (``CAM-P001-EXIT``, placed by ``registry.camera``).

``approver_keys`` names each department's approver key file (``var/secrets/approvers/<dept>.pem``): a
department signs its decisions itself (``ledger.eticket.acts``); the API relays them.  ``enforcement_keys``
likewise names each department's enforcement officers' key (``var/secrets/enforcement/<dept>.pem``): it signs
violation steps and penalties (``ledger.eticket.staff_acts``; the demo's enforcement token is 城管's).
``device_keys`` names each demo device's own key (``var/secrets/devices/<actor>.pem``, registered by the
operator): the exit gate of P-001, the disposal gate of S-003, the exit camera and each truck's GPS terminal.

Tokens are secrets: the file is written with mode 0600 under ``var/`` (never committed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from ledger.core.crypto import PrivateKey
from ledger.eticket import acts
from ledger.store.keyfiles import read_private_key, write_private_key
from ticket_api.adapter.gateway import Gateway, iso
from ticket_api.ledger_client import NodeClient
from ticket_api.tokens import TokenStore

ORGS = [
    {"org_id": "ORG-001", "name": "重庆建工第三建设有限责任公司", "kind": "contractor",
     "credit_code": "91500000MA5U123456"},
    {"org_id": "ORG-002", "name": "中建八局西南公司", "kind": "contractor"},
    {"org_id": "ORG-T01", "name": "重庆渝运渣土运输有限公司", "kind": "transport"},
]
PROJECTS = [
    {"project_id": "P-001", "name": "两江新区悦来片区安置房项目", "contractor_org_id": "ORG-001",
     "location": {"lat": 29.71203, "lon": 106.53031}, "district": "渝北区", "town": "悦来街道",
     "planned_volume_m3": "120000"},
    {"project_id": "P-002", "name": "九龙坡区巴福镇道路改造工程", "contractor_org_id": "ORG-002",
     "location": {"lat": 29.40521, "lon": 106.27033}, "district": "九龙坡区", "town": "巴福镇",
     "planned_volume_m3": "45000"},
]
SITES = [
    {"site_id": "S-001", "name": "渝北区洛碛建筑垃圾消纳场", "kind": "landfill", "capacity_m3": "800000",
     "location": {"lat": 29.69011, "lon": 106.86052}, "alarm_threshold_pct": 85, "town": "洛碛镇"},
    {"site_id": "S-003", "name": "巴福镇建筑垃圾资源化利用厂", "kind": "recycling", "capacity_m3": "500000",
     "location": {"lat": 29.61011, "lon": 106.40552}, "alarm_threshold_pct": 85, "town": "巴福镇"},
    {"site_id": "S-007", "name": "礼嘉回填工地", "kind": "backfill", "capacity_m3": "60000",
     "location": {"lat": 29.67512, "lon": 106.50833}, "alarm_threshold_pct": 90, "initial_load_m3": "50500",
     "town": "礼嘉街道"},
]
COMPANY = {"company_id": "C-01", "name": "重庆渝运渣土运输有限公司", "org_id": "ORG-T01",
           "credit_code": "91500112MA60ABCDEF"}
#: The site-exit camera of the demo project (its token: ``tokens.camera``).
CAMERA = {"camera_id": "CAM-P001-EXIT", "placement": "exit", "project_id": "P-001"}
TRUCKS = [("TR-0001", "渝A12345"), ("TR-0002", "渝A23456"), ("TR-0003", "渝B34567"), ("TR-0004", "渝AD12345")]


def seed_ledger(gw: Gateway, *, now: datetime) -> None:
    """Register the demo orgs, projects, sites, the transport company and its trucks (operator actor)."""
    actor = "operator:seed"
    items: list[tuple[str, dict[str, Any]]] = [("registry.org", o) for o in ORGS]
    items += [("registry.project", p) for p in PROJECTS]
    items += [("registry.site", s) for s in SITES]
    items.append(("registry.company", COMPANY))
    items += [("registry.truck", {"truck_id": tid, "plate": plate, "company_id": "C-01", "capacity_m3": "18",
                                  "terminal_id": f"GPS-{9900 + i}"}) for i, (tid, plate) in enumerate(TRUCKS)]
    for type_, payload in items:
        gw.submit(type=type_, payload=payload, actor=actor, now=now)


def seed_cameras(gw: Gateway, *, now: datetime) -> None:
    """Place the demo's site-exit camera (if it is not on the chain yet)."""
    if gw.query("camera", camera_id=CAMERA["camera_id"]) is None:
        gw.submit(type="registry.camera", payload=CAMERA, actor="operator:seed", now=now)


def seed_approver_keys(client: NodeClient, keys_dir: Path, departments: Sequence[str], out: Path, *,
                       now: datetime, days: int = 365, kind: str = "approver") -> dict[str, str]:
    """Each department makes its approvers' key (``kind`` ``enforcement``: its enforcement officers' key)
    (``out/<dept>.pem``, mode 0600) and registers it on the chain for ``<kind>:<dept>`` with its own member
    key (``keys_dir/<dept>.pem``): the path the API cannot take.  Returns dept -> path."""
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    return {dept: _department_key(client, keys_dir, dept, out / f"{dept}.pem", f"{kind}:{dept}", now=now, days=days)
            for dept in departments}


def seed_operator_key(client: NodeClient, keys_dir: Path, department: str, path: Path, *, now: datetime,
                      days: int = 365) -> str:
    """The governance centre's operators' key (``path``, mode 0600: it signs their confirms, dismissals and
    dispatches), registered for actor ``operator`` by the centre's department with its own member key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    return _department_key(client, keys_dir, department, path, "operator", now=now, days=days)


def _department_key(client: NodeClient, keys_dir: Path, dept: str, path: Path, actor: str, *, now: datetime,
                    days: int) -> str:
    """The key at ``path`` (made when missing), registered for ``actor`` with ``dept``'s member key."""
    if not path.exists():
        write_private_key(PrivateKey.generate(), path)
    key = read_private_key(path)
    if client.query("actor_key", key_id=key.key_id) is None:
        member = Gateway(key=read_private_key(keys_dir / f"{dept}.pem"), client=client)
        member.submit(type="registry.key", actor=f"admin:{dept}", now=now, payload={
            "key_id": key.key_id, "actor": actor, "public_key": acts.public_key_json(key),
            "valid_from": iso(now - timedelta(minutes=5)), "valid_until": iso(now + timedelta(days=days))})
    return str(path)


def device_actors() -> list[str]:
    """The ledger actors of the demo's devices (those with a token in ``demo.json``, and every truck's GPS
    terminal)."""
    return ["gate:exit:P-001", "gate:disposal:S-003", f"camera:{CAMERA['camera_id']}",
            *(f"gps:GPS-{9900 + i}" for i in range(len(TRUCKS)))]


def seed_device_keys(gw: Gateway, out: Path, *, now: datetime, days: int = 365) -> dict[str, str]:
    """Each demo device's own key (``out/<actor>.pem``, ``:`` as ``_``, mode 0600), registered on the chain by
    the operator (the gateway may: devices are the operator's).  Returns actor -> path."""
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    paths: dict[str, str] = {}
    for actor in device_actors():
        path = out / f"{actor.replace(':', '_')}.pem"
        if not path.exists():
            write_private_key(PrivateKey.generate(), path)
        key = read_private_key(path)
        paths[actor] = str(path)
        if gw.query("actor_key", key_id=key.key_id) is None:
            gw.submit(type="registry.key", actor="operator:seed", now=now, payload={
                "key_id": key.key_id, "actor": actor, "public_key": acts.public_key_json(key),
                "valid_from": iso(now - timedelta(minutes=5)), "valid_until": iso(now + timedelta(days=days))})
    return paths


def issue_camera_token(engine: Engine, *, days: float = 30) -> str:
    """The site-exit camera's token (role ``camera``, tenant its camera id)."""
    return TokenStore(engine).issue(role="camera", tenant=str(CAMERA["camera_id"]), subject="CAM-P001-EXIT",
                                    ttl=timedelta(days=days), source="demo").token


def issue_tokens(engine: Engine, *, departments: Sequence[str], days: float = 30) -> dict[str, Any]:
    """A token for each role of the demo (and WeChat openids bound for the two contractors)."""
    store = TokenStore(engine)
    ttl = timedelta(days=days)

    def tok(role: str, tenant: str, subject: str) -> str:
        return store.issue(role=role, tenant=tenant, subject=subject, ttl=ttl, source="demo").token

    for openid, org in (("demo-openid-org001", "ORG-001"), ("demo-openid-org002", "ORG-002")):
        if store.wechat_user(openid) is None:
            store.bind_wechat(openid, role="contractor", tenant=org, name="demo")
    return {
        "contractor": tok("contractor", "ORG-001", "demo-contractor"),
        "contractor_other": tok("contractor", "ORG-002", "demo-contractor-2"),
        "approvers": {d: tok("approver", d, f"demo-{d}") for d in departments},
        "exit_gate": tok("exit_gate", "P-001", "P-001-G1"),
        "disposal_gate": tok("disposal_gate", "S-003", "S-003-G1"),
        "truck_terminal": tok("truck_terminal", TRUCKS[0][1], "GPS-9900"),
        "operator": tok("operator", "centre-yubei", "demo-operator"),
        "enforcement": tok("enforcement", "chengguan", "demo-officer"),
        "regulator": tok("regulator", "regulator-cq", "demo-auditor"),
        "company": tok("company", COMPANY["company_id"], "demo-company"),
        "company_other": tok("company", "C-02", "demo-company-2"),
        "camera": issue_camera_token(engine, days=days),
    }


def write_demo(path: Path, *, api: str, tokens: dict[str, Any], wechat: str | None,
               approver_keys: dict[str, str] | None = None,
               enforcement_keys: dict[str, str] | None = None,
               device_keys: dict[str, str] | None = None, operator_key: str | None = None) -> dict[str, Any]:
    """Write ``demo.json`` (mode 0600) and return it."""
    doc = {
        "api": api,
        "docs": f"{api}/api/docs",
        "dashboard": f"{api}/dashboard",
        "wechat": wechat,
        "contractor_wechat_code": "test-demo-openid-org001",
        "tokens": tokens,
        # each department's approver key (its own: registered with its member key; the API never holds it)
        "approver_keys": dict(approver_keys or {}),
        # each department's enforcement officers' key (its own, like the approvers')
        "enforcement_keys": dict(enforcement_keys or {}),
        # the governance centre's operators' key (registered by 城管, the centre's department)
        "operator_key": operator_key,
        # each demo device's own key (registered by the operator): gates, the camera, the GPS terminals
        "device_keys": dict(device_keys or {}),
        "project_id": PROJECTS[0]["project_id"],
        "other_project_id": PROJECTS[1]["project_id"],
        "camera_id": CAMERA["camera_id"],
        "trucks": [plate for _, plate in TRUCKS],
        "disposal_sites": [{"id": s["site_id"], "kind": s["kind"]} for s in SITES],
        "seeded_at": iso(datetime.now(UTC)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=2)
    return doc
