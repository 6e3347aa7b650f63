"""Following the chain's final blocks with the durable cursor, and the notifier's loop.

``python -m ticket_api notify`` runs :func:`run_forever`: exactly one per API deployment (``tools/serve.py``
starts it beside gunicorn; see docs/ARCHITECTURE.md).  Each final block's events go to the outbox in the
one database transaction that also moves the cursor to that block, so a notifier killed at any point
resumes at the first block it had not written, and a block written twice would add no row (unique key).
A batch of blocks (up to ``BATCH``) is one transaction, so a busy chain costs the database few writes.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Mapping
from typing import Any

from ticket_api.errors import ApiError
from ticket_api.ledger_client import NodeClient
from ticket_api.notify.deliver import WechatSender, deliver_due
from ticket_api.notify.events import events_of_block
from ticket_api.notify.outbox import Outbox

log = logging.getLogger("ticket_api.notify")

#: blocks read per request
BATCH = 20
#: seconds a node holds the question "anything final after the cursor?" before it answers no (a long poll)
LONG_POLL = 3.0


class Follower:
    """Reads final blocks after the cursor and records their events."""

    def __init__(self, client: NodeClient, outbox: Outbox, *, start: str = "genesis", batch: int = BATCH,
                 long_poll: float = LONG_POLL) -> None:
        self.client, self.outbox, self.start, self.batch = client, outbox, start, batch
        self.long_poll = long_poll

    def step(self) -> int:
        """Record the events of the next final blocks (at most ``batch``); how many blocks were recorded.
        With a cursor, the node is asked to answer once a block after it is final (up to ``long_poll`` s)."""
        cur = self.outbox.cursor()
        final = self.client.final_height(after=cur, wait=self.long_poll if cur is not None else 0.0)
        if cur is None:
            # first run: from the genesis block, or (``NOTIFY_START=head``) only what happens from now on
            cur = final if self.start == "head" else -1
            if self.start == "head":
                self.outbox.record(final, [], chain_height=final)
                return 0
        if cur >= final:
            return 0
        done, events = 0, []
        for block in self.client.blocks(cur + 1, min(self.batch, final - cur)):
            height = int(block["header"]["height"])
            if height != cur + 1 or height > final:
                break  # a node that answered other blocks than asked: ask again later

            def lookup(name: str, _h: int = height, **kwargs: Any) -> Any:
                return self.client.query_at(name, _h, **kwargs)

            events += events_of_block(block, lookup)
            cur, done = height, done + 1
        if done:  # the batch's rows and the cursor past its last block: one transaction
            self.outbox.record(cur, events, chain_height=final)
        return done


def node_client(cfg: Mapping[str, Any]) -> NodeClient:
    """The API's own client to the nodes (the gateway's mutual TLS identity), with a short timeout."""
    from ticket_api.adapter import ledger_connection

    return ledger_connection(cfg, timeout=5.0)[0]


def sender_of(cfg: Mapping[str, Any]) -> WechatSender:
    templates = cfg.get("NOTIFY_WECHAT_TEMPLATES") or {}
    return WechatSender(base_url=str(cfg["WECHAT_API_BASE"]), appid=str(cfg.get("WECHAT_APPID") or ""),
                        secret=str(cfg.get("WECHAT_SECRET") or ""),
                        templates=json.loads(templates) if isinstance(templates, str) else dict(templates),
                        state=str(cfg.get("NOTIFY_WECHAT_STATE") or "formal"),
                        language=str(cfg.get("NOTIFY_LANGUAGE") or "zh"),
                        timeout=float(cfg.get("WECHAT_TIMEOUT", 5.0)))


def run_forever(cfg: Mapping[str, Any], outbox: Outbox, stop: threading.Event | None = None) -> None:
    """Follow and deliver until ``stop`` is set (or SIGTERM / SIGINT in the main thread)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_a: stop.set())
    follower = Follower(node_client(cfg), outbox, start=str(cfg.get("NOTIFY_START") or "genesis"))
    sender = sender_of(cfg)
    poll = float(cfg.get("NOTIFY_POLL_SECONDS") or 0.5)
    failing = 0
    log.info("notifier started", extra={"cursor": outbox.cursor()})
    while not stop.is_set():
        busy = False
        try:
            busy = follower.step() > 0
            failing = 0
        except (ApiError, OSError, ValueError, KeyError) as exc:
            failing += 1
            log.warning("following the chain failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            outbox.note_error(f"{type(exc).__name__}: {exc}")
        try:
            busy = deliver_due(outbox, sender) > 0 or busy
        except OSError as exc:  # the database itself: try again on the next round
            log.warning("delivering failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        if not busy:
            stop.wait(min(30.0, poll * (2 ** min(failing, 6))))
    log.info("notifier stopped", extra={"cursor": outbox.cursor()})
