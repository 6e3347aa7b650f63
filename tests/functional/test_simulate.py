"""The simulated city (``scripts/simulate``, ``scripts/serve --simulate``) drives the real API of a real stack.

One stack, started as ``tools.serve --simulate`` with a tiny city at 120 times real time and every truck
misbehaving on purpose, so what the night must produce is certain: tickets, exits, GPS batches and
receipts through the API, and the violations the ledger raised from them, listed by the API.  Its
consortium wants every device act signed by the device (``act_signed``): the simulator's gates, cameras
and GPS terminals sign with their own keys, registered by the operator.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ledger.eticket.acts import DEFAULT_ACT_SIGNED, DEVICE_ACTS
from tools.proc import tail
from tools.sim_city import make_city

from .serve_fixtures import ROOT, Stack, run_stack

SIGNED = [*DEFAULT_ACT_SIGNED, *DEVICE_ACTS]
#: the refusals of an act its actor did not sign, or signed wrongly
ACT_CODES = {"act_unsigned", "unknown_act_key", "act_key_mismatch", "key_revoked", "key_expired",
             "key_not_yet_valid", "bad_act_signature"}
SIM = "--fraction 0.02 --speed 120 --hours 3 --seed 3 --rates uncovered=1,speeding=1,discrepancy=0 --workers 16"


@pytest.fixture(scope="module")
def sim_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    var = tmp_path_factory.mktemp("sim")
    (var / "eticket.json").write_text(json.dumps({"act_signed": SIGNED}), encoding="utf-8")
    with run_stack(var, "--simulate", "--simulate-args", SIM, "--eticket-params", str(var / "eticket.json")) as s:
        yield s


def _summary(stack: Stack, timeout: float = 240) -> dict:
    """The simulator's JSON summary, once its night (3 city hours = 90 s at speed 120) has ended."""
    log = stack.var / "simulate.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(encoding="utf-8") if log.exists() else ""
        m = re.search(r"^\{\n.*^\}$", text, re.S | re.M)
        if m:
            return json.loads(m.group(0))
        time.sleep(1)
    raise AssertionError("no summary from the simulator:\n" + tail(log, 40))


def test_the_simulated_night_goes_through_the_api_and_the_ledger_catches_what_was_injected(sim_stack: Stack) -> None:
    """Every truck's first exit is uncovered and every trip speeds once: the API refuses the uncovered exits,
    the trucks come back covered and leave, report GPS and unload; the ledger raises exactly the violations the
    night caused (one uncovered_load per uncovered scan or uncovered black truck on camera, speeding), no call
    ends in a 5xx, no device act is refused for its signature (each device signs with its own key), and the
    stack stays up after the night."""
    s = _summary(sim_stack)
    city = make_city(fraction=0.02, seed=3)
    assert s["city"]["trucks"] == len(city.trucks) and s["city"]["projects"] == len(city.projects)
    c = s["counts"]
    assert s["errors"] == [] and "errors" not in c, s
    assert c["tickets_issued"] >= len(city.trucks), s
    assert c["exits"] >= len(city.trucks) // 2 and c["gps_batches"] >= c["exits"], s
    assert c.get("receipts", 0) >= 1, s
    assert c["injected_uncovered"] >= c["exits"], s  # each accepted exit was uncovered once before
    assert s["refused"]["exit:uncovered_load"] == c["injected_uncovered"], s
    assert not {r.split(":", 1)[1] for r in s["refused"]} & ACT_CODES, s
    # one per uncovered scan at most (repeats within two hours are one event), and the exit cameras' uncovered
    # black trucks' own
    assert 1 <= s["violations"]["uncovered_load"] <= c["injected_uncovered"] + c.get("injected_black_uncovered", 0), s
    assert s["violations"].get("speeding", 0) >= 1, s
    # the API lists them too, outside the simulator (the night's violations are on the ledger)
    listed = requests.get(f"{sim_stack.api}/api/v1/violations", params={"limit": 200, "type": "uncovered_load"},
                          headers=sim_stack.headers("operator"), timeout=30)
    assert listed.status_code == 200
    plates = {v["plate"] for v in listed.json()["items"]}
    assert plates and plates <= {t.plate for t in city.trucks}
    assert sim_stack.child.running(), tail(sim_stack.var / "serve.out", 30)
    assert requests.get(f"{sim_stack.api}/api/health", timeout=10).status_code == 200


def test_a_second_run_reuses_the_city_and_stops_by_itself(sim_stack: Stack) -> None:
    """``scripts/simulate`` against a stack that already holds the city reuses it (no new registrations, no new
    devices: its state file) and stops within its ``--duration`` on its own, exit status 0."""
    _summary(sim_stack)  # the first night is over
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "tools.simulate", "--var", str(sim_stack.var), *SIM.split(),
                           "--duration", "15"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "TICKET_API_DATABASE_URL":
                               f"sqlite:///{sim_stack.var / 'ticket_api.sqlite'}"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - started < 15 + 60
    s = json.loads(done.stdout)
    assert s["counts"].get("tickets_issued", 0) >= 1 and not s["errors"]
    state = json.loads((Path(sim_stack.var) / "sim" / "state.json").read_text(encoding="utf-8"))
    assert state["city"] == {"seed": 3, "fraction": 0.02}
    assert oct((Path(sim_stack.var) / "sim" / "state.json").stat().st_mode & 0o777) == "0o600"
    city = make_city(fraction=0.02, seed=3)
    assert Counter({k: len(v) for k, v in state["devices"].items() if k != "camera"}) == Counter(
        {"exit_gate": len(city.projects), "disposal_gate": len(city.sites), "truck_terminal": len(city.trucks)})
    assert {a for a in state["device_keys"] if not a.startswith("camera:")} == {
        *(f"gate:exit:{p.project_id}" for p in city.projects), *(f"gate:disposal:{x.site_id}" for x in city.sites),
        *(f"gps:{t.terminal_id}" for t in city.trucks)}
    listed = requests.get(f"{sim_stack.api}/api/v1/devices", params={"kind": "exit_gate", "limit": 1000},
                          headers=sim_stack.headers("operator"), timeout=30).json()["items"]
    sim_gates = [d for d in listed if d["id"].startswith("P-SIM")]
    assert len(sim_gates) == len(city.projects)  # provisioned once, not again by the second run
