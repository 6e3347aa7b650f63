"""The consortium's clock: one ``system.tick`` per interval, submitted by exactly one elected node.

The time-driven rules (ticket and permit expiry, overdue trips 疑似偷倒) run when a ``system.tick``
is applied, at its block's time (:func:`ledger.eticket.rules_trip.system_tick`).  Every node runs a
:class:`Scheduler`; only the one its :class:`Election` says leads submits ticks:

* solo ordering: the solo orderer's node leads (:class:`FixedElection`), the others never do;
* etcd ordering: the node holding the election key leads (:class:`EtcdElection`): a key created in
  one transaction only if absent, attached to the node's lease, kept alive while the node lives.
  When the leader dies its lease expires, etcd deletes the key and another node's next campaign
  creates it.

Ticks fall on interval boundaries of the node's clock (slot ``floor(t / interval)``); a leader
ticks once per slot, and a node that just became leader waits for the next slot, so in steady
state there is never more than one tick per interval.  A tick's nonce is its slot: a re-submission
by the same node is the same transaction (answered ``known``).  Two ticks from two nodes during a
takeover are harmless: the second one finds nothing due (the rules are idempotent at one block time).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from consortium_nodes.etcd_client import EtcdTransport, b64, describe, unb64
from consortium_nodes.ordering import OrderingError
from ledger import transport
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import iso
from ledger.core.transaction import Transaction
from ledger.transport import Tls

log = logging.getLogger("consortium_nodes.scheduler")

#: the transaction type the scheduler submits
TICK_TYPE = "system.tick"


class Election(Protocol):
    """Who of the consortium's nodes schedules ticks right now."""

    kind: str

    def campaign(self) -> bool:
        """Try to become (or stay) the leader; True while this node leads.  Never raises."""

    def resign(self) -> None:
        """Give up leadership (at stop), so another node can take over at once.  Never raises."""


class FixedElection:
    """Solo ordering: the solo orderer's node always leads, the others never do."""

    kind = "solo"

    def __init__(self, *, leader: bool) -> None:
        self.leader = leader

    def campaign(self) -> bool:
        return self.leader

    def resign(self) -> None:
        pass


class EtcdElection:
    """Leadership held through an etcd lease: ``<prefix>/<role>/leader`` = node name, attached to the lease
    (``role``: ``scheduler``, or ``proposer`` for :mod:`consortium_nodes.proposer`).  :attr:`holder` is the
    name the key held at the last campaign.

    A campaign first reads who holds the key (a linearizable read, no write): held under another lease,
    this node is not leader and asks nothing more (its own lease may expire meanwhile: it is granted
    again when needed); held under our lease, it keeps the lease alive; absent, it keeps or grants
    our lease and creates the key (one transaction: ``create_revision == 0``, which also reads who won).
    So only a take-over writes to etcd's log; the steady state costs the leader a read and a keep-alive
    and each other node a read.  This node counts itself leader only until ``ttl`` seconds after its
    last successful keep-alive was sent, which is before etcd can expire the lease and let another node in.
    """

    kind = "etcd"

    def __init__(self, *, name: str, endpoints: Sequence[str], prefix: str, ttl: float = 10.0,
                 request_timeout: float = 1.0, monotonic: Callable[[], float] = time.monotonic,
                 tls: Tls | None = None, role: str = "scheduler") -> None:
        self.name = name
        self.role = role
        self.key = prefix.rstrip("/") + f"/{role}/leader"
        self.holder: str | None = None
        self.ttl = max(2, round(ttl))  # etcd's lease TTLs are whole seconds (its minimum is about 2 s)
        self._transport = EtcdTransport(endpoints=[e.rstrip("/") for e in endpoints],
                                        request_timeout=request_timeout, retry_for=min(self.ttl / 3, 3.0),
                                        session=lambda: transport.session(tls))
        self._monotonic = monotonic
        self._lease: int | None = None
        self._valid_until = 0.0  # monotonic time until which we may count ourselves leader

    def _keep_lease(self) -> int:
        sent = self._monotonic()
        if self._lease is not None:
            lease_id = self._lease
            ttl = self._transport.call("lease keepalive", lambda c: int(
                c.post(c.get_url("/lease/keepalive"), json={"ID": lease_id})["result"].get("TTL", -1)))
            if ttl > 0:
                self._valid_until = sent + ttl
                return lease_id
            self._lease = None  # expired (we were paused or cut off): any key of ours is gone
        grant = self._transport.call("lease grant", lambda c: dict(
            c.post(c.get_url("/lease/grant"), json={"TTL": self.ttl, "ID": 0})))
        self._lease = int(grant["ID"])
        self._valid_until = sent + int(grant.get("TTL", self.ttl))
        return self._lease

    def _holder(self) -> int | None:
        """The lease the election key is attached to now (None: nobody holds it)."""
        kvs = self._transport.call(f"{self.role} leader", lambda c: list(
            c.post(c.get_url("/kv/range"), json={"key": b64(self.key)}).get("kvs", [])))
        self.holder = self._name_of(kvs)
        return int(kvs[0].get("lease", 0)) if kvs else None

    @staticmethod
    def _name_of(kvs: list[Any]) -> str | None:
        try:
            return unb64(str(kvs[0]["value"])).decode("utf-8") if kvs else None
        except (KeyError, TypeError, ValueError, IndexError):
            return None

    def campaign(self) -> bool:
        try:
            holder = self._holder()
            if holder is not None and holder != self._lease:
                return False  # another node leads (or our lease was replaced): nothing to write
            lease = self._keep_lease()
            if holder is not None and holder == lease:
                return self._monotonic() < self._valid_until
            key = b64(self.key)
            result = self._transport.txn("scheduler election", {
                "compare": [{"key": key, "result": "EQUAL", "target": "CREATE", "create_revision": 0}],
                "success": [{"request_put": {"key": key, "value": b64(self.name), "lease": lease}}],
                "failure": [{"request_range": {"key": key}}],
            })
            if result.get("succeeded"):
                leader = True
                self.holder = self.name
            else:
                kvs = result["responses"][0].get("response_range", {}).get("kvs", [])
                leader = bool(kvs) and int(kvs[0].get("lease", 0)) == lease
                self.holder = self._name_of(kvs)
            return leader and self._monotonic() < self._valid_until
        except (OrderingError, KeyError, TypeError, ValueError) as exc:
            log.warning("%s %s: etcd election failed: %s", self.role, self.name, describe(exc))
            self.holder = None
            return False  # without an answer from etcd we cannot know we still hold the key

    def resign(self) -> None:
        lease, self._lease = self._lease, None
        self._valid_until = 0.0
        if lease is not None:
            try:  # the key is attached to the lease: revoking deletes it
                self._transport.call("lease revoke", lambda c: c.post(c.get_url("/kv/lease/revoke"),
                                                                      json={"ID": lease}))
            except OrderingError as exc:
                log.warning("scheduler %s: lease revoke failed: %s", self.name, describe(exc))
        self._transport.close()


