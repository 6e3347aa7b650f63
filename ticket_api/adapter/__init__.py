"""The ledger-backed services: the API as a gateway to the consortium.

Chosen by configuration (``SERVICES = "ticket_api.adapter:make_services"``) with either

* ``LEDGER_LOCAL`` — the ``consortium.json`` that ``scripts/consortium up`` writes (node URLs, the gateway
  key, and the node databases for a full audit), or
* ``LEDGER_NODES`` (list of node URLs) and ``LEDGER_GATEWAY_KEY_FILE`` (the gateway member's PEM key), with
  ``LEDGER_CONSORTIUM_FILE`` (the consortium document: nodes of another genesis are never used) and, for
  ``https://`` nodes, ``LEDGER_TLS_CERT_FILE``/``LEDGER_TLS_KEY_FILE``/``LEDGER_TLS_CA_FILE`` (the gateway's
  TLS certificate issued under its member key, its key, the consortium's CA bundle).

The local consortium's description carries the same (``consortium``, ``gateway_tls``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.store.keyfiles import read_consortium, read_private_key
from ledger.transport import Tls
from ticket_api.adapter import heights
from ticket_api.adapter.amendments import LedgerAmendments
from ticket_api.adapter.cameras import LedgerCameras
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


def ledger_connection(cfg: Mapping[str, Any], *, timeout: float = 15.0) -> tuple[NodeClient, str]:
    """The client to the consortium's nodes (mutual TLS as the gateway when configured) and the gateway's key
    file, from ``LEDGER_LOCAL`` (a local consortium's description) or ``LEDGER_NODES``, ``LEDGER_GATEWAY_KEY_FILE``,
    ``LEDGER_CONSORTIUM_FILE`` and ``LEDGER_TLS_{CERT,KEY,CA}_FILE``."""
    local = cfg.get("LEDGER_LOCAL") or None
    members: dict[str, str] = {}
    if local:
        desc = json.loads(Path(local).read_text(encoding="utf-8"))
        urls = [n["url"] for n in desc["nodes"]]
        members = {n["url"]: n["name"] for n in desc["nodes"]}
        key_file = desc["gateway_key"]
        genesis_file, tls_files = desc.get("consortium"), desc.get("gateway_tls")
    else:
        urls = list(cfg.get("LEDGER_NODES") or [])
        key_file = cfg.get("LEDGER_GATEWAY_KEY_FILE")
        genesis_file = cfg.get("LEDGER_CONSORTIUM_FILE") or None
        tls_files = ({k: cfg[f"LEDGER_TLS_{k.upper()}_FILE"] for k in ("cert", "key", "ca")}
                     if cfg.get("LEDGER_TLS_CERT_FILE") else None)
    if not urls or not key_file:
        raise RuntimeError("the ledger adapter needs LEDGER_LOCAL, or LEDGER_NODES and LEDGER_GATEWAY_KEY_FILE")
    consortium = read_consortium(genesis_file) if genesis_file else None
    if tls_files and consortium is None:
        raise RuntimeError("LEDGER_TLS_* needs LEDGER_CONSORTIUM_FILE (the consortium document)")
    tls = Tls.load(tls_files, consortium) if tls_files and consortium is not None else None
    client = NodeClient(urls=urls, wait=float(cfg.get("LEDGER_WAIT_SECONDS", 12.0)), timeout=timeout, tls=tls,
                        members=members, genesis=consortium.genesis_hash if consortium is not None else None)
    return client, str(key_file)


def make_services(cfg: Mapping[str, Any], keyring: Keyring) -> Services:
    """Build every service over one :class:`Gateway` from the configuration (see the module doc)."""
    from sqlalchemy import Engine

    client, key_file = ledger_connection(cfg)
    local = cfg.get("LEDGER_LOCAL") or None
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
        cameras=LedgerCameras(gateway=gw, clock=clock,
                              leeway=timedelta(seconds=float(cfg.get("GATE_CLOCK_LEEWAY_SECONDS", 120)))),
        amendments=LedgerAmendments(gateway=gw, clock=clock),
    )
