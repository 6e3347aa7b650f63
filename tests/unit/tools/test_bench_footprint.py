"""The footprint benchmark counts each process of the stack as the right kind."""

from __future__ import annotations

from tools.bench_footprint import kind_of


def test_the_launcher_is_not_counted_as_what_its_options_name() -> None:
    """``tools.serve --ordering etcd --simulate`` is the launcher, not etcd or the simulator; etcd is the etcd
    binary; nodes, gunicorn, the notifier and the simulator are themselves; anything else is not ours."""
    assert kind_of("/v/bin/python -m tools.serve --var /tmp/x --ordering etcd --simulate") == "launcher"
    assert kind_of("/usr/bin/etcd --name etcd0 --data-dir /tmp/x/etcd/etcd0/data") == "etcd"
    assert kind_of("/v/bin/python -m consortium_nodes run --config /tmp/x/nodes/a/node.json") == "node"
    assert kind_of("/v/bin/python /v/bin/gunicorn --workers 2 ticket_api.app:create_app()") == "api"
    assert kind_of("/v/bin/python -m ticket_api notify") == "notifier"
    assert kind_of("/v/bin/python -m tools.simulate --var /tmp/x --speed 10") == "simulator"
    assert kind_of("/usr/bin/python3 -m http.server --directory /tmp/x/etcd") is None
