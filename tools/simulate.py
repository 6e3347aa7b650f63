"""``scripts/simulate``: a simulated city's busy night driven through the real API of a running stack.

    scripts/serve &                                  # the embedded default (or any stack: --var, --api)
    scripts/simulate --fraction 0.25 --speed 10      # a quarter of the city, ten times real time

The city (:mod:`tools.sim_city`: the real deployment's 295 sites, 784 trucks and 99 disposal sites, or
``--fraction`` of it) is registered, its devices provisioned and its permits approved once
(:mod:`tools.sim_setup`); then every truck works the night: a ticket from its contractor, loading, the
site-exit scan, GPS every 30 s on the way (sent in batches of four), the disposal-site receipt, the way
back, and again.  Some trucks misbehave at the ``--rates`` given: uncovered loads, speeding, leaving the
corridor, never arriving (overdue), receipts far below the ticket (discrepancies), black trucks (黑车)
seen by the exit cameras where the API has them; a few disposal sites start near their alarm threshold
and fill up during the night.  Nothing goes around the API.

``--speed N`` is a time-lapse: the city moves N times faster than the wall clock.  Every time sent to the
API is the wall-clock instant it happened (the ledger refuses event times ahead of its own clock), and
terminals report the speed the truck has in the city, so a trip of 40 minutes in the city takes 4 minutes
at ``--speed 10`` and is not speeding.  Rules measured against the ledger's clock (an overdue trip is one
not received an hour after it was expected) still run at real time.

The run is bounded: it stops after the night (``--hours`` of city time) or ``--duration`` wall seconds,
whichever comes first, or on SIGTERM/Ctrl-C, waits for the calls in flight, and prints a JSON summary
(what was sent, what the API refused and why, the violations the API then lists).  A 503 (the ledger did
not answer in time) or a call timing out is counted (``unavailable``, ``timeouts``) and tried again later;
exit status 1 when the API answered any other 5xx or could not be reached.
"""

from __future__ import annotations

import argparse
import base64
import heapq
import json
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from miniprogram_stub.client import ApiCallError, ApiClient
from tools.sim_city import City, Place, Truck, distance_m, make_city
from tools.sim_setup import camera_id, set_up

JSON = dict[str, Any]
#: default rates of misbehaviour, per trip (docs/BENCHMARKS.md, issue 15)
RATES = {"uncovered": 0.03, "speeding": 0.02, "off_route": 0.01, "overdue": 0.005, "discrepancy": 0.02,
         "black": 0.01}
GPS_EVERY_S = 30
POINTS_PER_BATCH = 4


@dataclass
class Clock:
    """City time as seconds since the start, running ``speed`` times the wall clock."""

    speed: float
    wall0: float = field(default_factory=time.monotonic)
    real0: datetime = field(default_factory=lambda: datetime.now(CHINA_TZ))

    def now(self) -> float:
        return (time.monotonic() - self.wall0) * self.speed

    def stamp(self, city_s: float) -> str:
        """The wall-clock instant (ISO 8601, +08:00) at which city time ``city_s`` happened."""
        return (self.real0 + timedelta(seconds=city_s / self.speed)).isoformat(timespec="seconds")


@dataclass
class Trip:
    ticket_id: str
    qr: str
    site_id: str
    volume: int
    points: list[tuple[float, float, float]]  # (lat, lon, speed km/h), one per GPS_EVERY_S
    sent: int = 0
    t_exit: float = 0.0
    overdue: bool = False
    covered_retry: bool = False


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def add(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] += n

    def refusal(self, step: str, reason: str) -> None:
        with self.lock:
            self.refused[f"{step}:{reason}"] += 1

    def error(self, text: str) -> None:
        with self.lock:
            self.counts["errors"] += 1
            if len(self.errors) < 20:
                self.errors.append(text)


