"""Disposal-site load rates and the recommendation of alternative sites with room, nearest first."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ledger.eticket.geo import distance_m
from ledger.eticket.records import Site
from ledger.eticket.units import m3_text


def room_l(site: Site) -> int:
    """Litres the site can still take: capacity − received load − volume on open tickets."""
    return max(0, site.capacity_l - site.load_l - site.pending_l)


def load_rate_bp(site: Site) -> int:
    """Load rate (负荷率) in basis points (1/100 of a percent): received volume / capacity."""
    return site.load_l * 10000 // site.capacity_l


def pct_text(bp: int) -> str:
    """Basis points → percent text with two decimals ("85.00")."""
    return f"{bp // 100}.{bp % 100:02d}"


def in_alarm(site: Site) -> bool:
    """True when the load rate has reached the site's alarm threshold."""
    return site.load_l * 100 >= site.alarm_pct * site.capacity_l


def recommend(
    sites: Iterable[Site],
    origin: tuple[int, int],
    volume_l: int,
    *,
    exclude: str | None = None,
    kinds: Iterable[str] | None = None,
    limit: int = 5,
) -> list[dict[str, Any]]:
    """Sites with room for ``volume_l`` that stay under their alarm threshold, nearest to ``origin`` first.

    Ties break on the site id, so every node gives the same list.
    """
    wanted = set(kinds) if kinds is not None else None
    ranked: list[tuple[int, str, Site]] = []
    for site in sites:
        if site.site_id == exclude or (wanted is not None and site.kind not in wanted):
            continue
        after = site.load_l + site.pending_l + volume_l
        if after > site.capacity_l or after * 100 >= site.alarm_pct * site.capacity_l:
            continue
        ranked.append((distance_m(origin, (site.lat, site.lon)), site.site_id, site))
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [
        {
            "site_id": s.site_id,
            "name": s.name,
            "kind": s.kind,
            "distance_m": d,
            "room_m3": m3_text(room_l(s)),
            "load_rate_pct": pct_text(load_rate_bp(s)),
        }
        for d, _, s in ranked[:limit]
    ]
