"""A disposal receipt's measure: a volume, a net weight, or a weighbridge's gross and tare.

The ledger converts a weight without a volume at the consortium's ``density_t_per_m3`` (docs/ETICKET.md,
``gate.receipt``); this checks the combination before anything is signed, so a gate gets a clear
``bad_weighing`` naming the fields instead of the ledger's ``malformed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ticket_api.errors import Refused


def measure(data: Mapping[str, Any]) -> dict[str, str]:
    """The receipt payload's measure members (``volume_m3``, ``weight_t``, ``gross_t``, ``tare_t``: those given,
    as decimal strings); :class:`Refused` ``bad_weighing`` (422) on a combination the ledger would refuse."""
    volume, weight = data.get("volume_m3"), data.get("weight_t")
    gross, tare = data.get("gross_t"), data.get("tare_t")
    if (gross is None) != (tare is None):
        missing = "tare_t" if tare is None else "gross_t"
        raise Refused("gross_t and tare_t go together", reason="bad_weighing",
                      fields={missing: ["give gross_t and tare_t together"]})
    if gross is not None and tare is not None:
        if Decimal(tare) >= Decimal(gross):
            raise Refused("tare not below gross", reason="bad_weighing",
                          fields={"tare_t": ["must be below gross_t"]})
        if weight is not None and Decimal(weight) != Decimal(gross) - Decimal(tare):
            raise Refused("net weight differs from gross - tare", reason="bad_weighing",
                          fields={"weight_t": ["must be gross_t - tare_t"]})
    if volume is None and weight is None and gross is None:
        raise Refused("no measure", reason="bad_weighing",
                      fields={"volume_m3": ["give volume_m3, weight_t, or gross_t and tare_t"]})
    return {k: str(v) for k, v in (("volume_m3", volume), ("weight_t", weight), ("gross_t", gross),
                                   ("tare_t", tare)) if v is not None}
