"""The embedded default stack keeps its secrets: no secret on a command line, data files, keys and logs
readable by their owner only, and no token, app secret or openid in any log."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
import requests

from .serve_fixtures import Stack, stack  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow]


def _cmdlines(var: Path) -> dict[int, list[str]]:
    """The command lines (as ``ps`` shows them, from /proc/<pid>/cmdline) of every process of this stack."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if any(str(var) in a for a in argv):
            out[int(d.name)] = argv
    return out


def test_ps_shows_no_secret(stack: Stack) -> None:  # noqa: F811
    """The fake WeChat server started by tools.serve gets its app secret from a file: neither its command line
    nor any other process's of the stack holds the secret."""
    secret = json.loads((stack.var / "secrets" / "api-secrets.json").read_text())["WECHAT_SECRET"]
    procs = _cmdlines(stack.var)
    wechat = [argv for argv in procs.values() if "miniprogram_stub" in argv and "wechat" in argv]
    assert len(wechat) == 1, procs
    assert "--secret-file" in wechat[0] and "--secret" not in wechat[0]
    assert len(procs) >= 6  # serve, 4 nodes, the WeChat server, gunicorn and its workers
    for pid, argv in procs.items():
        assert secret not in " ".join(argv), f"process {pid} shows the secret: {argv}"


def test_data_files_keys_and_logs_are_owner_only(stack: Stack) -> None:  # noqa: F811
    """The API database, the ledger databases and their WAL, the node logs, the API logs, the demo tokens and
    the keys are 0600 (nothing for group or others); their directories are 0700."""
    var = stack.var
    files = [var / "ticket_api.sqlite", var / "api.log", var / "api-access.log", var / "demo.json",
             *var.glob("nodes/*/ledger.db*"), *var.glob("nodes/*/node.log"), *var.glob("secrets/*"),
             *var.glob("genesis/keys/*.pem")]
    assert len(list(var.glob("nodes/*/ledger.db"))) == 4 and len(list(var.glob("nodes/*/node.log"))) == 4
    for f in files:
        mode = stat.S_IMODE(os.stat(f).st_mode)
        assert mode & 0o077 == 0, f"{f} is {mode:o}"
    for d in [var, var / "secrets", var / "nodes", *var.glob("nodes/*")]:
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d


def test_no_token_or_openid_in_any_log(stack: Stack) -> None:  # noqa: F811
    """A token sent as ``?access_token=`` and a WeChat user's openid appear in no log of the stack (the API's
    JSON log, gunicorn's access log, the nodes' logs, the launcher's output): the access log line has no query
    string, and the API logs a WeChat user as a hash of the openid."""
    token = stack.demo["tokens"]["regulator"]
    requests.get(f"{stack.api}/api/v1/auth/me", params={"access_token": token}, timeout=10)
    login = requests.post(f"{stack.api}/api/v1/auth/wechat", json={"code": stack.demo["contractor_wechat_code"]},
                          timeout=10)
    assert login.status_code == 200, login.text
    wx_token = login.json()["token"]
    me = requests.get(f"{stack.api}/api/v1/auth/me", headers={"Authorization": f"Bearer {wx_token}"}, timeout=10)
    assert me.status_code == 200 and me.json()["subject"] == "wx:demo-openid-org001"
    time.sleep(1.5)  # gunicorn and the API flush their log lines
    logs = [p for p in stack.var.rglob("*") if p.is_file() and p.suffix in (".log", ".out")]
    assert stack.var / "api-access.log" in logs
    assert "/api/v1/auth/me" in (stack.var / "api-access.log").read_text(encoding="utf-8")
    for p in logs:
        text = p.read_text(encoding="utf-8", errors="replace")
        assert token not in text and wx_token not in text, f"a token is in {p}"
        assert "access_token" not in text, f"a query string is in {p}"
        assert "demo-openid-org001" not in text, f"an openid is in {p}"
    hashed = [p for p in logs if "wx#" in p.read_text(encoding="utf-8", errors="replace")]
    assert hashed, "the API logs the WeChat user as a hash"


def test_a_second_sigterm_while_stopping_still_stops_everything(stack: Stack) -> None:  # noqa: F811
    """(Last in this file: it stops the stack.)  More SIGTERMs while it stops — a supervisor that repeats itself, or
    Ctrl-C pressed twice — still stop every process of the stack: the second signal used to cut the stop
    short inside it (``SystemExit`` raised in the middle of stopping the children), leaving the nodes, gunicorn
    and the notifier running."""
    import signal
    import subprocess

    stack.child.proc.send_signal(signal.SIGTERM)
    for _ in range(15):  # more signals while it stops
        time.sleep(0.2)
        if stack.child.proc.poll() is not None:
            break
        stack.child.proc.send_signal(signal.SIGTERM)
    stack.child.proc.wait(timeout=90)
    deadline = time.monotonic() + 20
    left: list[str] = ["?"]
    while left and time.monotonic() < deadline:
        left = subprocess.run(["pgrep", "-f", str(stack.var)], capture_output=True, text=True).stdout.split()
        time.sleep(0.5)
    assert not left, f"processes of the stack still running: {left}"