class Scheduler:
    """Submits one ``system.tick`` per ``interval`` seconds while this node leads the election.

    ``submit`` admits transactions as :meth:`consortium_nodes.node.Node.submit` does; ``clock`` is the
    node's clock.  :meth:`step` is one round (campaign, tick if a new slot began while leading);
    :meth:`run` loops it until ``stop`` is set.
    """

    def __init__(self, *, name: str, key: PrivateKey, election: Election, interval: float,
                 submit: Callable[[Sequence[Any]], Sequence[Any]], clock: Callable[[], datetime],
                 stop: threading.Event, campaign_every: float | None = None) -> None:
        if interval <= 0:
            raise ValueError("the tick interval must be positive")
        self.name = name
        self.key = key
        self.election = election
        self.interval = interval
        self._submit = submit
        self._clock = clock
        self._stop = stop
        ttl = getattr(election, "ttl", None)
        self.campaign_every = campaign_every or min(interval, ttl / 3 if ttl else interval)
        self.leader = False
        self.last_slot: int | None = None  # the slot of our last tick (or of our taking over)
        self.last_tick: str | None = None  # its time, ISO 8601 +08:00
        self.last_tx_id: str | None = None
        self.ticks = 0
        self.error: str | None = None

    def slot(self, now: datetime) -> int:
        return int(now.timestamp() // self.interval)

    def tick_tx(self, now: datetime, slot: int) -> Transaction:
        """The tick of ``slot``, signed by this node's key; its nonce is the slot (same slot, same tx)."""
        return Transaction.create(key=self.key, type=TICK_TYPE, payload={}, actor=f"system:scheduler:{self.name}",
                                  timestamp=iso(now), nonce=f"{slot:032x}")

    def step(self) -> bool:
        """One round; True when a tick was submitted."""
        leader = self.election.campaign()
        now = self._clock()
        slot = self.slot(now)
        if leader and not self.leader:
            log.info("node %s: scheduler leader from slot %d", self.name, slot)
            self.last_slot = slot  # wait for the next boundary: the previous leader may have ticked this slot
        elif self.leader and not leader:
            log.info("node %s: scheduler no longer leader", self.name)
        self.leader = leader
        if not leader or (self.last_slot is not None and slot <= self.last_slot):
            return False
        tx = self.tick_tx(now, slot)
        try:
            result = self._submit([tx.to_dict()])[0]
        except Exception as exc:  # a refused tick (storage fault: NotReady) is tried again next round
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("node %s: tick not submitted: %s", self.name, self.error)
            return False
        status = getattr(result, "status", None)
        if status == "rejected":
            self.error = f"{getattr(result, 'reason', '')}: {getattr(result, 'message', '')}"
            log.error("node %s: tick refused: %s", self.name, self.error)
            return False
        self.error = None
        self.last_slot, self.last_tick, self.last_tx_id = slot, iso(now), tx.tx_id
        self.ticks += 1
        return True

    def wait_time(self) -> float:
        """Seconds until the next round: the next boundary when leading, at most ``campaign_every``."""
        now = self._clock().timestamp()
        to_boundary = self.interval - (now % self.interval) + 0.01
        return max(0.05, min(self.campaign_every, to_boundary))

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                self.step()
                self._stop.wait(self.wait_time())
        finally:
            self.election.resign()

    def status(self) -> dict[str, Any]:
        """``leader``, ``election`` (solo/etcd), ``interval_s``, ``last_tick`` (our last, +08:00), ``ticks``."""
        return {"leader": self.leader, "election": self.election.kind, "interval_s": self.interval,
                "last_tick": self.last_tick, "last_tx_id": self.last_tx_id, "ticks": self.ticks,
                "error": self.error}
