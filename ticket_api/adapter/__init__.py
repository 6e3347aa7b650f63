"""The ledger-backed services: the API as a gateway to the consortium.

Chosen by configuration (``SERVICES = "ticket_api.adapter:make_services"``) with either

* ``LEDGER_LOCAL`` — the ``consortium.json`` that ``scripts/consortium up`` writes (node URLs, the gateway
  key, and the node databases for a full audit), or
* ``LEDGER_NODES`` (list of node URLs) and ``LEDGER_GATEWAY_KEY_FILE`` (the gateway member's PEM key).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.store.keyfiles import read_private_key
from ticket_api.adapter import heights
from ticket_api.adapter.devices import LedgerDeviceRegistry
from ticket_api.adapter.gates import LedgerGates
from ticket_api.adapter.gateway import Gateway
from ticket_api.adapter.lists import LedgerLists
from ticket_api.adapter.staff import LedgerStaff
from ticket_api.adapter.tickets import LedgerPermits, LedgerTickets
from ticket_api.issuer import Keyring
from ticket_api.ledger_client import NodeClient
from ticket_api.services import Services


def _now() -> datetime:
    return datetime.now(UTC)


def make_services(cfg: Mapping[str, Any], keyring: Keyring) -> Services:
    """Build every service over one :class:`Gateway` from the configuration (see the module doc)."""
    from sqlalchemy import Engine

    local = cfg.get("LEDGER_LOCAL") or None
    if local:
        desc = json.loads(Path(local).read_text(encoding="utf-8"))
        urls = [n["url"] for n in desc["nodes"]]
        key_file = desc["gateway_key"]
    else:
        urls = list(cfg.get("LEDGER_NODES") or [])
        key_file = cfg.get("LEDGER_GATEWAY_KEY_FILE")
    if not urls or not key_file:
        raise RuntimeError("the ledger adapter needs LEDGER_LOCAL, or LEDGER_NODES and LEDGER_GATEWAY_KEY_FILE")
    client = NodeClient(urls=urls, wait=float(cfg.get("LEDGER_WAIT_SECONDS", 12.0)))
    gw = Gateway(key=read_private_key(key_file), client=client)
    engine: Engine = cfg["_ENGINE"]
    heights.ensure_table(engine)
    clock = cfg.get("_CLOCK") or _now
    gates = LedgerGates(gateway=gw, keyring=keyring, engine=engine, clock=clock,
                        leeway=timedelta(seconds=float(cfg.get("GATE_CLOCK_LEEWAY_SECONDS", 120))))
    gates.outbox.ensure_running()  # claims an earlier process left unsent go out now
    staff = LedgerStaff(gateway=gw, clock=clock, local_consortium=Path(local) if local else None)
    permits = LedgerPermits(gateway=gw, clock=clock)
    tickets = LedgerTickets(gateway=gw, keyring=keyring, clock=clock, engine=engine)
    return Services(
        permits=permits,
        tickets=tickets,
        gates=gates,
        trips=gates,
        audit=staff,
        staff=staff,
        devices=LedgerDeviceRegistry(gateway=gw),
        lists=LedgerLists(gateway=gw, clock=clock, permits=permits, tickets=tickets),
    )
