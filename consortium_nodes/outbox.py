"""Our header signatures on their way to the peers: one outbox and one sender thread per peer."""

from __future__ import annotations

import threading
from typing import Any

from consortium_nodes.peers import PeerLink

#: seconds a sender sleeps on an empty outbox before it looks at the stop flag again
IDLE_WAIT = 0.5


class SignatureOutbox:
    """Signatures queued per peer (a slow peer delays no other); one condition guards the outboxes."""

    def __init__(self, *, name: str, peers: PeerLink, stop: threading.Event) -> None:
        self._name = name
        self._peers = peers
        self._stop = stop
        self._cond = threading.Condition()
        self._outboxes: dict[str, list[dict[str, Any]]] = {peer: [] for peer in peers.urls}

    @property
    def peers(self) -> list[str]:
        return list(self._outboxes)

    def push(self, item: dict[str, Any]) -> None:
        """Queue one signature item (``height``, ``header_hash``, signature fields) for every peer."""
        with self._cond:
            for outbox in self._outboxes.values():
                outbox.append(item)
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def run(self, peer: str) -> None:
        """Thread body: push the queued signatures to ``peer`` until stopped."""
        while not self._stop.is_set():
            self.send(peer, wait=IDLE_WAIT)

    def send(self, peer: str, *, wait: float = 0.0) -> int:
        """Push what is queued for ``peer`` (waiting up to ``wait`` s for something); how many were sent."""
        with self._cond:
            if not self._outboxes[peer] and wait > 0:
                self._cond.wait(wait)
            items, self._outboxes[peer] = self._outboxes[peer], []
        if items:
            self._peers.push_signatures_to(peer, self._name, items)
        return len(items)