class Night:
    """The trucks' work, one event queue in city time, the API calls in a thread pool."""

    def __init__(self, api: str, city: City, state: JSON, *, speed: float, rates: dict[str, float],
                 seed: int, workers: int) -> None:
        self.api, self.city, self.state, self.rates = api, city, state, rates
        self.clock = Clock(speed)
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.tally = Tally()
        self.queue: list[tuple[float, int, int, Callable[[int], float | None]]] = []
        self.qlock = threading.Lock()
        self.seq = 0
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.trips: dict[int, Trip] = {}
        self.full_sites: set[str] = set()
        self.session = requests.Session()
        self.keys: dict[str, PrivateKey] = {}
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=workers)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    # plumbing ----------------------------------------------------------------------------------

    def client(self, token: str) -> ApiClient:
        return ApiClient(self.api, token, session=self.session)

    def key(self, actor: str) -> PrivateKey | None:
        """The device's own key (``sim_setup.register_device_keys``), None for a state from before keys."""
        pem = (self.state.get("device_keys") or {}).get(actor)
        if pem is None:
            return None
        if actor not in self.keys:
            self.keys[actor] = PrivateKey.from_pem(pem)
        return self.keys[actor]

    def chance(self, what: str) -> bool:
        with self.rng_lock:
            return self.rng.random() < self.rates.get(what, 0.0)

    def uniform(self, a: float, b: float) -> float:
        with self.rng_lock:
            return self.rng.uniform(a, b)

    def at(self, delay_s: float, truck: int, step: Callable[[int], float | None]) -> None:
        with self.qlock:
            self.seq += 1
            heapq.heappush(self.queue, (self.clock.now() + delay_s, self.seq, truck, step))

    def _run(self, truck: int, step: Callable[[int], float | None]) -> None:
        try:
            nxt = step(truck)
        except ApiCallError as exc:
            if exc.status == 503:  # the ledger did not answer in time (an overloaded machine): try again later
                self.tally.add("unavailable")
            elif exc.status >= 500:
                self.tally.error(f"{step.__name__}: {exc}")
            else:
                self.tally.refusal(step.__name__, exc.reason)
            nxt = None
        except requests.Timeout:
            self.tally.add("timeouts")
            nxt = None
        except (requests.RequestException, OSError) as exc:
            self.tally.error(f"{step.__name__}: {type(exc).__name__}: {exc}")
            nxt = None
        if nxt is None:  # back to the yard: another load in a while
            self.trips.pop(truck, None)
            self.at(self.uniform(600, 1800), truck, self.load)

    def run(self, *, hours: float, duration_s: float, stop: threading.Event) -> None:
        for i in range(len(self.city.trucks)):
            self.at(self.uniform(0, 1800), i, self.load)  # the night's first loads spread over half an hour
        end_city, end_wall = hours * 3600, time.monotonic() + duration_s
        while not stop.is_set() and self.clock.now() < end_city and time.monotonic() < end_wall:
            due = []
            with self.qlock:
                now = self.clock.now()
                while self.queue and self.queue[0][0] <= now:
                    due.append(heapq.heappop(self.queue))
            for _, _, truck, step in due:
                self.pool.submit(self._run, truck, step)
            stop.wait(0.05)
        with self.qlock:
            self.queue.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)

    # a truck's night ---------------------------------------------------------------------------

    def load(self, i: int) -> float | None:
        truck = self.city.trucks[i]
        project = self.city.project(truck.project_id)
        permit = self.state["permits"].get(project.project_id)
        if permit is None:
            return None
        sites = [s for s in project.site_ids if s not in self.full_sites] or list(project.site_ids)
        contractor = self.client(self.state["contractors"][project.org_id])
        volume = truck.capacity_m3
        try:
            t = contractor.issue_ticket(permit_id=permit, truck_plate=truck.plate, disposal_site_id=sites[0],
                                        volume_m3=str(volume))
        except ApiCallError as exc:
            if exc.status < 500 and exc.reason.startswith("site_"):
                self.full_sites.add(sites[0])  # full or in alarm: the next load goes to the next site
            raise
        self.tally.add("tickets_issued")
        site = self.city.site(sites[0])
        self.trips[i] = Trip(t["id"], t["qr"], site.site_id, volume, self._path(project.place, site.place))
        self.at(self.uniform(600, 1200), i, self.exit)  # loading
        return 0.0

    def _path(self, a: Place, b: Place) -> list[tuple[float, float, float]]:
        """GPS points every 30 s of city time from ``a`` to ``b`` at 30-45 km/h (with the misbehaviour)."""
        speed = self.uniform(30, 45)
        n = max(2, int(distance_m(a, b) / (speed / 3.6 * GPS_EVERY_S)))
        off = self.uniform(0.03, 0.05) if self.chance("off_route") else 0.0  # ~3-5 km out of the corridor
        fast = int(self.uniform(1, n - 1)) if self.chance("speeding") else -1
        pts = []
        for k in range(n + 1):
            f = k / n
            bulge = off * (1 - abs(2 * f - 1))
            pts.append((a.lat + (b.lat - a.lat) * f + bulge, a.lon + (b.lon - a.lon) * f,
                        72.0 if k == fast else (speed if 0 < k < n else 5.0)))
        return pts

    def exit(self, i: int) -> float | None:
        truck, trip = self.city.trucks[i], self.trips[i]
        covered = trip.covered_retry or not self.chance("uncovered")
        if not covered:
            self.tally.add("injected_uncovered")
        gate = self.client(self.state["devices"]["exit_gate"][truck.project_id])
        ans = gate.gate_exit(qr=trip.qr, plate=truck.plate, covered=covered,
                             signing_key=self.key(f"gate:exit:{truck.project_id}"), gate_id=f"{truck.project_id}-G1")
        if not ans.get("accepted"):
            self.tally.refusal("exit", str(ans.get("reason")))
            if ans.get("reason") == "uncovered_load" and not trip.covered_retry:
                trip.covered_retry = True  # sent back: the driver covers the load and scans again
                self.at(self.uniform(120, 300), i, self.exit)
                return 0.0
            return None
        self.tally.add("exits")
        self._camera(truck, covered)  # the exit camera sees the truck leave
        trip.t_exit = self.clock.now()
        trip.overdue = self.chance("overdue")
        self.at(GPS_EVERY_S * POINTS_PER_BATCH, i, self.drive)
        return 0.0

    def _camera(self, truck: Truck, covered: bool) -> None:
        """What the exit camera sees (where the API has cameras): this truck, now and then a black truck."""
        token = self.state["devices"].get("camera", {}).get(truck.project_id)
        if token is None:
            return
        cam = self.client(token)
        shots = [(truck.plate, covered)]
        if self.city.black_plates and self.chance("black"):
            with self.rng_lock:
                shots.append((self.rng.choice(self.city.black_plates), self.rng.random() > 0.5))
            self.tally.add("injected_black")
            if not shots[-1][1]:  # the camera raises uncovered_load for it too
                self.tally.add("injected_black_uncovered")
        cid = camera_id(truck.project_id)
        for plate, cov in shots:
            cam.sighting(plate=plate, covered=cov, photo=PHOTO, time=self.clock.stamp(self.clock.now()),
                         signing_key=self.key(f"camera:{cid}"), camera_id=cid)
            self.tally.add("sightings")

    def drive(self, i: int) -> float | None:
        truck, trip = self.city.trucks[i], self.trips[i]
        last = len(trip.points) // 2 if trip.overdue else len(trip.points)
        batch = []
        for k in range(trip.sent, min(trip.sent + POINTS_PER_BATCH, last)):
            lat, lon, kmh = trip.points[k]
            batch.append({"at": self.clock.stamp(trip.t_exit + k * GPS_EVERY_S), "lat": round(lat, 6),
                          "lon": round(lon, 6), "speed_kmh": round(kmh, 1)})
        if batch:
            self.client(self.state["devices"]["truck_terminal"][truck.plate]).report_positions(
                trip.ticket_id, batch, signing_key=self.key(f"gps:{truck.terminal_id}"))
            trip.sent += len(batch)
            self.tally.add("gps_batches")
            self.tally.add("gps_points", len(batch))
        if trip.sent < last:
            self.at(GPS_EVERY_S * POINTS_PER_BATCH, i, self.drive)
        elif trip.overdue:  # the load went somewhere else; the ticket stays open until the ledger flags it
            self.tally.add("injected_overdue")
            return None
        else:
            self.at(60, i, self.receipt)
        return 0.0

    def receipt(self, i: int) -> float | None:
        truck, trip = self.city.trucks[i], self.trips.pop(i)
        short = self.chance("discrepancy")
        measured = trip.volume * (self.uniform(0.6, 0.75) if short else self.uniform(0.96, 1.0))
        gate = self.client(self.state["devices"]["disposal_gate"][trip.site_id])
        ans = gate.gate_disposal(qr=trip.qr, plate=truck.plate, volume_m3=f"{measured:.1f}",
                                 signing_key=self.key(f"gate:disposal:{trip.site_id}"), gate_id=f"{trip.site_id}-G1",
                                 site_id=trip.site_id)
        if not ans.get("accepted"):
            self.tally.refusal("receipt", str(ans.get("reason")))
        else:
            self.tally.add("receipts")
            if short:
                self.tally.add("injected_discrepancy")
            if (ans.get("site") or {}).get("alarm"):
                self.full_sites.add(trip.site_id)
        back = len(trip.points) * GPS_EVERY_S + 300  # the way back and the queue at the site
        self.at(back, i, self.load)
        return 0.0


