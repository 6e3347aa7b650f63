"""The embedded default stack (``python -m tools.serve``) as a pytest fixture: 4 real ledger nodes,
the fake WeChat server and the API under a real gunicorn, all on free loopback ports in a temp directory.

Import into a test module: ``from serve_fixtures import stack`` (module scope: one stack per test file).
``stack.demo`` is the ``demo.json`` that ``scripts/serve`` writes (tokens for every role, ids, plates).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ, iso
from ledger.eticket import acts
from ledger.eticket.acts import decision_body, public_key_json
from ledger.eticket.staff_acts import penalty_body, step_body
from ledger.qrticket.gatecheck import normalise_plate
from ledger.qrticket.ticket import decode_ticket
from ledger.store.keyfiles import read_private_key
from tools.proc import Child, tail

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    var: Path
    api: str
    demo: dict[str, Any]
    child: Child

    def headers(self, role: str, *, lang: str = "en") -> dict[str, str]:
        """Bearer headers of a demo token (``approvers.<dept>`` for a department)."""
        tokens = self.demo["tokens"]
        token = tokens["approvers"][role.split(".", 1)[1]] if role.startswith("approvers.") else tokens[role]
        return {"Authorization": f"Bearer {token}", "Accept-Language": lang}

    def decision(self, dept: str, object_id: str, decision: str = "approve", comment: str | None = None, *,
                 amendment: bool = False) -> dict[str, Any]:
        """The body of a department's decision on a permit (or an amendment), signed with the department's
        own approver key (``demo.json`` ``approver_keys``), as the department's desk would."""
        key = read_private_key(self.demo["approver_keys"][dept])
        at = iso(datetime.now(CHINA_TZ), timespec="seconds")
        return decision_body(key, "permit.amend_decide" if amendment else "permit.decide", object_id, dept,
                             decision, comment, at)

    def register_key(self, actor: str, key: PrivateKey, role: str = "operator", *,
                     days: float = 365) -> requests.Response:
        """``POST /api/v1/registry/key`` with ``role``'s token: ``key`` as ``actor``'s, valid from five minutes
        ago for ``days``."""
        now = datetime.now(CHINA_TZ)
        return requests.post(self.api + "/api/v1/registry/key", headers=self.headers(role), timeout=60, json={
            "key_id": key.key_id, "actor": actor, "public_key": public_key_json(key),
            "valid_from": iso(now - timedelta(minutes=5), timespec="seconds"),
            "valid_until": iso(now + timedelta(days=days), timespec="seconds")})

    def device_key(self, actor: str) -> PrivateKey:
        """A demo device's own key (``demo.json`` ``device_keys``: ``gate:exit:P-001``, ``gps:GPS-9900``, …)."""
        return read_private_key(self.demo["device_keys"][actor])

    def exit(self, qr: str, plate: str, covered: bool = True, *, project: str = "P-001",
             **extra: Any) -> dict[str, Any]:
        """The body of ``POST /api/v1/gate/exit`` signed by the project's exit gate (``extra``: photo_digest)."""
        at = _now()
        payload = acts.exit_payload(decode_ticket(qr)[0].ticket_id, f"{project}-G1", normalise_plate(plate), covered,
                                    at, photo_digest=extra.get("photo_digest"))
        return {"qr": qr, "plate": plate, "covered": covered, **extra, "gate_id": f"{project}-G1", "time": at,
                "act_sig": acts.act_signature(self.device_key(f"gate:exit:{project}"), "gate.exit", payload)}

    def disposal(self, qr: str, plate: str, *, site: str = "S-003", **measured: Any) -> dict[str, Any]:
        """The body of ``POST /api/v1/gate/disposal`` signed by the site's disposal gate (``measured``:
        volume_m3, weight_t, gross_t, tare_t as decimal strings, and photo_digest)."""
        at = _now()
        photo = measured.pop("photo_digest", None)
        payload = acts.receipt_payload(decode_ticket(qr)[0].ticket_id, f"{site}-G1", site, normalise_plate(plate),
                                       measured, at, photo_digest=photo)
        return {"qr": qr, "plate": plate, **measured, **({"photo_digest": photo} if photo else {}),
                "gate_id": f"{site}-G1", "time": at,
                "act_sig": acts.act_signature(self.device_key(f"gate:disposal:{site}"), "gate.receipt", payload)}

    def offline_exit(self, scan: dict[str, Any], *, project: str = "P-001") -> dict[str, Any]:
        """An exit scan an offline gate queued (``POST /api/v1/gate/sync``), signed by the project's exit gate as
        the offline gate library signs it when it scans."""
        at = iso(datetime.fromisoformat(scan["scanned_at"]), timespec="seconds")
        payload = acts.exit_payload(decode_ticket(scan["qr"])[0].ticket_id, f"{project}-G1",
                                    normalise_plate(scan["plate"]), scan.get("covered") is not False, at,
                                    offline=bool(scan["offline_verdict"]["accepted"]))
        return {**scan, "gate_id": f"{project}-G1",
                "act_sig": acts.act_signature(self.device_key(f"gate:exit:{project}"), "gate.exit", payload)}

    def positions(self, ticket_id: str, points: list[dict[str, Any]], *,
                  terminal: str = "GPS-9900") -> dict[str, Any]:
        """The body of ``POST /api/v1/trips/<id>/positions`` signed by the truck's GPS terminal (``points``:
        ``{"at", "lat", "lon", "speed_kmh"}``, ``at`` ISO 8601)."""
        at = _now()
        made = [acts.position_point(iso(datetime.fromisoformat(p["at"]), timespec="seconds"), p["lat"], p["lon"],
                                    p["speed_kmh"]) for p in points]
        payload = acts.positions_payload(ticket_id, made, at)
        return {"positions": points, "time": at,
                "act_sig": acts.act_signature(self.device_key(f"gps:{terminal}"), "trip.positions", payload)}

    def step(self, violation_id: str, step: str, text: str | None = None, *, dept: str = "chengguan") -> dict[str, Any]:
        """The body of a violation step (confirm, dismiss, dispatch, resolve) signed with the department's
        enforcement key (``demo.json`` ``enforcement_keys``; the demo ``enforcement`` token is 城管's)."""
        key = read_private_key(self.demo["enforcement_keys"][dept])
        return step_body(key, step, violation_id, text, iso(datetime.now(CHINA_TZ), timespec="seconds"))

    def penalty(self, fields: dict[str, Any], *, dept: str = "chengguan") -> dict[str, Any]:
        """The body of ``POST /api/v1/penalties`` (``fields`` with its ``penalty_id``) signed like :meth:`step`."""
        key = read_private_key(self.demo["enforcement_keys"][dept])
        return penalty_body(key, fields, iso(datetime.now(CHINA_TZ), timespec="seconds"))


