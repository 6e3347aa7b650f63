"""Put a simulated city (:mod:`tools.sim_city`) into a running stack, through the API only.

* The registry (contractor orgs, projects, disposal sites, transport companies, trucks) by the
  operator's ``POST /api/v1/registry/<kind>``.
* Devices by the operator's ``POST /api/v1/devices``: an exit gate per project, a gate per disposal
  site, a GPS terminal per truck, a camera at each project exit where the API has cameras; each device's
  own key, registered on the chain by the operator (``POST /api/v1/registry/key``): the devices sign their
  scans, batches and sightings (``ledger.eticket.acts``).
* Contractors log in with WeChat (the fake WeChat server of the stack): their openids are bound to
  their orgs the way ``python -m ticket_api users bind-wechat`` does it, the one administrative step.
* A permit per project, applied for by its contractor and approved by every department's approver.

What it made (tokens, permit ids) goes to ``<var>/sim/state.json`` (0600), so a second run on the
same stack reuses the city instead of registering it again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.eticket.acts import public_key_json
from miniprogram_stub.client import ApiCallError, ApiClient
from tools.sim_city import City

#: answers that mean "already there" when the city is set up a second time
ALREADY = frozenset({"duplicate_id", "duplicate_tx", "exists"})
JSON = dict[str, Any]


def _parallel(fn: Callable[[Any], Any], items: Iterable[Any], workers: int = 8) -> list[Any]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def register_city(operator: ApiClient, city: City) -> int:
    """Register everything in the city; returns how many registrations were new."""
    items: list[tuple[str, JSON]] = [
        ("org", {"org_id": o, "name": f"模拟建设单位{o[-2:]}", "kind": "contractor"}) for o in city.contractors]
    items += [("org", {"org_id": f"ORG-{c}", "name": f"模拟渣土运输公司{c[-2:]}", "kind": "transport"})
              for c in city.companies]
    items += [("company", {"company_id": c, "name": f"模拟渣土运输公司{c[-2:]}", "org_id": f"ORG-{c}"})
              for c in city.companies]
    items += [("site", {"site_id": s.site_id, "name": s.name, "kind": s.kind, "capacity_m3": str(s.capacity_m3),
                        "location": {"lat": s.place.lat, "lon": s.place.lon}, "town": s.place.town,
                        "alarm_threshold_pct": s.alarm_threshold_pct, "initial_load_m3": str(s.initial_load_m3)})
              for s in city.sites]
    items += [("project", {"project_id": p.project_id, "name": p.name, "contractor_org_id": p.org_id,
                           "location": {"lat": p.place.lat, "lon": p.place.lon}, "district": p.place.district,
                           "town": p.place.town, "planned_volume_m3": str(p.planned_volume_m3)})
              for p in city.projects]
    items += [("truck", {"truck_id": t.truck_id, "plate": t.plate, "company_id": t.company_id,
                         "capacity_m3": str(t.capacity_m3), "terminal_id": t.terminal_id}) for t in city.trucks]
    new = 0
    # orgs and companies before what names them; one kind at a time, in parallel within it
    for kinds in (("org",), ("company", "site"), ("project", "truck")):
        done = _parallel(lambda kb: _register(operator, *kb), [kb for kb in items if kb[0] in kinds])
        new += sum(done)
    return new


def _register(operator: ApiClient, kind: str, body: JSON) -> bool:
    try:
        operator._call("POST", f"/api/v1/registry/{kind}", json=body, idempotency_key=operator.new_key())
    except ApiCallError as exc:
        if exc.reason in ALREADY:
            return False
        raise
    return True


def camera_id(project_id: str) -> str:
    """The id of a project's site-exit camera."""
    return f"CAM-{project_id}-EXIT"


def place_cameras(operator: ApiClient, city: City) -> None:
    """A camera at each project's exit (``registry.camera``), before its device token is any use."""
    _parallel(lambda p: _register(operator, "camera", {"camera_id": camera_id(p.project_id), "placement": "exit",
                                                      "project_id": p.project_id}), city.projects)


def provision_devices(operator: ApiClient, city: City, *, cameras: bool) -> dict[str, dict[str, str]]:
    """Device tokens by kind and id: ``{"exit_gate": {project_id: token}, "disposal_gate": {site_id: …},
    "truck_terminal": {plate: …}, "camera": {project_id: …}}`` (a camera by the project whose exit it watches)."""
    wanted = [("exit_gate", p.project_id) for p in city.projects]
    wanted += [("disposal_gate", s.site_id) for s in city.sites]
    wanted += [("truck_terminal", t.plate) for t in city.trucks]
    if cameras:
        wanted += [("camera", camera_id(p.project_id)) for p in city.projects]
    out: dict[str, dict[str, str]] = {}
    for i in range(0, len(wanted), 500):
        chunk = [{"kind": k, "id": d, **({"subject": f"SIM-{k}-{d}"} if k != "truck_terminal" else {})}
                 for k, d in wanted[i:i + 500]]
        body = operator._object("POST", "/api/v1/devices", json={"devices": chunk},
                                idempotency_key=operator.new_key())
        for item in body["items"]:
            # a camera's token by the project whose exit it watches
            key = item["id"].removeprefix("CAM-").removesuffix("-EXIT") if item["kind"] == "camera" else item["id"]
            out.setdefault(item["kind"], {})[key] = item["token"]
    return out


