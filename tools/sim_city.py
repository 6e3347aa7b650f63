"""A simulated city for ``scripts/simulate``: who and what is in it, made from a seed (no I/O).

At ``fraction=1`` the city is the size of the real deployment (../shared/DOMAIN.md): 295 construction
sites, 784 trucks, 99 disposal sites, in the districts of Chongqing's main city.  Every id carries the
``SIM`` mark (``P-SIM0001``, ``渝F…`` plates) so a simulated city never collides with the demo district
or with a real one.  The same seed and fraction always give the same city.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

#: the real deployment's sizes (../shared/DOMAIN.md)
FULL = {"projects": 295, "trucks": 784, "sites": 99, "companies": 40, "contractors": 60}
#: the area drawn on the big screen: Chongqing's main city (lat, lon bounds)
BOUNDS = (29.38, 106.25, 29.82, 106.88)
#: (district, town) by cell of a 3×4 grid over :data:`BOUNDS`, west to east, south to north
TOWNS = [
    ("九龙坡区", "西彭镇"), ("九龙坡区", "巴福镇"), ("巴南区", "李家沱街道"), ("巴南区", "鱼洞街道"),
    ("沙坪坝区", "陈家桥街道"), ("沙坪坝区", "土主街道"), ("江北区", "鱼嘴镇"), ("渝北区", "洛碛镇"),
    ("北碚区", "蔡家岗街道"), ("渝北区", "礼嘉街道"), ("渝北区", "悦来街道"), ("渝北区", "龙兴镇"),
]
SITE_KINDS = ("landfill", "recycling", "backfill")


@dataclass(frozen=True)
class Place:
    lat: float
    lon: float
    district: str
    town: str


@dataclass(frozen=True)
class Project:
    project_id: str
    name: str
    org_id: str
    place: Place
    planned_volume_m3: int
    #: plates of the trucks its permit names; the first one is the truck's home project
    plates: tuple[str, ...]
    #: disposal sites its permit names, nearest first
    site_ids: tuple[str, ...]


@dataclass(frozen=True)
class Site:
    site_id: str
    name: str
    kind: str
    capacity_m3: int
    initial_load_m3: int
    alarm_threshold_pct: int
    place: Place


@dataclass(frozen=True)
class Truck:
    truck_id: str
    plate: str
    company_id: str
    terminal_id: str
    capacity_m3: int
    #: the project it works for tonight
    project_id: str


@dataclass(frozen=True)
class City:
    seed: int
    fraction: float
    contractors: tuple[str, ...]
    companies: tuple[str, ...]
    projects: tuple[Project, ...]
    sites: tuple[Site, ...]
    trucks: tuple[Truck, ...]
    #: plates no registry knows (黑车): cameras see them, nobody scans them
    black_plates: tuple[str, ...] = field(default=())

    def project(self, project_id: str) -> Project:
        return next(p for p in self.projects if p.project_id == project_id)

    def site(self, site_id: str) -> Site:
        return next(s for s in self.sites if s.site_id == site_id)


def size(what: str, fraction: float) -> int:
    """How many of ``what`` a city of ``fraction`` of the real one holds (at least 1; 2 trucks)."""
    return max(2 if what == "trucks" else 1, round(FULL[what] * fraction))


def place_at(lat: float, lon: float) -> Place:
    s, w, n, e = BOUNDS
    col = min(3, max(0, int((lon - w) / (e - w) * 4)))
    row = min(2, max(0, int((lat - s) / (n - s) * 3)))
    district, town = TOWNS[row * 4 + col]
    return Place(round(lat, 6), round(lon, 6), district, town)


def distance_m(a: Place, b: Place) -> float:
    """Great-circle distance in metres (for choosing sites; the ledger has its own integer geometry)."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def _random_place(rng: random.Random) -> Place:
    s, w, n, e = BOUNDS
    return place_at(rng.uniform(s, n), rng.uniform(w, e))


def _plates(rng: random.Random, n: int) -> list[str]:
    return [f"渝F{num:05d}" for num in rng.sample(range(10000, 100000), n)]


def make_city(*, fraction: float = 1.0, seed: int = 1) -> City:
    """The city of ``fraction`` of the real deployment's size (0 < fraction <= 1) from ``seed``."""
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    rng = random.Random(seed)
    n_proj, n_trucks, n_sites = size("projects", fraction), size("trucks", fraction), size("sites", fraction)
    contractors = tuple(f"ORG-SIM{i + 1:02d}" for i in range(size("contractors", fraction)))
    companies = tuple(f"C-SIM{i + 1:02d}" for i in range(size("companies", fraction)))
    sites: list[Site] = []
    for i in range(n_sites):
        kind = SITE_KINDS[i % 3]
        capacity = rng.choice((60_000, 200_000, 500_000, 800_000)) if kind != "backfill" else 30_000
        # one site in ten starts close to its alarm threshold, so the night fills it (满场预警)
        near_full = i % 10 == 9 or (1 < n_sites < 10 and i == n_sites - 1)
        start = int(capacity * (0.82 if near_full else rng.uniform(0.1, 0.6)))
        place = _random_place(rng)
        sites.append(Site(f"S-SIM{i + 1:03d}", f"{place.town}建筑垃圾{_KIND_ZH[kind]}{i + 1}号", kind, capacity,
                          start, 85, place))
    plates = _plates(rng, n_trucks + max(1, n_trucks // 50))
    black = tuple(plates[n_trucks:])
    projects: list[Project] = []
    project_places = [_random_place(rng) for _ in range(n_proj)]
    homes = [i % n_proj for i in range(n_trucks)]  # every project gets trucks, round robin
    for i, place in enumerate(project_places):
        mine = [plates[t] for t in range(n_trucks) if homes[t] == i]
        nearest = sorted(sites, key=lambda s: distance_m(place, s.place))[:3]
        projects.append(Project(
            f"P-SIM{i + 1:04d}", f"{place.town}安置房项目{i + 1}期", contractors[i % len(contractors)], place,
            rng.choice((20_000, 50_000, 120_000)), tuple(mine), tuple(s.site_id for s in nearest)))
    trucks = tuple(
        Truck(f"TR-SIM{t + 1:04d}", plates[t], companies[t % len(companies)], f"GPS-SIM{t + 1:04d}",
              rng.choice((16, 18, 20)), projects[homes[t]].project_id)
        for t in range(n_trucks))
    return City(seed, fraction, contractors, companies, tuple(projects), tuple(sites), trucks, black)


_KIND_ZH = {"landfill": "消纳场", "recycling": "资源化利用厂", "backfill": "回填点"}