def _now() -> str:
    return iso(datetime.now(CHINA_TZ), timespec="seconds")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with run_stack(tmp_path_factory.mktemp("serve")) as s:
        yield s


def serve(tmp_path_factory: pytest.TempPathFactory, eticket: dict[str, Any] | None = None) -> Iterator[Stack]:
    """The stack for a module-scoped fixture; ``eticket``: parameter overrides of its new consortium."""
    var = tmp_path_factory.mktemp("serve")
    extra: list[str] = []
    if eticket is not None:
        (var / "eticket.json").write_text(json.dumps(eticket, ensure_ascii=False), encoding="utf-8")
        extra = ["--eticket-params", str(var / "eticket.json")]
    with run_stack(var, *extra) as s:
        yield s


@contextmanager
def run_stack(var: Path, *extra: str) -> Iterator[Stack]:
    """The stack in ``var``; ``extra``: more ``tools.serve`` options (``--tick-interval-s 1``, ``--eticket K=V``,
    ``--eticket-params FILE``, ``--simulate``)."""
    child = Child("the stack (tools.serve)",  # port 0: the stack binds free ports itself and holds them
                  [sys.executable, "-m", "tools.serve", "--var", str(var), "--port", "0", "--node-base-port", "0",
                   "--wechat-port", "0", "--workers", "2", "--threads", "16", *extra],
                  cwd=ROOT, log=var / "serve.out")
    try:
        deadline = time.monotonic() + 120
        while not (var / "serve.ready").exists():
            if not child.running():
                raise child.died()
            if time.monotonic() > deadline:
                raise TimeoutError("the stack did not start in 120 s:\n" + tail(var / "serve.out", 40))
            time.sleep(0.3)
        api = (var / "serve.ready").read_text(encoding="utf-8")  # the API's URL
        assert requests.get(f"{api}/api/health", timeout=5).json()["ledger"] == "configured"
        yield Stack(var=var, api=api, demo=json.loads((var / "demo.json").read_text(encoding="utf-8")), child=child)
    finally:
        child.stop(60)  # SIGTERM: the stack stops what it started; SIGKILL to its group after 60 s
        left = subprocess.run(["pgrep", "-f", str(var)], capture_output=True, text=True).stdout.split()
        assert not left, f"processes of the stack still running: {left}"


def verify_export(stack: Stack, export: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``scripts/verify-export`` on ``export``, pinned to the stack's own consortium file."""
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    genesis = json.loads((stack.var / "consortium.json").read_text())["consortium"]
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "verify-export"), str(path), "--consortium", genesis],
                          capture_output=True, text=True, timeout=60)
