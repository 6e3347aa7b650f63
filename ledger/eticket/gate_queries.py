"""Read-side queries of the offline gates and the reconciliation (node queries besides ``queries``).

The nodes look a query's name up in ``ledger.eticket.queries`` and then here
(``consortium_nodes.queries.QUERY_MODULES``); only functions defined in this module answer.
"""

from __future__ import annotations

from typing import Any

from ledger.eticket import reconcile
from ledger.eticket import revocations as revocation_list
from ledger.eticket.machine import EticketMachine


def revocations(m: EticketMachine, **since: int) -> dict[str, Any]:
    """The offline gates' revocation list, or its delta (``since_version`` / ``since_time``;
    :mod:`ledger.eticket.revocations`)."""
    return revocation_list.entries(m, **since)


def reconciliation(m: EticketMachine, *, since: int, until: int, alarms_only: bool = False) -> list[dict[str, Any]]:
    """Per exit and site and local day of [since, until): tickets, scans, sightings, trips, gap, alarm
    (:mod:`ledger.eticket.reconcile`); ``alarms_only``: only the place-days in alarm."""
    return [r.to_json() for r in reconcile.reconciliation(m.state, since, until) if r.alarm or not alarms_only]
