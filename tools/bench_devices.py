"""``scripts/bench-devices``: provisioning device tokens, 784 in one API call vs the CLI one process per token.

Starts the API under gunicorn (2 workers, a fresh SQLite database in a temporary directory, no ledger: the
registry check on the chain is one ``trucks_by_plate`` query per call whatever its size, and is left out so
the figure is the API's own), then

* **CLI** — ``python -m ticket_api tokens issue`` once per token (the path operators had: 300 GPS terminals
  took 227 s), ``--cli-tokens`` times, extrapolated to ``--devices``;
* **API** — ``POST /api/v1/devices`` with ``--devices`` truck terminals in one call (one transaction, a
  SHA-256 per token), ``--repeat`` times on fresh plates, and a check that a provisioned token authenticates.

Prints a JSON report (``--json``) or a short table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from tools.proc import Child, free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def _env(work: Path) -> dict[str, str]:
    secrets = work / "secrets.json"
    secrets.write_text(json.dumps({"WECHAT_SECRET": "bench-secret"}), encoding="utf-8")
    secrets.chmod(0o600)
    env = {**os.environ, "TICKET_API_DATABASE_URL": f"sqlite:///{work}/api.sqlite",
           "TICKET_API_SECRETS_FILE": str(secrets), "TICKET_API_QR_SIGNING_KEY_FILE": str(work / "issuer.pem"),
           "TICKET_API_WECHAT_APPID": "wx-bench", "TICKET_API_LOG_LEVEL": "WARNING"}
    env.pop("TICKET_API_SERVICES", None)
    return env


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ticket_api", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"ticket_api {args[:2]} failed: {done.stderr.strip()}")
    return done.stdout


def _plates(run: int, n: int) -> list[str]:
    return [f"渝{'ABCDEFGH'[run % 8]}{i:05d}" for i in range(n)]


def bench(devices: int, cli_tokens: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-devices-") as tmp:
        work = Path(tmp)
        env = _env(work)
        _cli(env, "keys", "generate", "--out", str(work / "issuer.pem"))
        started = time.perf_counter()
        for i in range(cli_tokens):
            _cli(env, "tokens", "issue", "--role", "truck_terminal", "--tenant", f"渝Z{i:05d}",
                 "--subject", f"GPS-{i}", "--json")
        cli_s = (time.perf_counter() - started) / cli_tokens
        operator = json.loads(_cli(env, "tokens", "issue", "--role", "operator", "--tenant", "centre-bench",
                                   "--subject", "bench", "--json"))["token"]
        port = free_port()
        child = Child("the API (gunicorn)", [GUNICORN, "--bind", f"127.0.0.1:{port}", "--workers", "2",
                                             "--timeout", "120", "--no-control-socket",
                                             "ticket_api.app:create_app()"],
                      cwd=ROOT, env=env, log=work / "api.log")
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/api/health", child, timeout=60)
            http = requests.Session()
            auth = {"Authorization": f"Bearer {operator}"}
            times: list[float] = []
            sample = ""
            for run in range(repeat):
                body = {"devices": [{"kind": "truck_terminal", "id": p} for p in _plates(run, devices)]}
                t0 = time.perf_counter()
                r = http.post(url + "/api/v1/devices", json=body, headers=auth, timeout=300)
                times.append(time.perf_counter() - t0)
                if r.status_code != 201 or len(r.json()["items"]) != devices:
                    raise RuntimeError(f"provisioning answered {r.status_code}: {r.text[:300]}")
                sample = r.json()["items"][-1]["token"]
            me = http.get(url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {sample}"}, timeout=30)
            if me.status_code != 200 or me.json()["role"] != "truck_terminal":
                raise RuntimeError(f"a provisioned token does not authenticate: {me.status_code}")
        finally:
            child.stop(15)
    api_s = statistics.median(times)
    return {"devices": devices, "cli_tokens": cli_tokens, "cli_s_per_token": round(cli_s, 3),
            "cli_s_extrapolated": round(cli_s * devices, 1), "api_runs_s": [round(t, 3) for t in times],
            "api_s_median": round(api_s, 3), "api_devices_per_s": round(devices / api_s),
            "speedup": round(cli_s * devices / api_s), "cpus": os.cpu_count()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench-devices", description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=784, help="devices per API call (default 784)")
    p.add_argument("--cli-tokens", type=int, default=10, help="tokens issued one CLI process each (default 10)")
    p.add_argument("--repeat", type=int, default=3, help="API calls, each on fresh plates (default 3)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    if not 1 <= args.devices <= 1000 or args.cli_tokens < 1 or args.repeat < 1:
        p.error("--devices 1..1000, --cli-tokens and --repeat at least 1")
    report = bench(args.devices, args.cli_tokens, args.repeat)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(f"CLI, one process per token: {report['cli_s_per_token']} s/token "
              f"→ {report['cli_s_extrapolated']} s for {args.devices}")
        print(f"API, {args.devices} in one call: {report['api_s_median']} s median of {report['api_runs_s']} "
              f"({report['api_devices_per_s']} devices/s, {report['speedup']}× faster)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
