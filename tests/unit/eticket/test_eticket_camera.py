"""Camera rules (ledger/eticket/rules_camera.py): placement on the chain, sightings checked against the tickets
with a grace window for the gate's scan, black trucks, uncovered loads, off-route on a road camera, and repeats
within the dedup window folded into one event."""

from __future__ import annotations

from typing import Any

from ledger.eticket.testing import World, make_world
from ledger.eticket.units import iso

PHOTO_A = "sha256:" + "a1" * 32
PHOTO_B = "sha256:" + "b2" * 32


def _world() -> World:
    world = make_world()
    world.ok("registry.camera", {"camera_id": "CAM-EXIT", "placement": "exit", "project_id": "P-001"})
    world.ok("registry.camera", {"camera_id": "CAM-S1", "placement": "disposal", "site_id": "S-001"})
    world.ok("registry.camera", {"camera_id": "CAM-ROAD", "placement": "road", "town": "北碚区",
                                 "location": {"lat": "30.100000", "lon": "107.000000"}})
    world.approved_permit("PM-1")
    return world


_n = iter(range(1, 10**6))


def _sight(world: World, plate: str, *, camera: str = "CAM-EXIT", covered: bool = True,
           photo: str = PHOTO_A, at: int | None = None) -> Any:
    sid = f"SG-{next(_n)}"
    payload = {"sighting_id": sid, "camera_id": camera, "plate": plate, "covered": covered,
               "photo_digest": photo, "time": iso(world.clock if at is None else at)}
    out = world.submit("camera.sighting", payload, f"camera:{camera}")
    assert out.ok, out.message
    return world.machine.state.tables["sighting"][sid]


def _violations(world: World, vtype: str | None = None) -> list[Any]:
    return [v for v in world.machine.state.tables["violation"].values() if vtype is None or v.type == vtype]


def test_black_truck_at_the_exit_is_one_numbered_event_at_once() -> None:
    """A plate the registry does not know, seen at a project's exit, raises unapproved_disposal at once:
    numbered LZZTC + local time + serial, with the camera's coordinates, the plate, the photo and the town."""
    world = _world()
    s = _sight(world, "渝D88888")
    [v] = _violations(world)
    assert v.type == "unapproved_disposal" and v.violation_id.startswith("LZZTC20261123")
    assert (v.lat, v.lon) == (29712030, 106530310) and v.plate == "渝D88888" and v.town == "悦来街道"
    assert v.evidence == (PHOTO_A,) and v.source == "camera" and v.project_id == "P-001"
    assert s.violations == (v.violation_id,) and s.state == "checked"


def test_repeat_within_two_hours_is_not_a_second_event() -> None:
    """The same black truck seen again 90 minutes later is the same event (its photo joins the evidence);
    seen again more than two hours after the event it is a new one."""
    world = _world()
    _sight(world, "渝D88888")
    world.advance(90 * 60)
    again = _sight(world, "渝D88888", photo=PHOTO_B)
    [v] = _violations(world)
    assert again.violations == (v.violation_id,) and v.evidence == (PHOTO_A, PHOTO_B)
    world.advance(31 * 60)
    _sight(world, "渝D88888")
    assert len(_violations(world)) == 2


def test_uncovered_load_raises_at_once() -> None:
    """covered=false raises uncovered_load for the registered truck (its company linked)."""
    world = _world()
    world.ok("system.tick", {}, "system:scheduler")
    _sight(world, "渝A12345", covered=False, camera="CAM-ROAD")
    [v] = _violations(world)
    assert v.type == "uncovered_load" and v.truck_id == "TR-1" and v.company_id == "C-01" and v.town == "北碚区"


def test_gate_scan_within_the_grace_window_raises_nothing() -> None:
    """The camera sees the truck first and the gate scans it 60 s later: the sighting is pending until the
    tick after its grace window, then cleared with the ticket; no violation."""
    world = _world()
    assert world.issue("T-1").ok
    s = _sight(world, "渝A12345")
    assert s.state == "pending" and s.due == s.time + 120
    world.advance(60)
    assert world.depart("T-1").ok
    world.advance(61)
    assert world.tick().ok
    s = world.machine.state.tables["sighting"][s.sighting_id]
    assert s.state == "cleared" and s.ticket_id == "T-1" and not _violations(world)


def test_scan_before_the_sighting_clears_it_at_once() -> None:
    """A truck that scanned at the gate just before the camera saw it is not even pending."""
    world = _world()
    assert world.issue("T-1").ok
    assert world.depart("T-1").ok
    world.advance(5)
    assert _sight(world, "渝A12345").ticket_id == "T-1"
    assert not _violations(world)


def test_no_scan_raises_no_ticket_only_after_the_grace_window() -> None:
    """A registered truck leaving without a scan: nothing before the grace window ends (a tick inside it finds
    nothing due), no_ticket at the first tick after it; a later tick raises nothing more."""
    world = _world()
    assert world.issue("T-1").ok
    s = _sight(world, "渝A12345")
    world.advance(100)
    assert world.tick().ok and not _violations(world)
    world.advance(30)
    out = world.tick()
    [v] = _violations(world)
    assert v.type == "no_ticket" and v.plate == "渝A12345" and v.reported_at == s.time and v.evidence == (PHOTO_A,)
    assert any(e.get("violation_id") == v.violation_id for e in out.events)
    assert world.machine.state.tables["sighting"][s.sighting_id].violations == (v.violation_id,)
    world.advance(600)
    assert world.tick().ok and len(_violations(world)) == 1


