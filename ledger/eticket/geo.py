"""Integer-only geometry on micro-degree coordinates, and disposal sites recommended by room and distance."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from functools import lru_cache
from math import isqrt
from typing import Any

from ledger.eticket.records import Site
from ledger.eticket.units import m3_text

Point = tuple[int, int]  # (lat, lon) in micro-degrees

_S = 10**18
_PI_S = 3_141_592_653_589_793_238  # π × 10^18
_UM_PER_UDEG = 111_195  # µm per micro-degree of latitude (mean Earth radius 6371 km)


@lru_cache(maxsize=4096)
def cos_1e9(lat_udeg: int) -> int:
    """cos(latitude) × 10^9 by an integer Taylor series (exact and platform independent)."""
    x = lat_udeg * _PI_S // 180_000_000  # radians × 10^18
    x2 = x * x // _S
    term = _S
    total = _S
    for k in range(1, 16):
        term = -term * x2 // _S // ((2 * k - 1) * (2 * k))
        if term == 0:
            break
        total += term
    return total // 10**9


def _xy(p: Point, cos: int) -> tuple[int, int]:
    """Local plane coordinates in µm (equirectangular at the given cos)."""
    return p[1] * _UM_PER_UDEG * cos // 10**9, p[0] * _UM_PER_UDEG


def dist2_um(a: Point, b: Point) -> int:
    """Squared distance in µm² (equirectangular around ``a``'s latitude)."""
    cos = cos_1e9(a[0] // 1000 * 1000)
    ax, ay = _xy(a, cos)
    bx, by = _xy(b, cos)
    return (ax - bx) ** 2 + (ay - by) ** 2


def distance_m(a: Point, b: Point) -> int:
    """Distance in whole metres (good to well under 0.5 % inside a city)."""
    return isqrt(dist2_um(a, b)) // 10**6


def within(a: Point, b: Point, radius_m: int) -> bool:
    """True when ``b`` is at most ``radius_m`` metres from ``a``."""
    r = radius_m * 10**6
    return dist2_um(a, b) <= r * r


class Corridor:
    """A polyline widened by ``radius_m``, projected once so many points can be tested cheaply."""

    __slots__ = ("_cos", "_r2", "_segs")

    def __init__(self, line: Sequence[Point], radius_m: int) -> None:
        self._cos = cos_1e9(line[0][0] // 1000 * 1000)
        self._r2 = (radius_m * 10**6) ** 2
        pts = [_xy(q, self._cos) for q in line]
        if len(pts) == 1:
            pts.append(pts[0])
        self._segs = [
            (ax, ay, bx - ax, by - ay, (bx - ax) ** 2 + (by - ay) ** 2)
            for (ax, ay), (bx, by) in itertools.pairwise(pts)
        ]

    def contains(self, p: Point) -> bool:
        """True when ``p`` is at most the radius from some segment."""
        px, py = _xy(p, self._cos)
        r2 = self._r2
        for ax, ay, dx, dy, len2 in self._segs:
            wx, wy = px - ax, py - ay
            dot = wx * dx + wy * dy
            if len2 == 0 or dot <= 0:
                if wx * wx + wy * wy <= r2:
                    return True
            elif dot >= len2:
                if (wx - dx) ** 2 + (wy - dy) ** 2 <= r2:
                    return True
            else:
                cross = wx * dy - wy * dx
                if cross * cross <= r2 * len2:
                    return True
        return False


def near_polyline(p: Point, line: Sequence[Point], radius_m: int) -> bool:
    """True when ``p`` is at most ``radius_m`` metres from some segment of ``line``."""
    return Corridor(line, radius_m).contains(p)


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


def in_polygon(p: Point, polygon: Sequence[Point]) -> bool:
    """True when ``p`` lies inside ``polygon`` (even-odd rule, integer crossing test on micro-degrees).

    The polygon is closed implicitly (last vertex back to the first).  A point exactly on a bottom or left
    edge counts as inside, on a top or right edge as outside (half-open), the same on every node.
    """
    lat, lon = p
    inside = False
    n = len(polygon)
    for i in range(n):
        alat, alon = polygon[i]
        blat, blon = polygon[(i + 1) % n]
        if (alat > lat) != (blat > lat):
            # lon of the edge at ``lat`` > lon, without division: sign-aware cross-multiplication
            lhs = (lon - alon) * (blat - alat)
            rhs = (blon - alon) * (lat - alat)
            if (lhs < rhs) if blat > alat else (lhs > rhs):
                inside = not inside
    return inside