#: a 1×1 grey PNG: what a simulated camera sends as its photo
PHOTO_B64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==")
PHOTO = base64.b64decode(PHOTO_B64)


def _rates(text: str) -> dict[str, float]:
    rates = dict(RATES)
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        if name not in RATES:
            raise argparse.ArgumentTypeError(f"unknown rate {name!r}; rates: {', '.join(RATES)}")
        rates[name] = float(value)
    return rates


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/simulate", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--var", default=os.environ.get("VAR_DIR", "var"), help="the stack's data directory (demo.json)")
    p.add_argument("--api", help="the API's URL (default: demo.json's)")
    p.add_argument("--database-url", help="the API database, for binding the contractors' WeChat logins "
                                          "(default: TICKET_API_DATABASE_URL, else <var>/ticket_api.sqlite)")
    p.add_argument("--fraction", type=float, default=1.0, help="size of the city, of the real one's (default 1)")
    p.add_argument("--speed", type=float, default=1.0, help="city time per wall-clock time (default 1: real time)")
    p.add_argument("--hours", type=float, default=8.0, help="length of the night in city hours (default 8)")
    p.add_argument("--duration", type=float, help="stop after this many wall-clock seconds at the latest")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rates", type=_rates, default=dict(RATES),
                   help="misbehaviour per trip, e.g. uncovered=0.1,black=0.05 (defaults: "
                        + ", ".join(f"{k}={v}" for k, v in RATES.items()) + ")")
    p.add_argument("--workers", type=int, default=32, help="API calls in flight at most (default 32)")
    p.add_argument("--summary", help="also write the JSON summary to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 0 < args.fraction <= 1 or args.speed <= 0 or args.hours <= 0:
        print("simulate: --fraction must be in (0, 1], --speed and --hours positive", file=sys.stderr)
        return 2
    var = Path(args.var)
    try:
        demo = json.loads((var / "demo.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"simulate: cannot read {var / 'demo.json'} (start scripts/serve first): {exc}", file=sys.stderr)
        return 2
    api = args.api or demo["api"]
    db = args.database_url or os.environ.get("TICKET_API_DATABASE_URL") or f"sqlite:///{var.resolve()}/ticket_api.sqlite"
    city = make_city(fraction=args.fraction, seed=args.seed)
    started = datetime.now(CHINA_TZ).replace(microsecond=0)
    t0 = time.monotonic()
    try:
        state = set_up(api, demo, city, database_url=db, state_file=var / "sim" / "state.json")
    except (ApiCallError, requests.RequestException, OSError) as exc:
        print(f"simulate: setting up the city failed: {exc}", file=sys.stderr)
        return 1
    setup_s = time.monotonic() - t0
    print(f"[simulate] city of {len(city.projects)} sites, {len(city.trucks)} trucks, {len(city.sites)} disposal "
          f"sites ready in {setup_s:.0f} s; the night runs at speed {args.speed:g}", file=sys.stderr, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    night = Night(api, city, state, speed=args.speed, rates=args.rates, seed=args.seed, workers=args.workers)
    duration = args.duration if args.duration is not None else args.hours * 3600 / args.speed
    night.run(hours=args.hours, duration_s=duration, stop=stop)
    summary = _summary(night, api, demo, started, setup_s)
    text = json.dumps(summary, ensure_ascii=False, indent=2)
    print(text, flush=True)
    if args.summary:
        Path(args.summary).write_text(text, encoding="utf-8")
    return 1 if summary["counts"].get("errors") else 0


def _summary(night: Night, api: str, demo: JSON, started: datetime, setup_s: float) -> JSON:
    """What the night sent and what the API lists afterwards (violations since the start, by type)."""
    by_type: Counter[str] = Counter()
    try:
        operator = ApiClient(api, demo["tokens"]["operator"])
        for v in operator.work_list("violations", **{"from": started.isoformat(), "limit": 200}):
            by_type[v["type"]] += 1
    except (ApiCallError, requests.RequestException) as exc:
        night.tally.error(f"listing violations: {exc}")
    t = night.tally
    return {"city": {"projects": len(night.city.projects), "trucks": len(night.city.trucks),
                     "disposal_sites": len(night.city.sites), "seed": night.city.seed,
                     "fraction": night.city.fraction},
            "speed": night.clock.speed, "setup_s": round(setup_s, 1),
            "city_hours": round(night.clock.now() / 3600, 2),
            "counts": dict(sorted(t.counts.items())), "refused": dict(sorted(t.refused.items())),
            "violations": dict(sorted(by_type.items())), "errors": t.errors}


if __name__ == "__main__":
    sys.exit(main())
