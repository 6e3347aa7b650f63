"""The embedded default stack (``python -m tools.serve``) as a pytest fixture: 4 real ledger nodes,
the fake WeChat server and the API under a real gunicorn, all on free loopback ports in a temp directory.

Import into a test module: ``from serve_fixtures import stack`` (module scope: one stack per test file).
``stack.demo`` is the ``demo.json`` that ``scripts/serve`` writes (tokens for every role, ids, plates).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    var: Path
    api: str
    demo: dict[str, Any]
    proc: subprocess.Popen[bytes]

    def headers(self, role: str, *, lang: str = "en") -> dict[str, str]:
        """Bearer headers of a demo token (``approvers.<dept>`` for a department)."""
        tokens = self.demo["tokens"]
        token = tokens["approvers"][role.split(".", 1)[1]] if role.startswith("approvers.") else tokens[role]
        return {"Authorization": f"Bearer {token}", "Accept-Language": lang}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    var = tmp_path_factory.mktemp("serve")
    port = free_port()
    log = open(var / "serve.out", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.serve", "--var", str(var), "--port", str(port), "--node-base-port", "0",
         "--wechat-port", str(free_port()), "--workers", "2", "--threads", "16"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not (var / "serve.ready").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            log.close()
            proc.kill()
            raise RuntimeError("the stack did not start:\n" + (var / "serve.out").read_text(errors="replace")[-3000:])
        time.sleep(0.3)
    api = f"http://127.0.0.1:{port}"
    assert requests.get(f"{api}/api/health", timeout=5).json()["ledger"] == "configured"
    try:
        yield Stack(var=var, api=api, demo=json.loads((var / "demo.json").read_text(encoding="utf-8")), proc=proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        left = subprocess.run(["pgrep", "-f", str(var)], capture_output=True, text=True).stdout.split()
        assert not left, f"processes of the stack still running: {left}"
