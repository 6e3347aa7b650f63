"""The mini-program's side, for development, demos and tests.

* :mod:`miniprogram_stub.wechat` — a fake WeChat code2session server;
* :mod:`miniprogram_stub.client` — a Python client of the API;
* :mod:`miniprogram_stub.gate` — the offline gate library;
* ``python -m miniprogram_stub wechat|demo`` — the CLI.
"""
