"""Test helpers (shipped, like structlog.testing): a throwaway consortium, a registry and operations.

>>> world = make_world()
>>> world.approved_permit("PM-1")
>>> world.issue("T-1").code
'valid'
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.core.builder import Outcome, TxContext
from ledger.core.consortium import Consortium, MemberSpec, create
from ledger.core.crypto import ED25519, PrivateKey
from ledger.core.transaction import Transaction
from ledger.eticket.acts import (
    ACT_FIELD,
    CENTRE_KIND,
    DEPARTMENT_KINDS,
    TOWN_CENTRE_KIND,
    actor_matches,
    public_key_json,
    sign_act,
)
from ledger.eticket.machine import EticketMachine
from ledger.eticket.params import DEFAULT_DEPARTMENTS
from ledger.eticket.units import epoch, iso

T0 = "2026-11-23T20:00:00+08:00"
PHOTO = "sha256:" + "ab" * 32
PERSON = "sha256:" + "cd" * 32
PROJECT_LOC = {"lat": "29.712030", "lon": "106.530310"}
SITES: Mapping[str, tuple[str, str, str, Mapping[str, str]]] = {
    # id: (kind, capacity m³, alarm %, location)
    "S-001": ("recycling", "100000", "85", {"lat": "29.610110", "lon": "106.405520"}),
    "S-002": ("landfill", "500000", "90", {"lat": "29.650000", "lon": "106.600000"}),
    "S-003": ("backfill", "100", "80", {"lat": "29.700000", "lon": "106.450000"}),
}
TRUCKS: Mapping[str, tuple[str, str, str]] = {
    "TR-1": ("渝A12345", "C-01", "18"),
    "TR-2": ("渝A23456", "C-01", "18"),
    "TR-3": ("渝BD12345", "C-02", "20"),
}


def make_consortium(
    parameters: Mapping[str, Any] | None = None, departments: Sequence[str] = DEFAULT_DEPARTMENTS
) -> tuple[Consortium, dict[str, PrivateKey]]:
    """A consortium of the departments (roles node + approver) and a ``gateway``; fresh keys."""
    members = [MemberSpec(name=d, org=d, roles=("node", "approver")) for d in departments]
    members.append(MemberSpec(name="gateway", org="gateway", roles=("gateway",)))
    params: dict[str, Any] = {"max_payload_bytes": 65536, "max_block_txs": 2000}
    params["eticket"] = {"departments": list(departments), **dict(parameters or {})}
    return create(name="test-city", origin="test.example", members=members, parameters=params)


@dataclass
class World:
    """A machine plus the consortium, a clock and a log of every applied transaction."""

    consortium: Consortium
    keys: dict[str, PrivateKey]
    machine: EticketMachine
    clock: int
    log: list[tuple[Transaction, TxContext, Outcome]] = field(default_factory=list)
    #: actor -> the key its acts are signed with (registered on the chain by :meth:`register_act_key`)
    act_keys: dict[str, PrivateKey] = field(default_factory=dict)
    #: sign acts of the consortium's ``act_signed`` types with the actor's registered key
    sign_acts: bool = True

    # -- plumbing ---------------------------------------------------------
    def advance(self, seconds: int) -> None:
        """Move the clock (transaction and block times) forward."""
        self.clock += seconds

    def tx(
        self,
        type: str,
        payload: Mapping[str, Any],
        actor: str = "operator:u1",
        *,
        signer: str = "gateway",
        at: int | None = None,
    ) -> Transaction:
        """A signed transaction (timestamp = ``at`` or the clock); an act of an ``act_signed`` type gets its
        actor's signature when the world holds a key for that actor."""
        if self.sign_acts and type in self.machine.params.act_signed and ACT_FIELD not in payload:
            key = next((k for a, k in self.act_keys.items() if actor_matches(a, actor)), None)
            if key is not None:
                payload = sign_act(key, type, payload)
        return Transaction.create(
            key=self.keys[signer],
            type=type,
            payload=payload,
            actor=actor,
            timestamp=iso(self.clock if at is None else at),
        )

    def context(self, tx: Transaction, *, block_time: int | None = None) -> TxContext:
        """The context of ``tx`` as the next block's only transaction."""
        bt = datetime.fromtimestamp(self.clock if block_time is None else block_time, tz=UTC)
        return TxContext(
            height=len(self.log),
            position=0,
            block_time=bt,
            tx_id=tx.tx_id,
            signer=self.consortium.member(tx.submitter),
            consortium=self.consortium,
        )

    def apply(self, tx: Transaction, *, block_time: int | None = None) -> Outcome:
        """Apply a prepared transaction and log it."""
        ctx = self.context(tx, block_time=block_time)
        out = self.machine.apply(tx, ctx)
        self.log.append((tx, ctx, out))
        return out

    def submit(
        self,
        type: str,
        payload: Mapping[str, Any],
        actor: str = "operator:u1",
        *,
        signer: str = "gateway",
        at: int | None = None,
        block_time: int | None = None,
    ) -> Outcome:
        """Build, sign and apply one transaction; return its outcome."""
        return self.apply(self.tx(type, payload, actor, signer=signer, at=at), block_time=block_time)

    def ok(self, type: str, payload: Mapping[str, Any], actor: str = "operator:u1", **kw: Any) -> Outcome:
        """Like :meth:`submit` but raise AssertionError unless the outcome is valid."""
        out = self.submit(type, payload, actor, **kw)
        if not out.ok:
            raise AssertionError(f"{type} refused: {out.code} {out.message}")
        return out

    def replay(self) -> EticketMachine:
        """A fresh machine fed every logged transaction with the same contexts."""
        fresh = EticketMachine.from_consortium(self.consortium)
        for tx, ctx, _ in self.log:
            fresh.apply(tx, ctx)
        return fresh

    def register_act_key(self, actor: str, *, days: int = 365) -> PrivateKey:
        """A fresh key for ``actor`` (``approver:<dept>``, ``enforcement:<dept>``: registered with that
        department's member key; ``operator``, ``centre:<id>``: with the first department's; a device: by an
        operator), valid
        from the clock for ``days``."""
        # deterministic (two worlds built alike hold equal records); never a real key
        seed = hashlib.sha256(f"test-act-key\x00{actor}\x00{len(self.act_keys)}".encode()).digest()
        key = PrivateKey(ED25519, seed)
        kind = actor.partition(":")[0]
        if kind in DEPARTMENT_KINDS:
            signer, by = actor.split(":")[1], f"admin:{actor.split(':')[1]}"
        elif kind in (CENTRE_KIND, TOWN_CENTRE_KIND):  # the centre's department
            signer = self.machine.params.departments[0]
            by = f"admin:{signer}"
        else:
            signer, by = "gateway", "operator:u1"
        self.ok("registry.key", {"key_id": key.key_id, "actor": actor, "public_key": public_key_json(key),
                                 "valid_from": iso(self.clock - 60), "valid_until": iso(self.clock + days * 86400)},
                by, signer=signer)
        self.act_keys[actor] = key
        return key

    def register_approver_keys(self) -> None:
        """Each department member registers its approvers' key (those it has none of yet)."""
        for dept in self.machine.params.departments:
            if dept in self.keys and f"approver:{dept}" not in self.act_keys:
                self.register_act_key(f"approver:{dept}")

    # -- the business -----------------------------------------------------
    def setup_registry(self) -> None:
        """Two contractors with a project each, two companies, three sites, three trucks, a driver (and the
        departments' approver keys, if not registered yet)."""
        self.register_approver_keys()
        for org, name in (("ORG-001", "重庆建工第三建设有限责任公司"), ("ORG-002", "中建八局西南公司")):
            self.ok("registry.org", {"org_id": org, "name": name, "kind": "contractor"})
        self.ok("registry.org", {"org_id": "ORG-T01", "name": "渝运集团", "kind": "transport"})
        self.ok(
            "registry.project",
            {
                "project_id": "P-001",
                "name": "悦来安置房",
                "contractor_org_id": "ORG-001",
                "location": PROJECT_LOC,
                "town": "悦来街道",
                "planned_volume_m3": "120000",
            },
        )
        self.ok(
            "registry.project",
            {
                "project_id": "P-002",
                "name": "礼嘉商业中心",
                "contractor_org_id": "ORG-002",
                "location": {"lat": "29.650000", "lon": "106.500000"},
                "town": "礼嘉街道",
                "planned_volume_m3": "50000",
            },
        )
        for site_id, (kind, cap, alarm, loc) in SITES.items():
            self.ok(
                "registry.site",
                {
                    "site_id": site_id,
                    "name": f"消纳场{site_id}",
                    "kind": kind,
                    "capacity_m3": cap,
                    "alarm_threshold_pct": int(alarm),
                    "location": loc,
                },
            )
        for company in ("C-01", "C-02"):
            self.ok("registry.company", {"company_id": company, "name": f"运输公司{company}"})
        for truck_id, (plate, company, cap) in TRUCKS.items():
            self.ok(
                "registry.truck",
                {
                    "truck_id": truck_id,
                    "plate": plate,
                    "company_id": company,
                    "capacity_m3": cap,
                    "terminal_id": f"GPS-{truck_id}",
                },
            )
        self.ok("registry.driver", {"driver_id": "D-1", "company_id": "C-01", "person_hash": PERSON})

    def apply_permit(
        self,
        permit_id: str = "PM-1",
        *,
        project: str = "P-001",
        quota: str = "1000",
        sites: Iterable[str] = ("S-001", "S-002", "S-003"),
        companies: Iterable[str] = ("C-01",),
        trucks: Iterable[str] = (),
        days: int = 30,
        actor: str = "contractor:ORG-001",
        **extra: Any,
    ) -> Outcome:
        """Apply for a permit valid from now for ``days``."""
        payload = {
            "permit_id": permit_id,
            "project_id": project,
            "volume_m3": quota,
            "site_ids": list(sites),
            "company_ids": list(companies),
            "truck_ids": list(trucks),
            "valid_from": iso(self.clock),
            "valid_to": iso(self.clock + days * 86400),
            **extra,
        }
        return self.submit("permit.apply", payload, actor)

    def decide(
        self, permit_id: str, department: str, decision: str = "approve", reason: str | None = None, **kw: Any
    ) -> Outcome:
        """One department's decision, signed by that department's node."""
        payload: dict[str, Any] = {"permit_id": permit_id, "department": department, "decision": decision}
        if reason is not None:
            payload["reason"] = reason
        return self.submit("permit.decide", payload, f"approver:{department}:u1", signer=department, **kw)

    def approved_permit(self, permit_id: str = "PM-1", **kw: Any) -> None:
        """Apply for a permit and have every department approve it."""
        out = self.apply_permit(permit_id, **kw)
        assert out.ok, out
        for dept in self.machine.params.departments:
            assert self.decide(permit_id, dept).ok

    def issue(
        self,
        ticket_id: str,
        *,
        permit: str = "PM-1",
        truck: str = "TR-1",
        site: str = "S-001",
        volume: str = "16",
        actor: str = "contractor:ORG-001",
        **extra: Any,
    ) -> Outcome:
        """Request a ticket."""
        payload = {
            "ticket_id": ticket_id,
            "permit_id": permit,
            "truck_id": truck,
            "site_id": site,
            "volume_m3": volume,
            **extra,
        }
        return self.submit("ticket.issue", payload, actor)

    def depart(
        self,
        ticket_id: str,
        *,
        plate: str | None = None,
        covered: bool = True,
        actor: str = "gate:exit:P-001",
    ) -> Outcome:
        """The exit gate scans the ticket (plate defaults to the ticket truck's)."""
        t = self.machine.state.tables["ticket"].get(ticket_id)
        truck = self.machine.state.tables["truck"][t.truck_id] if t else None
        plate = plate or (truck.plate if truck else "渝A12345")
        return self.submit(
            "gate.exit",
            {
                "ticket_id": ticket_id,
                "gate_id": "G1",
                "plate": plate,
                "covered": covered,
                "photo_digest": PHOTO,
            },
            actor,
        )

    def positions(
        self,
        ticket_id: str,
        points: Sequence[tuple[str, str, str]],
        *,
        batch: str = "b1",
        actor: str = "gps:GPS-TR-1",
        step: int = 30,
    ) -> Outcome:
        """A GPS batch of (lat, lon, speed) points, ``step`` seconds apart, ending at the clock."""
        start = self.clock - step * (len(points) - 1)
        pts = [
            {"t": iso(start + i * step), "lat": lat, "lon": lon, "speed_kmh": v}
            for i, (lat, lon, v) in enumerate(points)
        ]
        return self.submit("trip.positions", {"ticket_id": ticket_id, "batch_id": batch, "points": pts}, actor)

    def receive(
        self,
        ticket_id: str,
        *,
        volume: str | None = "16",
        weight: str | None = None,
        plate: str | None = None,
        actor: str | None = None,
    ) -> Outcome:
        """The disposal gate of the ticket's site records the receipt."""
        t = self.machine.state.tables["ticket"].get(ticket_id)
        site = t.site_id if t else "S-001"
        truck = self.machine.state.tables["truck"][t.truck_id] if t else None
        payload: dict[str, Any] = {
            "ticket_id": ticket_id,
            "gate_id": "G2",
            "plate": plate or (truck.plate if truck else "渝A12345"),
            "photo_digest": PHOTO,
        }
        if volume is not None:
            payload["volume_m3"] = volume
        if weight is not None:
            payload["weight_t"] = weight
        return self.submit("gate.receipt", payload, actor or f"gate:disposal:{site}")

    def tick(self) -> Outcome:
        """A system tick at the current clock."""
        return self.submit("system.tick", {}, "system:scheduler")


def make_world(parameters: Mapping[str, Any] | None = None, *, registry: bool = True, start: str = T0) -> World:
    """A fresh consortium and machine (with the standard registry unless ``registry=False``)."""
    departments = tuple((parameters or {}).get("departments", DEFAULT_DEPARTMENTS))
    consortium, keys = make_consortium(parameters, departments)
    world = World(consortium, keys, EticketMachine.from_consortium(consortium), epoch(start))
    world.register_approver_keys()
    if registry:
        world.setup_registry()
    return world
