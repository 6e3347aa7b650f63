"""Cameras and their sightings as JSON-ready dicts (times ISO 8601 +08:00, places in decimal degrees)."""

from __future__ import annotations

from typing import Any

from ledger.eticket.record_json import violation_json
from ledger.eticket.records import Camera, Sighting, Violation
from ledger.eticket.units import iso, location_json


def camera_json(c: Camera) -> dict[str, Any]:
    """A camera's placement."""
    return {"camera_id": c.camera_id, "placement": c.placement, "project_id": c.project_id, "site_id": c.site_id,
            "location": location_json(c.lat, c.lon), "town": c.town}


def sighting_json(s: Sighting, violations: list[Violation]) -> dict[str, Any]:
    """A sighting with the events it raised (or joined as a repeat)."""
    return {
        "sighting_id": s.sighting_id,
        "camera_id": s.camera_id,
        "plate": s.plate,
        "covered": s.covered,
        "time": iso(s.time),
        "photo_digest": s.photo_digest,
        "truck_id": s.truck_id,
        "state": s.state,
        "due": None if s.due is None else iso(s.due),
        "ticket_id": s.ticket_id,
        "violations": [violation_json(v) for v in violations],
    }
