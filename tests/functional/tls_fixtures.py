"""One ``requests`` session for a test module's calls to nodes over mutual TLS.

A fixture that starts a consortium mounts its node URLs on :data:`HTTP` with
``LocalConsortium.mount(HTTP, member)``; the tests then call ``HTTP.get``/``HTTP.post`` as they would
``requests``.  :data:`NODE_MEMBER` is the node member whose certificate they use (not the solo leader, so
peer routes on the leader are called as another node would).
"""

from __future__ import annotations

import requests

NODE_MEMBER = "jiaotong"

HTTP = requests.Session()
HTTP.trust_env = False
