"""Gate scans (site exit, disposal site), offline-scan sync and truck GPS batches on the ledger."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger.core.encoding import CHINA_TZ
from ledger.core.transaction import Transaction
from ledger.eticket import acts
from ledger.qrticket.gatecheck import DISPOSAL, EXIT, GateRefusal, check_scan, normalise_plate
from ledger.qrticket.ticket import TicketClaims
from ticket_api.adapter import heights
from ticket_api.adapter.acts import relay, signed_time
from ticket_api.adapter.gateway import Gateway, iso, new_id
from ticket_api.adapter.outbox import Claim, GateOutbox
from ticket_api.adapter.revocations import signed_revocations
from ticket_api.adapter.weighing import measure
from ticket_api.db import GateScan, write_lock
from ticket_api.errors import Forbidden, NotFound, Refused
from ticket_api.i18n import message
from ticket_api.issuer import Keyring
from ticket_api.ledger_client import Finality, LedgerRefusal
from ticket_api.service_data import (
    GateDisposal,
    GateExit,
    GateResult,
    OfflineScan,
    PositionBatch,
    PositionsResult,
    ScanView,
    SyncReport,
    SyncResult,
)
from ticket_api.services import Admitted, Changed, Pending, Submission
from ticket_api.tokens import Principal

Clock = Callable[[], datetime]
#: Ledger refusals that mean "this ticket was already used": at sync, an offline gate let it through again.
REUSED = frozenset({"already_departed", "already_received"})
#: The refusal when another scan holds the ticket's claim for that kind.
ALREADY = {EXIT: "already_departed", DISPOSAL: "already_received"}


def _again(kept: GateScan) -> SyncResult:
    """A scan synced before: its first result (as stored), marked ``duplicate``."""
    first: SyncResult = json.loads(kept.result)
    return {**first, "duplicate": True}


def _gate(principal: Principal) -> str:
    """How the API's own tables (offline scans, claims) name a gate: ``role:tenant``."""
    return f"{principal.role}:{principal.tenant}"


