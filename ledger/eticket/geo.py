"""Integer-only geometry on micro-degree coordinates (deterministic on every platform)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache
from math import isqrt

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
