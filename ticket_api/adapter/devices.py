"""Devices against the registry on the chain: plates of truck terminals, sites of gates (one query each)."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.qrticket.gatecheck import normalise_plate
from ticket_api.adapter.gateway import Gateway
from ticket_api.devices import DeviceRequest, Known


class LedgerDeviceRegistry:
    """``DeviceRegistry`` over the consortium: a batch costs at most three queries, whatever its size."""

    def __init__(self, *, gateway: Gateway) -> None:
        self.gw = gateway

    def check(self, devices: Sequence[DeviceRequest]) -> list[Known]:
        kinds = {d.kind for d in devices}
        trucks: dict[str, dict[str, str | None] | None] = {}
        plates = sorted({normalise_plate(d.id) for d in devices if d.kind == "truck_terminal"})
        if plates:
            trucks = self.gw.query("trucks_by_plate", plates=plates)
        sites: set[str] = set()
        projects: set[str] = set()
        if kinds & {"disposal_gate", "camera"}:
            sites = {str(s["site_id"]) for s in self.gw.query("sites")}
        if kinds & {"exit_gate", "camera"}:
            projects = {str(p["project_id"]) for p in self.gw.query("projects")}
        out: list[Known] = []
        for d in devices:
            if d.kind == "truck_terminal":
                truck = trucks.get(normalise_plate(d.id))
                out.append(Known(None, truck.get("terminal_id")) if truck else Known("Unknown truck plate."))
            elif d.kind == "disposal_gate":
                out.append(Known(None if d.id in sites else "Unknown disposal site."))
            elif d.kind == "exit_gate":
                out.append(Known(None if d.id in projects else "Unknown project."))
            else:  # a camera watches a site, a project or a road (roads are not on the chain)
                out.append(Known(None))
        return out
