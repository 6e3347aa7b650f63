"""Fixtures that run the fake WeChat server and the API under a real gunicorn on loopback ports.

Import them into a test module (``from api_fixtures import api_server, wechat_server``);
no conftest.py is needed.  Both servers are subprocesses torn down at the end
of the module; the API's stderr (its JSON logs) is kept in ``ApiServer.log_path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.proc import Child, listen_socket, wait_http

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
GUNICORN = str(Path(PYTHON).parent / "gunicorn")
APPID = "wx-func-appid"
SECRET = "wx-func-secret-DO-NOT-LOG"


@dataclass
class WechatServer:
    url: str


@dataclass
class ApiServer:
    url: str
    database_url: str
    log_path: Path
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``python -m ticket_api`` against this server's database."""
        return subprocess.run(
            [PYTHON, "-m", "ticket_api", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def issue(self, role: str, tenant: str, subject: str = "func", *extra: str) -> str:
        done = self.cli(
            "tokens", "issue", "--role", role, "--tenant", tenant, "--subject", subject, "--json", *extra
        )
        assert done.returncode == 0, done.stderr
        return str(json.loads(done.stdout)["token"])


@pytest.fixture(scope="module")
def wechat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WechatServer]:
    secret_file = tmp_path_factory.mktemp("wechat") / "secret"
    secret_file.write_text(SECRET, encoding="utf-8")
    secret_file.chmod(0o600)
    with listen_socket() as sock:  # held until the server holds it: nobody takes the port meanwhile
        port = sock.getsockname()[1]
        child = Child("the fake WeChat server",
                      [PYTHON, "-m", "miniprogram_stub", "wechat", "--port", str(port), "--fd", str(sock.fileno()),
                       "--appid", APPID, "--secret-file", str(secret_file)],  # never on the command line (ps)
                      cwd=ROOT, quiet=True, pass_fds=[sock.fileno()])
    try:
        wait_http(f"http://127.0.0.1:{port}/health", child, timeout=20)
        yield WechatServer(f"http://127.0.0.1:{port}")
    finally:
        child.stop(10)


@pytest.fixture(scope="module")
def api_server(wechat_server: WechatServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    work = tmp_path_factory.mktemp("api")
    secrets = work / "secrets.json"
    secrets.write_text(json.dumps({"WECHAT_SECRET": SECRET}), encoding="utf-8")
    secrets.chmod(0o600)
    database_url = f"sqlite:///{work}/api.sqlite"
    env = {
        **os.environ,
        "TICKET_API_DATABASE_URL": database_url,
        "TICKET_API_WECHAT_API_BASE": wechat_server.url,
        "TICKET_API_WECHAT_APPID": APPID,
        "TICKET_API_SECRETS_FILE": str(secrets),
        "TICKET_API_QR_SIGNING_KEY_FILE": str(work / "issuer.pem"),
        "TICKET_API_LOG_LEVEL": "INFO",
    }
    env.pop("TICKET_API_SERVICES", None)
    server = ApiServer("", database_url, work / "api.log", env)
    done = server.cli("keys", "generate", "--out", str(work / "issuer.pem"))
    assert done.returncode == 0, done.stderr
    with listen_socket() as sock:
        port = sock.getsockname()[1]
        child = Child("the API (gunicorn)",
                      [GUNICORN, "--bind", f"fd://{sock.fileno()}", "--workers", "2", "--timeout", "30",
                       "--no-control-socket",  # never the machine-wide ~/.gunicorn/gunicorn.ctl another stack uses
                       "ticket_api.app:create_app()"],
                      cwd=ROOT, env=env, log=server.log_path, pass_fds=[sock.fileno()])
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health", child, timeout=20)
        server.url = f"http://127.0.0.1:{port}"
        yield server
    finally:
        child.stop(10)