class LedgerGates:
    """``GateService`` and ``TripService`` over the consortium."""

    def __init__(self, *, gateway: Gateway, keyring: Keyring, engine: Engine, clock: Clock,
                 leeway: timedelta) -> None:
        self.gw = gateway
        self.keyring = keyring
        self.engine = engine
        self.clock = clock
        self.leeway = leeway
        self.outbox = GateOutbox(engine=engine, client=gateway.client, on_refused=self._refused_after_admission)

    # -- online scans --------------------------------------------------------
    def _claimed(self, principal: Principal, kind: str, type: str, ticket_id: str, payload: dict[str, Any],
                 wait: bool) -> tuple[Transaction, Finality | None]:
        """Sign the scan's transaction and claim ``(ticket, kind)`` for it (see ``adapter.outbox``).

        Waiting: claim, submit, wait for finality; the claim goes again if the ledger refuses.  Not
        waiting: the ledger's rules preview it on a node's current state, the claim commits with the
        transaction in the outbox, and the answer goes out before the block (``Admitted``).
        """
        actor = self.gw.actor(principal)
        tx = self.gw.sign(type=type, payload=payload, actor=actor, now=self.clock())
        gate = _gate(principal)
        if not wait:  # on a node that has the ticket's block (one that lags would not know the ticket)
            self.gw.preview(tx, min_height=heights.height_of(self.engine, ticket_id))
        if not self.outbox.claim(ticket_id=ticket_id, kind=kind, gate=gate, actor=actor, tx=tx, send=not wait):
            code = ALREADY[kind]
            raise LedgerRefusal(message(code), reason=code)
        if not wait:
            return tx, None
        try:
            fin = self.gw.send(tx, wait=True)
        except LedgerRefusal:
            self.outbox.release(tx.tx_id)
            raise
        self.outbox.settle(tx.tx_id, verdict="valid", height=fin.height)
        return tx, fin

    def _exit(self, principal: Principal, claims: TicketClaims, data: Mapping[str, Any], at: datetime,
              wait: bool) -> Changed[GateResult]:
        # the rules make a voided ticket's offline exit a violation (``offline``); a gate that signs its scans
        # signed this very payload (``ledger.eticket.acts``)
        payload = acts.exit_payload(claims.ticket_id, data.get("gate_id") or f"{principal.tenant}-G1",
                                    normalise_plate(data["plate"]), bool(data["covered"]), iso(at),
                                    photo_digest=data.get("photo_digest"), offline=bool(data.get("offline")))
        relay(payload, data.get("act_sig"))
        try:
            tx, fin = self._claimed(principal, EXIT, "gate.exit", claims.ticket_id, payload, wait)
        except LedgerRefusal as exc:
            if exc.reason == "uncovered_load":
                # A refused transaction changes nothing, so the violation is its own transaction.
                vid = self._report(principal, "uncovered_load", "FGBY", claims, at,
                                   evidence=[data["photo_digest"]] if data.get("photo_digest") else [],
                                   description="出场时车辆未密闭覆盖 (load not covered at the site exit)")
                raise Refused(exc.detail, reason="uncovered_load", fields={"violation_id": vid}) from None
            raise
        revoked: list[str] = []
        if fin is not None and payload.get("offline"):
            revoked = self._used_after_revocation(claims.ticket_id, fin.height)
        body: GateResult = {"accepted": True, "ticket_id": claims.ticket_id, "status": "departed",
                            "plate": payload["plate"], "departed_at": iso(at), "tx_id": tx.tx_id,
                            "final": fin is not None, "block_height": fin.height if fin else None}
        if revoked:
            body["violations"] = revoked
        return body if fin is not None else Admitted(body)

    def _used_after_revocation(self, ticket_id: str, height: int | None) -> list[str]:
        """After an offline exit (``rules_revoked``): a ticket still ``voided`` was let out after its void:
        refused ``voided`` with the violation the rules raised; a departure flagged ``used_after_revocation``
        (its truck, company or permit revoked before the scan) is recorded: its violations are returned."""
        t = self.gw.query("ticket", min_height=height, ticket_id=ticket_id) or {}
        vids = [str(v) for v in t.get("violations") or []]
        if t.get("state") == "voided":
            raise Refused(f"ticket {ticket_id} was voided before the offline scan", reason="voided",
                          fields={"violation_id": vids[0]} if vids else {})
        return vids if "used_after_revocation" in (t.get("flags") or []) else []

    def _receipt(self, principal: Principal, claims: TicketClaims, data: Mapping[str, Any], at: datetime,
                 wait: bool) -> Changed[GateResult]:
        payload = acts.receipt_payload(claims.ticket_id, data.get("gate_id") or f"{principal.tenant}-G1",
                                       principal.tenant, normalise_plate(data["plate"]), measure(data), iso(at),
                                       photo_digest=data.get("photo_digest"))
        relay(payload, data.get("act_sig"))
        tx, fin = self._claimed(principal, DISPOSAL, "gate.receipt", claims.ticket_id, payload, wait)
        if fin is None:
            return Admitted({"accepted": True, "ticket_id": claims.ticket_id, "status": "received",
                             "received_at": iso(at), "tx_id": tx.tx_id, "final": False, "block_height": None})
        t = self.gw.query("ticket", min_height=fin.height, ticket_id=claims.ticket_id) or {}
        site = self.gw.query("site", min_height=fin.height, site_id=principal.tenant) or {}
        return {"accepted": True, "ticket_id": claims.ticket_id, "status": t.get("state", "received"),
                "received_at": iso(at), "expected_m3": t.get("volume_m3"), "measured_m3": t.get("measured_m3"),
                "weight_t": t.get("weight_t"), "discrepancy": t.get("discrepancy"),
                "violations": t.get("violations", []),
                "site": {k: site.get(k) for k in ("site_id", "load_rate_pct", "alarm", "room_m3")},
                "tx_id": tx.tx_id, "final": True, "block_height": fin.height}

    def record_exit(self, principal: Principal, claims: TicketClaims, data: GateExit,
                    sub: Submission) -> Changed[GateResult]:
        return self._exit(principal, claims, data, data.get("time") or self.clock(), sub.wait)

    def record_disposal(self, principal: Principal, claims: TicketClaims, data: GateDisposal,
                        sub: Submission) -> Changed[GateResult]:
        return self._receipt(principal, claims, data, data.get("time") or self.clock(), sub.wait)

    def scan(self, principal: Principal, tx_id: str) -> ScanView:
        """A gate's claim and the ledger's verdict on it (the gate's own scans; staff and regulators any)."""
        claim = self.outbox.get(tx_id)
        gate = _gate(principal)
        if claim is None or (principal.role in ("exit_gate", "disposal_gate") and claim.gate != gate):
            raise NotFound("no such gate scan")
        return {"tx_id": claim.tx_id, "ticket_id": claim.ticket_id, "kind": claim.kind, "gate": claim.gate,
                "claimed_at": iso(claim.created_at), "submitted": claim.submitted_at is not None,
                "final": claim.final, "verdict": claim.verdict,
                "accepted": None if claim.verdict is None else claim.verdict == "valid",
                "block_height": claim.height, "violation_id": claim.violation_id}

    def _refused_after_admission(self, claim: Claim) -> str:
        """The pump's callback: the ledger refused a scan the gate had already let through.

        The violation id comes from the claim (its time and transaction), so a report retried after a lost
        answer is the same report: the ledger's ``duplicate_id`` then means it is already there.
        """
        t = self.gw.query("ticket", ticket_id=claim.ticket_id) or {}
        digits = int(hashlib.sha256(claim.tx_id.encode()).hexdigest(), 16) % 10**5
        vid = f"WPYS{claim.created_at.astimezone(CHINA_TZ):%Y%m%d%H%M%S}{digits:05d}"
        payload: dict[str, Any] = {
            "violation_id": vid, "type": "no_ticket", "source": "gate", "time": iso(claim.created_at),
            "plate": (t.get("truck") or {}).get("plate") or "", "ticket_id": claim.ticket_id,
            "project_id": (t.get("project") or {}).get("project_id") or "", "evidence": [],
            "description": f"闸机放行后账本拒绝该扫码 (the ledger refused a scan the gate had let through): "
                           f"{claim.verdict}, tx {claim.tx_id[:16]}",
        }
        try:
            self.gw.submit(type="violation.report", payload=payload, actor=claim.actor, now=self.clock())
        except LedgerRefusal as exc:
            if exc.reason != "duplicate_id":
                raise
        return vid

    def _report(self, principal: Principal, vtype: str, prefix: str, claims: TicketClaims, at: datetime,
                *, evidence: list[str], description: str) -> str:
        vid = new_id(prefix, at, digits=5)
        payload: dict[str, Any] = {
            "violation_id": vid, "type": vtype, "source": "gate", "time": iso(at), "plate": claims.plate,
            "ticket_id": claims.ticket_id, "project_id": claims.project_id, "evidence": evidence,
            "description": description,
        }
        self.gw.submit(type="violation.report", payload=payload, actor=self.gw.actor(principal), now=self.clock())
        return vid

    # -- offline sync --------------------------------------------------------
    def revocations(self, principal: Principal, since: str | None) -> dict[str, Any]:
        """The signed revocation list an offline gate caches (``adapter.revocations``)."""
        return signed_revocations(self.gw, self.keyring, self.clock(), since)

    def sync(self, principal: Principal, scans: Sequence[OfflineScan], sub: Submission) -> SyncReport:
        """Replay an offline gate's queue in order; see ``views/gates.py`` for the contract."""
        gate = _gate(principal)
        kind = EXIT if principal.role == "exit_gate" else DISPOSAL
        results: list[SyncResult] = []
        for scan in scans:
            with Session(self.engine) as s:
                kept = s.scalar(select(GateScan).where(GateScan.gate == gate, GateScan.scan_id == scan["scan_id"]))
            if kept is not None:
                results.append(_again(kept))
                continue
            result = self._sync_one(principal, kind, scan)
            try:
                with write_lock(self.engine), Session(self.engine) as s, s.begin():
                    s.add(GateScan(gate=gate, scan_id=scan["scan_id"], result=json.dumps(result, ensure_ascii=False),
                                   created_at=datetime.now(UTC)))
            except IntegrityError:  # the same scan synced concurrently: the first stored result wins
                with Session(self.engine) as s:
                    kept = s.scalar(select(GateScan).where(GateScan.gate == gate,
                                                           GateScan.scan_id == scan["scan_id"]))
                result = _again(kept) if kept else result
            results.append({**result, "duplicate": result.get("duplicate", False)})
        accepted = sum(1 for r in results if r["accepted"])
        return {"results": results, "accepted": accepted, "refused": len(results) - accepted}

    def _sync_one(self, principal: Principal, kind: str, scan: OfflineScan) -> SyncResult:
        out: SyncResult = {"scan_id": scan["scan_id"], "accepted": False, "ticket_id": None, "reason": None,
                           "message": None, "violation_id": None, "tx_id": None}
        if scan["kind"] != kind:
            out.update({"reason": "forbidden", "message": message("forbidden")})
            return out
        at: datetime = scan["scanned_at"]
        try:
            # bounded below by the QR's validity (valid_from - leeway) and above by its end and by the sync
            claims = check_scan(scan["qr"], self.keyring.mapping(), kind=kind, plate=scan["plate"],
                                site_id=principal.tenant, at=at, leeway=self.leeway)
        except GateRefusal as exc:
            out.update({"reason": exc.reason, "message": message(exc.reason, default=exc.message)})
            return out
        if at > self.clock() + self.leeway:
            out.update({"ticket_id": claims.ticket_id, "reason": "clock_skew", "message": message("clock_skew")})
            return out
        out["ticket_id"] = claims.ticket_id
        gate_id = scan.get("gate_id")
        try:
            if kind == EXIT:
                data = {"plate": scan["plate"], "covered": True if scan.get("covered") is None else scan["covered"],
                        "offline": bool(scan["offline_verdict"]["accepted"]), "gate_id": gate_id,
                        "act_sig": scan.get("act_sig")}
                res = self._exit(principal, claims, data, at, True)
            else:
                measured = {k: scan.get(k) for k in ("volume_m3", "weight_t", "gross_t", "tare_t")}
                res = self._receipt(principal, claims, {"plate": scan["plate"], "gate_id": gate_id,
                                                        "act_sig": scan.get("act_sig"), **measured}, at, True)
        except (LedgerRefusal, Refused) as exc:
            out.update({"reason": exc.reason, "message": message(exc.reason, default=exc.detail)})
            if exc.fields.get("violation_id"):
                out["violation_id"] = exc.fields["violation_id"]
            elif exc.reason in REUSED and scan["offline_verdict"]["accepted"]:
                out["violation_id"] = self._report(
                    principal, "no_ticket", "WPYS", claims, at, evidence=[],
                    description=f"离线期间重复使用电子渣票 (ticket used twice while the gate was offline), "
                                f"scan {scan['scan_id']}")
            return out
        assert isinstance(res, dict)
        out.update({"accepted": True, "tx_id": res.get("tx_id")})
        if res.get("violations"):  # let out after its truck, company or permit was revoked
            out.update({"violation_id": res["violations"][0], "reason": "revoked_before_scan",
                        "message": message("revoked_before_scan")})
        return out

    # -- trips ---------------------------------------------------------------
    def _bound_positions(self, t: Mapping[str, Any], positions: Sequence[Mapping[str, Any]]) -> None:
        """Every point between the trip's exit and now (the leeway either way): refused ``bad_position_time``
        naming the points, else a terminal could date a trip's points before it left or into the future."""
        departed = t.get("departed_at")
        earliest = datetime.fromisoformat(departed) - self.leeway if departed else None
        latest = self.clock() + self.leeway
        bad = {str(i): ["before the trip's exit" if earliest and p["at"] < earliest else "in the future"]
               for i, p in enumerate(positions) if (earliest and p["at"] < earliest) or p["at"] > latest}
        if bad:
            raise Refused(f"{len(bad)} points outside the trip's exit .. now", reason="bad_position_time",
                          fields=bad)

    def report_positions(self, principal: Principal, ticket_id: str, batch: PositionBatch,
                         sub: Submission) -> Changed[PositionsResult]:
        t = self.gw.query("ticket", ticket_id=ticket_id)
        if t is None:
            raise NotFound("no such ticket")
        if normalise_plate(t["truck"]["plate"]) != normalise_plate(principal.tenant):
            raise Forbidden("this terminal is not on the ticket's truck")
        positions = batch["positions"]
        self._bound_positions(t, positions)
        before = set(t["violations"])
        now = self.clock()
        # a terminal that signs its batches signed this very payload (``ledger.eticket.acts``)
        payload = acts.positions_payload(ticket_id, [acts.position_point(iso(p["at"]), p["lat"], p["lon"],
                                                                         p["speed_kmh"]) for p in positions],
                                         iso(signed_time(batch, now, "batch")))
        done = self.gw.change(principal, sub, type="trip.positions", now=now,
                              payload=relay(payload, batch.get("act_sig")))
        if isinstance(done, Pending):
            return done
        raised = [v for v in self.gw.query("violations", min_height=done.height, ticket_id=ticket_id)
                  if v["violation_id"] not in before]
        return {"ticket_id": ticket_id, "accepted": len(positions), "violations": raised, "tx_id": done.tx_id}
