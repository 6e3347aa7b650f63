"""Transport hours per district and forbidden zones: the consortium parameters and the pure checks on them.

Both are ``eticket`` parameters (docs/ETICKET.md "Parameters")::

    "transport_hours": {"渝北区": "20:00-06:00", "*": "00:00-24:00"},
    "forbidden_zones": [{"zone_id": "Z-1", "name": "解放碑核心区",
                         "polygon": [{"lat": 29.55, "lon": 106.57}, {"lat": 29.56, "lon": 106.57}, ...]}]

``transport_hours`` maps a district (the project's ``district``; ``"*"`` for every other one) to the window
in which muck trucks may drive, local time (+08:00); a window may wrap midnight.  A district with no
window (and no ``"*"``) is not restricted.  ``forbidden_zones`` are polygons (3 to 200 vertices, closed
implicitly) no muck truck may enter.

The checks (:func:`outside_hours`, :func:`in_forbidden_zone`) are pure functions of the parameters: the
trip rules call them on GPS points and gate exits, and any other rule (a road camera's) can too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledger.eticket import units
from ledger.eticket.errors import PayloadError
from ledger.eticket.geo import Point, in_polygon

if TYPE_CHECKING:
    from ledger.eticket.params import Params

CHINA_OFFSET_S = 8 * 3600
DAY_S = 24 * 3600
ANY_DISTRICT = "*"
_HHMM = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])$")
_MAX_ZONES = 200
_MAX_VERTICES = 200


@dataclass(frozen=True, slots=True)
class Hours:
    """A daily window ``[start, end)`` in seconds after local midnight; ``start > end`` wraps midnight."""

    start_s: int
    end_s: int

    def allows(self, second_of_day: int) -> bool:
        """True when the local ``second_of_day`` is inside the window."""
        if self.start_s <= self.end_s:
            return self.start_s <= second_of_day < self.end_s
        return second_of_day >= self.start_s or second_of_day < self.end_s

    def text(self) -> str:
        """``"20:00-06:00"``."""
        return f"{_hhmm(self.start_s)}-{_hhmm(self.end_s)}"


@dataclass(frozen=True, slots=True)
class Zone:
    """A forbidden zone: its id, name and polygon of (lat, lon) micro-degree vertices."""

    zone_id: str
    name: str
    polygon: tuple[Point, ...]


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _clock(text: str, what: str) -> int:
    m = _HHMM.match(text)
    if m is None or (m.group(1) == "24" and m.group(2) != "00"):
        raise PayloadError(f"{what} must be HH:MM (00:00 to 24:00)")
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60


def parse_hours(raw: object) -> tuple[tuple[str, Hours], ...]:
    """``{"district": "HH:MM-HH:MM"}`` → sorted ``((district, Hours), ...)``; PayloadError on a bad value."""
    if not isinstance(raw, Mapping):
        raise PayloadError("eticket.transport_hours must be an object {district: 'HH:MM-HH:MM'}")
    out: list[tuple[str, Hours]] = []
    for district, window in raw.items():
        what = f"eticket.transport_hours[{district!r}]"
        if not isinstance(district, str) or not 1 <= len(district) <= 100:
            raise PayloadError("eticket.transport_hours keys must be district names of 1 to 100 characters")
        if not isinstance(window, str) or window.count("-") != 1:
            raise PayloadError(f"{what} must be 'HH:MM-HH:MM'")
        start, end = window.split("-")
        hours = Hours(_clock(start.strip(), what), _clock(end.strip(), what))
        if hours.start_s == hours.end_s:
            raise PayloadError(f"{what} is an empty window")
        out.append((district, hours))
    return tuple(sorted(out))


def parse_zones(raw: object) -> tuple[Zone, ...]:
    """``[{"zone_id", "name"?, "polygon": [{lat, lon}, ...]}]`` → zones in id order; PayloadError on a bad one."""
    if not isinstance(raw, list | tuple) or len(raw) > _MAX_ZONES:
        raise PayloadError(f"eticket.forbidden_zones must be a list of at most {_MAX_ZONES} zones")
    zones: dict[str, Zone] = {}
    for i, z in enumerate(raw):
        what = f"eticket.forbidden_zones[{i}]"
        if not isinstance(z, Mapping) or not {"zone_id", "polygon"} <= z.keys() <= {"zone_id", "name", "polygon"}:
            raise PayloadError(f"{what} must be {{zone_id, name?, polygon}}")
        zone_id = z["zone_id"]
        if not units.is_id(zone_id) or zone_id in zones:
            raise PayloadError(f"{what}.zone_id must be a distinct id")
        name = z.get("name", zone_id)
        if not isinstance(name, str) or not 1 <= len(name) <= 200:
            raise PayloadError(f"{what}.name must be a text of 1 to 200 characters")
        poly = z["polygon"]
        if not isinstance(poly, list | tuple) or not 3 <= len(poly) <= _MAX_VERTICES:
            raise PayloadError(f"{what}.polygon must be a list of 3 to {_MAX_VERTICES} {{lat, lon}}")
        vertices: list[Point] = []
        for j, v in enumerate(poly):
            if not isinstance(v, Mapping) or set(v) != {"lat", "lon"}:
                raise PayloadError(f"{what}.polygon[{j}] must be {{lat, lon}}")
            vertices.append((units.micro_degrees(v["lat"], what=f"{what}.polygon[{j}].lat", limit=90),
                             units.micro_degrees(v["lon"], what=f"{what}.polygon[{j}].lon", limit=180)))
        if len(set(vertices)) < 3:
            raise PayloadError(f"{what}.polygon needs 3 distinct vertices")
        zones[zone_id] = Zone(zone_id, name, tuple(vertices))
    return tuple(zones[k] for k in sorted(zones))


def hours_json(hours: tuple[tuple[str, Hours], ...]) -> dict[str, str]:
    """The parameter text of parsed hours (round trip of :func:`parse_hours`)."""
    return {d: h.text() for d, h in hours}


def zones_json(zones: tuple[Zone, ...]) -> list[dict[str, Any]]:
    """The parameter JSON of parsed zones."""
    return [{"zone_id": z.zone_id, "name": z.name,
             "polygon": [units.location_json(lat, lon) for lat, lon in z.polygon]} for z in zones]


def hours_of(params: Params, district: str | None) -> Hours | None:
    """The transport window of ``district`` (else the ``"*"`` window), None when unrestricted."""
    table = dict(params.transport_hours)
    if district is not None and district in table:
        return table[district]
    return table.get(ANY_DISTRICT)


def outside_hours(params: Params, district: str | None, t: int) -> Hours | None:
    """The window ``t`` (epoch seconds) falls outside of, in local time (+08:00); None when allowed."""
    hours = hours_of(params, district)
    if hours is None or hours.allows((t + CHINA_OFFSET_S) % DAY_S):
        return None
    return hours


def in_forbidden_zone(params: Params, lon: int, lat: int) -> Zone | None:
    """The first forbidden zone (in id order) containing the point (micro-degrees; note: lon first, as in
    GeoJSON), None when it is in none."""
    for zone in params.forbidden_zones:
        if in_polygon((lat, lon), zone.polygon):
            return zone
    return None
