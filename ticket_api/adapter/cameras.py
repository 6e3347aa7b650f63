"""Cameras on the ledger: a sighting becomes a ``camera.sighting`` transaction (actor ``camera:<id>``) and the
answer is the sighting as the rules left it, with the violations they raised at once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ledger.eticket import acts, units
from ledger.qrticket.gatecheck import normalise_plate
from ticket_api.adapter.acts import relay
from ticket_api.adapter.gateway import Gateway, iso, new_id
from ticket_api.errors import InvalidRequest, NotFound, Refused
from ticket_api.service_data import Json
from ticket_api.services import Changed, Pending, Submission
from ticket_api.tokens import Principal

Clock = Callable[[], datetime]


class LedgerCameras:
    """``CameraService`` over the consortium."""

    def __init__(self, *, gateway: Gateway, clock: Clock, leeway: timedelta) -> None:
        self.gw = gateway
        self.clock = clock
        self.leeway = leeway

    def sight(self, principal: Principal, data: Mapping[str, Any], photo_digest: str,
              sub: Submission) -> Changed[Json]:
        now = self.clock()
        at: datetime = data.get("time") or now
        if at > now + self.leeway:
            raise Refused("sighting time ahead of the server's clock", reason="clock_skew")
        plate = normalise_plate(str(data["plate"]))
        if not units.is_plate(plate):
            raise InvalidRequest("not a plate", fields={"plate": ["Not a Chinese vehicle plate (e.g. 渝A12345)."]})
        sig = data.get("act_sig")
        if sig is not None and not (data.get("sighting_id") and data.get("time")):
            raise InvalidRequest("a signed sighting names its sighting_id and time",
                                 fields={"sighting_id": ["required with act_sig"]})
        payload = acts.sighting_payload(str(data.get("sighting_id") or new_id("SG", at, digits=8)), principal.tenant,
                                        plate, bool(data["covered"]), photo_digest, iso(at))
        relay(payload, sig)
        done = self.gw.change(principal, sub, type="camera.sighting", payload=payload, now=now)
        if isinstance(done, Pending):
            return done
        found = self.gw.query("sighting", min_height=int(done.height or 0), sighting_id=payload["sighting_id"])
        return dict(found or {"sighting_id": payload["sighting_id"], "photo_digest": photo_digest,
                              "violations": []})

    def sighting(self, principal: Principal, sighting_id: str) -> Json:
        found = self.gw.query("sighting", sighting_id=sighting_id)
        if found is None:
            raise NotFound("no such sighting")
        return dict(found)