def test_disposal_camera_without_a_ticket_for_the_site() -> None:
    """At a disposal site's gate: a truck on its way to this site is fine; one whose trip is for another site
    raises no_ticket after the grace window, tied to that trip."""
    world = _world()
    assert world.issue("T-1").ok and world.depart("T-1").ok  # to S-001
    assert world.issue("T-2", truck="TR-2", site="S-002").ok and world.depart("T-2").ok
    world.advance(1800)
    ok = _sight(world, "渝A12345", camera="CAM-S1")
    bad = _sight(world, "渝A23456", camera="CAM-S1")
    assert ok.ticket_id == "T-1" and bad.state == "pending"
    world.advance(121)
    assert world.tick().ok
    [v] = _violations(world)
    assert v.type == "no_ticket" and v.ticket_id == "T-2" and v.site_id == "S-002"


def test_road_camera_far_from_the_corridor_raises_off_route() -> None:
    """A road camera far from an open trip's corridor raises off_route against the trip; an empty truck (no
    open trip) on the road raises nothing."""
    world = _world()
    assert world.issue("T-1").ok and world.depart("T-1").ok
    world.advance(600)
    s = _sight(world, "渝A12345", camera="CAM-ROAD")
    _sight(world, "渝A23456", camera="CAM-ROAD")
    [v] = _violations(world)
    assert v.type == "off_route" and v.ticket_id == "T-1" and s.violations == (v.violation_id,)


def test_camera_sightings_replay_to_the_same_state() -> None:
    """Sightings and ticks are deterministic: a replay of the log gives the same state digest."""
    world = _world()
    assert world.issue("T-1").ok
    _sight(world, "渝A12345")
    _sight(world, "渝D88888", covered=False)
    world.advance(200)
    assert world.tick().ok
    assert world.replay().digest() == world.machine.digest()


def test_refusals() -> None:
    """An unknown camera (unknown_camera), a camera posting as another (forbidden), a duplicate sighting id
    (duplicate_id), an exit camera without its project (malformed)."""
    world = _world()
    payload = {"sighting_id": "SG-X", "camera_id": "CAM-NONE", "plate": "渝A12345", "covered": True,
               "photo_digest": PHOTO_A, "time": iso(world.clock)}
    assert world.submit("camera.sighting", payload, "camera:CAM-NONE").code == "unknown_camera"
    payload["camera_id"] = "CAM-EXIT"
    assert world.submit("camera.sighting", payload, "camera:CAM-S1").code == "forbidden"
    assert world.submit("camera.sighting", payload, "camera:CAM-EXIT").ok
    assert world.submit("camera.sighting", payload, "camera:CAM-EXIT").code == "duplicate_id"
    out = world.submit("registry.camera", {"camera_id": "CAM-2", "placement": "exit"})
    assert out.code == "malformed"


def test_road_camera_inside_a_forbidden_zone_or_outside_hours_raises_each_once_per_trip() -> None:
    """A road camera inside a forbidden zone sees a truck on an open trip at 12:00 in a district allowed only
    20:00-06:00: forbidden_zone and outside_hours, each with the camera's coordinates and photo, flagged on the
    ticket; a second road camera inside the zone later raises neither again; an empty truck raises nothing."""
    zone = {"zone_id": "Z-1", "name": "礼嘉核心区", "polygon": [
        {"lat": "30.090", "lon": "106.990"}, {"lat": "30.090", "lon": "107.010"},
        {"lat": "30.110", "lon": "107.010"}, {"lat": "30.110", "lon": "106.990"}]}
    world = make_world({"forbidden_zones": [zone], "transport_hours": {"*": "20:00-06:00"}},
                       start="2026-11-24T05:00:00+08:00")
    for cid, lat in (("CAM-R1", "30.100000"), ("CAM-R2", "30.101000")):
        world.ok("registry.camera", {"camera_id": cid, "placement": "road", "town": "北碚区",
                                     "location": {"lat": lat, "lon": "107.000000"}})
    world.approved_permit("PM-1")
    assert world.issue("T-1").ok and world.depart("T-1").ok
    world.advance(7 * 3600)  # 12:00 local time
    s = _sight(world, "渝A12345", camera="CAM-R1", photo=PHOTO_B)
    kinds = {v.type: v for v in _violations(world)}
    assert {"forbidden_zone", "outside_hours"} <= set(kinds), kinds
    for vtype in ("forbidden_zone", "outside_hours"):
        v = kinds[vtype]
        assert v.ticket_id == "T-1" and v.evidence == (PHOTO_B,) and v.source == "camera"
        assert (v.lat, v.lon) == (30_100_000, 107_000_000) and v.violation_id in s.violations
    flags = world.machine.state.tables["ticket"]["T-1"].flags
    assert "forbidden_zone" in flags and "outside_hours" in flags
    world.advance(3 * 3600)  # past the dedup window: only the ticket's flags keep it to one
    _sight(world, "渝A12345", camera="CAM-R2")
    _sight(world, "渝A23456", camera="CAM-R2")
    assert len([v for v in _violations(world) if v.type in ("forbidden_zone", "outside_hours")]) == 2
    assert world.replay().digest() == world.machine.digest()