def device_actors(city: City, *, cameras: bool) -> list[str]:
    """The ledger actor of every device of the city (what its key is registered for)."""
    out = [f"gate:exit:{p.project_id}" for p in city.projects]
    out += [f"gate:disposal:{s.site_id}" for s in city.sites]
    out += [f"gps:{t.terminal_id}" for t in city.trucks]
    if cameras:
        out += [f"camera:{camera_id(p.project_id)}" for p in city.projects]
    return out


def register_device_keys(operator: ApiClient, actors: Iterable[str], *, days: int = 30) -> dict[str, str]:
    """A fresh key per device, registered by the operator: ``{actor: PEM of the private key}``."""
    now = datetime.now(CHINA_TZ).replace(microsecond=0)
    keys = {a: PrivateKey.generate() for a in actors}

    def one(item: tuple[str, PrivateKey]) -> bool:
        actor, key = item
        return _register(operator, "key", {
            "key_id": key.key_id, "actor": actor, "public_key": public_key_json(key),
            "valid_from": (now - timedelta(minutes=5)).isoformat(),
            "valid_until": (now + timedelta(days=days)).isoformat()})

    _parallel(one, list(keys.items()))
    return {a: k.to_pem() for a, k in keys.items()}


def bind_contractors(database_url: str, city: City) -> None:
    """Bind each contractor org's WeChat openid (``sim-<org>``), as the admin CLI's ``users bind-wechat``."""
    from ticket_api.db import make_engine
    from ticket_api.tokens import TokenStore

    store = TokenStore(make_engine(database_url))
    for org in city.contractors:
        if store.wechat_user(f"sim-{org}") is None:
            store.bind_wechat(f"sim-{org}", role="contractor", tenant=org, name="simulated contractor")


def contractor_tokens(api: str, city: City) -> dict[str, str]:
    """Each contractor logs in through the fake WeChat server (code ``test-<openid>``)."""
    out = {}
    for org in city.contractors:
        c = ApiClient(api)
        c.login_wechat(f"test-sim-{org}")
        assert c.token is not None
        out[org] = c.token
    return out


def approve_permits(api: str, city: City, contractors: dict[str, str],
                    approvers: list[tuple[str, PrivateKey | None]]) -> dict[str, str]:
    """A permit per project, approved by every department (each signing with its own approver key):
    ``{project_id: permit_id}``."""
    now = datetime.now(CHINA_TZ).replace(microsecond=0)

    def one(project_id: str) -> tuple[str, str]:
        p = city.project(project_id)
        c = ApiClient(api, contractors[p.org_id])
        permit = c.create_permit(project_id=p.project_id, volume_m3=str(p.planned_volume_m3),
                                 disposal_site_ids=list(p.site_ids), truck_plates=list(p.plates),
                                 valid_from=now - timedelta(minutes=5), valid_to=now + timedelta(days=30))
        for token, key in approvers:
            ApiClient(api, token).decide_permit(permit["id"], "approve", "同意（模拟）", signing_key=key)
        return project_id, permit["id"]

    return dict(_parallel(one, [p.project_id for p in city.projects if p.plates]))


def set_up(api: str, demo: JSON, city: City, *, database_url: str, state_file: Path) -> JSON:
    """Register, provision and approve the city once; later runs read ``state_file``."""
    key = {"seed": city.seed, "fraction": city.fraction}
    if state_file.exists():
        state: JSON = json.loads(state_file.read_text(encoding="utf-8"))
        if state.get("city") == key:
            if "device_keys" not in state:  # a state from before devices signed their acts
                operator = ApiClient(api, demo["tokens"]["operator"])
                state["device_keys"] = register_device_keys(
                    operator, device_actors(city, cameras="camera" in state["devices"]))
                _write_state(state_file, state)
            return state
    operator = ApiClient(api, demo["tokens"]["operator"])
    registered = register_city(operator, city)
    cameras = _has_cameras(operator)
    if cameras:
        place_cameras(operator, city)
    devices = provision_devices(operator, city, cameras=cameras)
    device_keys = register_device_keys(operator, device_actors(city, cameras=cameras))
    bind_contractors(database_url, city)
    contractors = contractor_tokens(api, city)
    keys = demo.get("approver_keys") or {}
    approvers = [(token, PrivateKey.from_pem(Path(keys[d]).read_bytes()) if keys.get(d) else None)
                 for d, token in demo["tokens"]["approvers"].items()]
    permits = approve_permits(api, city, contractors, approvers)
    state = {"city": key, "registered": registered, "devices": devices, "device_keys": device_keys,
             "contractors": contractors, "permits": permits}
    _write_state(state_file, state)
    return state


def _write_state(state_file: Path, state: JSON) -> None:
    """``state_file`` (0600 in a 0700 directory: tokens and device keys are secrets)."""
    state_file.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(state_file.parent, 0o700)
    fd = os.open(state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(state, fh, ensure_ascii=False)


def _has_cameras(operator: ApiClient) -> bool:
    """Whether this API takes camera sightings (its OpenAPI document lists the endpoint)."""
    paths = operator.openapi().get("paths", {})
    return "/api/v1/cameras/sightings" in paths
