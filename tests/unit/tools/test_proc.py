"""``tools.proc``, the process helper every launcher and fixture uses: real child processes, no mocks."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import proc
from tools.serve import control_socket_args


def test_free_ports_are_free_and_distinct() -> None:
    """free_ports hands out distinct ports that can be bound right away, below the kernel's ephemeral range
    (so no outgoing connection can take one between our pick and the server's bind)."""
    ports = proc.free_ports(5)
    assert len(set(ports)) == 5
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(proc.SERVICE_PORT_LOW <= p < low for p in ports)
    for p in [*ports, proc.free_port()]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_a_listen_socket_holds_its_port_until_the_child_serving_it_starts(tmp_path: Path) -> None:
    """listen_socket binds a free port at once and holds it: no other process can bind it meanwhile (the race
    of a port found free and bound later, which made the stack's fake WeChat server die "Address already in
    use"); the fake WeChat server handed the socket (``--fd``) serves on it; a taken port is an OSError."""
    held = proc.listen_socket()
    port = held.getsockname()[1]
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))
    with pytest.raises(OSError):
        proc.listen_socket("127.0.0.1", port)
    child = proc.Child("the fake WeChat server",
                       [sys.executable, "-m", "miniprogram_stub", "wechat", "--port", str(port), "--fd",
                        str(held.fileno())], log=tmp_path / "wechat.log", pass_fds=[held.fileno()])
    held.close()
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/health", child, timeout=30)
    finally:
        child.stop()


def test_the_fake_wechat_server_on_a_taken_port_says_so_in_one_line(tmp_path: Path) -> None:
    """The fake WeChat server asked to listen on a port another process holds exits 2 with one line naming
    ``port_in_use`` and the port, never a traceback."""
    with proc.listen_socket() as held:
        port = held.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "miniprogram_stub", "wechat", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    err = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "port_in_use" in err[0] and str(port) in err[0], done.stderr


def test_a_child_that_dies_is_named_with_its_last_log_lines(tmp_path: Path) -> None:
    """Waiting for a child that exits fails at once with its name, its status and the end of its log."""
    code = "import sys\nfor i in range(30): print('line', i)\nsys.exit(3)"
    child = proc.Child("the flaky server", [sys.executable, "-c", code], log=tmp_path / "out.log")
    t0 = time.monotonic()
    with pytest.raises(proc.ChildDied) as info:
        proc.wait_http(f"http://127.0.0.1:{proc.free_port()}/health", child, timeout=30)
    assert time.monotonic() - t0 < 10
    msg = str(info.value)
    assert "the flaky server exited with status 3" in msg
    assert "line 29" in msg and "line 5\n" not in msg  # the last lines, not the whole log
    child.stop()


def test_stop_reaps_the_child_and_its_group(tmp_path: Path) -> None:
    """stop() ends the child and the processes it started (its process group) and reaps it: no zombie, no
    'subprocess is still running' ResourceWarning (the suite turns warnings into errors)."""
    pidfile = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time\n"
            f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
            f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
            "time.sleep(300)\n")
    child = proc.Child("a parent", [sys.executable, "-c", code], quiet=True)
    deadline = time.monotonic() + 20
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    assert proc.alive(child.pid) and proc.alive(grandchild)
    child.stop(5)
    assert child.proc.returncode is not None
    assert not proc.alive(child.pid)
    deadline = time.monotonic() + 10
    while proc.alive(grandchild):
        assert time.monotonic() < deadline, "the grandchild outlived stop()"
        time.sleep(0.05)
    del child
    gc.collect()


def test_stop_pid_stops_a_process_known_by_pid_only(tmp_path: Path) -> None:
    """stop_pid stops and reaps a process started elsewhere (a pid from a description file)."""
    child = proc.Child("sleeper", [sys.executable, "-c", "import time; time.sleep(300)"], quiet=True)
    assert proc.stop_pid(child.pid, timeout=5)
    assert not proc.alive(child.pid)
    assert proc.stop_pid(None) and proc.stop_pid(child.pid)  # nothing to stop is fine


def test_alive_is_false_for_a_zombie() -> None:
    """A child that exited but was not reaped yet does not count as running."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    deadline = time.monotonic() + 10
    while proc.alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.waitpid(pid, 0)


def test_each_stack_has_its_own_gunicorn_control_socket(tmp_path: Path) -> None:
    """A served stack puts gunicorn's control socket in its own directory (gunicorn's default is one path for
    the whole machine, ~/.gunicorn/gunicorn.ctl, which two stacks would share); none when the path is too
    long for a Unix socket."""
    assert control_socket_args(tmp_path) == ["--control-socket", str(tmp_path / "gunicorn.ctl")]
    assert control_socket_args(tmp_path / ("x" * 120)) == ["--no-control-socket"]


def test_a_detached_child_outlives_the_process_that_started_it(tmp_path: Path) -> None:
    """spawn_detached starts a daemon (``scripts/consortium up`` returns while its nodes run): it survives
    the exit of the process that started it, writes to its log, and stop_pid stops it by pid."""
    import subprocess

    code = ("import sys; from pathlib import Path; from tools.proc import spawn_detached\n"
            "print(spawn_detached([sys.executable, '-c', 'import time; print(\"up\", flush=True); time.sleep(300)'],"
            f" log=Path({str(tmp_path / 'd.log')!r})))")
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.strip())
    try:
        time.sleep(0.5)
        assert proc.alive(pid), "the detached child died with the process that started it"
        deadline = time.monotonic() + 10
        while "up" not in (tmp_path / "d.log").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        assert proc.stop_pid(pid, timeout=5)
    assert not proc.alive(pid)
