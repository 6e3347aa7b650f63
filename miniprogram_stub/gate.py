"""The offline gate library: verify QR tickets without the network, queue, sync later.

A gate (site exit or disposal site) keeps, in one local SQLite file,

* the published issuer keys (``GET /api/v1/keys``), so it verifies after a
  restart without the network;
* every scan it made, with its offline verdict, until ``sync()`` has posted
  it to ``POST /api/v1/gate/sync`` and stored the server's verdict.

The offline checks are exactly the API's (``ledger.qrticket.gatecheck``):
signature, validity window, plate, own site; plus the gate's local memory
(the same ticket twice at this gate: ``already_departed`` /
``already_received``) and, at an exit, an uncovered load (``uncovered_load``).
A ticket used at two gates while both were offline passes both, and the
ledger catches the second at sync: its result comes back refused with a
``violation_id``.

It also keeps the signed revocation list (``GET /api/v1/gate/revocations``,
``ledger.qrticket.revocations``): a ticket voided, a truck or its company
suspended, a permit revoked is refused offline (``voided``,
``truck_suspended``, ``permit_not_approved``).  With ``max_revocation_age``
set, ``scan()`` raises :class:`~miniprogram_stub.errors.OfflineUnavailable`
(``revocations_missing`` / ``revocations_stale``) rather than decide on a
list that old; ``revocation_status()`` shows its age.  A voided ticket the gate
let through anyway (the void came after its last refresh) becomes a
``no_ticket`` violation on the ledger when the scan syncs.

    gate = OfflineGate("http://api", token, kind="exit", site_id="P-001", db_path="gate.sqlite",
                       max_revocation_age=timedelta(minutes=30))
    gate.refresh_keys()                 # when online; False (cache kept) when not
    gate.refresh_revocations()          # the same; a delta once a list is cached
    result = gate.scan(qr_text, "渝A12345", covered=True)
    report = gate.sync()                # posts the queue; keeps it when unreachable
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from ledger.core.crypto import PrivateKey, PublicKey
from ledger.core.encoding import CHINA_TZ, iso
from ledger.errors import LedgerError
from ledger.eticket import acts
from ledger.qrticket.gatecheck import DISPOSAL, EXIT, GateRefusal, check_scan, normalise_plate
from ledger.qrticket.revocations import RevocationList, RevocationListError, verify_list
from miniprogram_stub.errors import OfflineUnavailable

SYNC_BATCH = 200
#: deltas of the revocation list kept on top of the full one before a refresh asks for a full list again
MAX_DELTAS = 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY, alg TEXT NOT NULL, pem TEXT NOT NULL,
    valid_from TEXT, valid_until TEXT, fetched_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scans (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    scan_id TEXT UNIQUE NOT NULL, kind TEXT NOT NULL, ticket_id TEXT,
    qr TEXT NOT NULL, plate TEXT NOT NULL, covered INTEGER, volume_m3 TEXT,
    scanned_at TEXT NOT NULL, accepted INTEGER NOT NULL, reason TEXT,
    synced_at TEXT, server_accepted INTEGER, server_reason TEXT, violation_id TEXT, weighing TEXT, act_sig TEXT);
CREATE INDEX IF NOT EXISTS scans_ticket ON scans(ticket_id, accepted);
CREATE INDEX IF NOT EXISTS scans_unsynced ON scans(synced_at);
CREATE TABLE IF NOT EXISTS revocations (
    version INTEGER NOT NULL, since_version INTEGER, doc TEXT NOT NULL, fetched_at TEXT NOT NULL);
"""


@dataclass(frozen=True)
class ScanResult:
    """The gate's offline verdict (``reason`` is a gate reason code when refused)."""

    scan_id: str
    accepted: bool
    reason: str | None
    message: str
    ticket_id: str | None


@dataclass
class SyncReport:
    """What ``sync()`` did; ``error`` is set (and the queue kept) when it could not finish."""

    sent: int = 0
    accepted: int = 0
    refused: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class OfflineGate:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        kind: str,
        site_id: str,
        db_path: str | Path,
        gate_id: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 3.0,
        clock: Callable[[], datetime] | None = None,
        leeway: timedelta = timedelta(minutes=2),
        max_revocation_age: timedelta | None = None,
        signing_key: PrivateKey | None = None,
    ) -> None:
        if kind not in (EXIT, DISPOSAL):
            raise ValueError(f"kind must be {EXIT!r} or {DISPOSAL!r}")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.kind = kind
        self.site_id = site_id
        self.gate_id = gate_id
        self.session = session or requests.Session()
        self.timeout = timeout
        self.clock = clock or (lambda: datetime.now(CHINA_TZ))
        self.leeway = leeway
        #: scans refuse to decide offline (OfflineUnavailable) without a revocation list at most this old
        self.max_revocation_age = max_revocation_age
        #: the gate device's own key (registered on the chain by an operator): each scan is signed when it
        #: happens and synced signed (``ledger.eticket.acts``); needs ``gate_id``
        self.signing_key = signing_key
        if signing_key is not None and not gate_id:
            raise ValueError("a gate that signs its scans names its gate_id")
        #: the verified list in memory, with the key refresh it was verified after (see revocation_list)
        self._revoked: tuple[int, RevocationList | None] | None = None
        self._keys_seen = 0
        self.db = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False)
        self.db.executescript(_SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(scans)")}
        for column in ("weighing", "act_sig"):  # a gate database from before weighbridge / signed scans
            if column not in columns:
                self.db.execute(f"ALTER TABLE scans ADD COLUMN {column} TEXT")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> OfflineGate:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # keys ------------------------------------------------------------------------

    def refresh_keys(self) -> bool:
        """Fetch the published keys into the cache; False (cache untouched) when offline."""
        try:
            resp = self.session.get(self.base_url + "/api/v1/keys", timeout=self.timeout)
            resp.raise_for_status()
            body = resp.json()
        except (requests.RequestException, ValueError):
            return False
        now = self.clock().isoformat()
        rows = []
        for k in body.get("keys", []):
            try:
                pk = PublicKey.from_pem(k["public_key_pem"])
            except (LedgerError, KeyError, TypeError):
                continue
            if pk.key_id != k.get("key_id"):
                continue  # a key id that does not match its key is ignored
            rows.append(
                (pk.key_id, pk.alg, k["public_key_pem"], k.get("valid_from"), k.get("valid_until"), now)
            )
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM keys")
            self.db.executemany("INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._keys_seen += 1  # verify the cached revocation list again with these keys
        return True

    def keys(self) -> dict[str, PublicKey]:
        """The cached keys by key id."""
        return {kid: PublicKey.from_pem(pem) for kid, pem in self.db.execute("SELECT key_id, pem FROM keys")}

    # revocations -----------------------------------------------------------------

    def refresh_revocations(self) -> bool:
        """Fetch the revocation list (a delta after the cached version, if any), verify it with the cached
        keys and store it; False (cache untouched) when offline.  A list that does not verify raises
        :class:`~ledger.qrticket.revocations.RevocationListError` (``bad_revocation_signature`` /
        ``bad_revocation_list``) and is not stored."""
        current = self.revocation_list()
        (stored,) = self.db.execute("SELECT count(*) FROM revocations").fetchone()
        # a delta after the cached version; a full list again once MAX_DELTAS deltas pile up
        params = {"since": str(current.version)} if current is not None and stored <= MAX_DELTAS else {}
        try:
            resp = self.session.get(self.base_url + "/api/v1/gate/revocations", params=params,
                                    headers={"Authorization": f"Bearer {self.token}"}, timeout=self.timeout)
            resp.raise_for_status()
            doc = resp.json()
        except (requests.RequestException, ValueError):
            return False
        got = verify_list(doc, self.keys())
        with self.db:
            self.db.execute("BEGIN")
            if got.since_version is None:
                self.db.execute("DELETE FROM revocations")
            self.db.execute("INSERT INTO revocations VALUES (?, ?, ?, ?)",
                            (got.version, got.since_version, json.dumps(doc, ensure_ascii=False),
                             self.clock().isoformat()))
        self._revoked = None
        return True

    def revocation_list(self) -> RevocationList | None:
        """The cached list with its deltas merged, each verified again with the cached keys (None: none
        cached, or it no longer verifies, e.g. after its key was withdrawn)."""
        if self._revoked is not None and self._revoked[0] == self._keys_seen:
            return self._revoked[1]
        merged = self._load_revocations()
        self._revoked = (self._keys_seen, merged)
        return merged

    def _load_revocations(self) -> RevocationList | None:
        merged: RevocationList | None = None
        keys = self.keys()
        for (doc,) in self.db.execute("SELECT doc FROM revocations ORDER BY rowid"):
            try:
                got = verify_list(json.loads(doc), keys)
            except (RevocationListError, ValueError):
                return None
            merged = got if merged is None or got.since_version is None else merged.merged(got)
        return merged

    def revocation_status(self) -> dict[str, Any]:
        """What the attendant's screen shows: the list's version, issue time, age and whether it is too old."""
        rl = self.revocation_list()
        if rl is None:
            return {"version": None, "issued_at": None, "age_seconds": None, "stale": True}
        age = rl.age(self.clock())
        limit = self.max_revocation_age
        return {"version": rl.version, "issued_at": rl.issued_at.isoformat(), "age_seconds": round(age),
                "stale": limit is not None and age > limit.total_seconds()}

    def _usable_revocations(self, when: datetime) -> RevocationList | None:
        """The list to check a scan against; raises OfflineUnavailable when ``max_revocation_age`` is set and
        the list is missing or older than it at ``when`` (the gate's clock now)."""
        rl = self.revocation_list()
        limit = self.max_revocation_age
        if limit is None:
            return rl
        if rl is None:
            raise OfflineUnavailable("no revocation list is cached", reason="revocations_missing")
        if when - rl.issued_at > limit:
            raise OfflineUnavailable(f"the revocation list of {rl.issued_at.isoformat()} is older than {limit}",
                                     reason="revocations_stale")
        return rl

    # scanning --------------------------------------------------------------------

    def scan(
        self,
        qr: str,
        plate: str,
        *,
        covered: bool | None = None,
        volume_m3: Decimal | float | str | None = None,
        at: datetime | None = None,
        weight_t: Decimal | float | str | None = None,
        gross_t: Decimal | float | str | None = None,
        tare_t: Decimal | float | str | None = None,
    ) -> ScanResult:
        """Verify offline, decide, and queue the scan (accepted or not) for ``sync()``.  A disposal gate with
        a weighbridge gives the net ``weight_t``, or ``gross_t`` and ``tare_t``, instead of (or besides) the
        volume; an incomplete weighing (gross without tare, tare not below gross) is refused ``bad_weighing``."""
        when = at or self.clock()
        weighing = {k: str(v) for k, v in (("weight_t", weight_t), ("gross_t", gross_t), ("tare_t", tare_t))
                    if v is not None}
        revoked = self._usable_revocations(self.clock())
        scan_id = f"{self.gate_id or self.site_id}-{uuid.uuid4().hex[:16]}"
        ticket_id: str | None = None
        try:
            claims = check_scan(
                qr,
                self.keys(),
                kind=self.kind,
                plate=plate,
                site_id=self.site_id,
                at=when,
                leeway=self.leeway,
            )
            ticket_id = claims.ticket_id
            code = revoked.refusal(ticket_id=ticket_id, permit_id=claims.permit_id, plate=plate, at=when) \
                if revoked is not None else None
            if code is not None:
                raise GateRefusal(code, "on the gate's revocation list")
            seen = self.db.execute(
                "SELECT 1 FROM scans WHERE ticket_id = ? AND kind = ? AND accepted = 1",
                (ticket_id, self.kind),
            ).fetchone()
            if seen:
                raise GateRefusal(
                    "already_departed" if self.kind == EXIT else "already_received",
                    "this gate already let this ticket through",
                )
            if self.kind == EXIT and covered is False:
                raise GateRefusal("uncovered_load", "the load is not covered")
            if self.kind == DISPOSAL:
                _check_weighing(weighing)
            accepted, reason, message = True, None, "accepted"
        except GateRefusal as exc:
            accepted, reason, message = False, exc.reason, exc.message
        measured = {**({"volume_m3": str(volume_m3)} if volume_m3 is not None else {}), **weighing}
        act = self._sign(ticket_id, plate, covered, when, accepted, measured if reason != "bad_weighing" else {})
        self.db.execute(
            "INSERT INTO scans (scan_id, kind, ticket_id, qr, plate, covered, volume_m3,"
            " scanned_at, accepted, reason, weighing, act_sig) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                scan_id,
                self.kind,
                ticket_id,
                qr,
                plate,
                None if covered is None else int(covered),
                None if volume_m3 is None else str(volume_m3),
                when.isoformat(),
                int(accepted),
                reason,
                # a refused weighing is not sent (the API would refuse the whole batch for it)
                json.dumps(weighing) if weighing and reason != "bad_weighing" else None,
                json.dumps(act) if act else None,
            ),
        )
        return ScanResult(scan_id, accepted, reason, message, ticket_id)

    def _sign(self, ticket_id: str | None, plate: str, covered: bool | None, when: datetime, accepted: bool,
              measured: dict[str, str]) -> dict[str, str] | None:
        """The scan's ``act_sig``: the gate's signature over the ledger payload the API will submit at sync."""
        if self.signing_key is None or ticket_id is None or self.gate_id is None:
            return None
        at = iso(when, timespec="seconds")
        if self.kind == EXIT:
            payload = acts.exit_payload(ticket_id, self.gate_id, normalise_plate(plate),
                                        True if covered is None else covered, at, offline=accepted)
            return acts.act_signature(self.signing_key, "gate.exit", payload)
        payload = acts.receipt_payload(ticket_id, self.gate_id, self.site_id, normalise_plate(plate), measured, at)
        return acts.act_signature(self.signing_key, "gate.receipt", payload)

    def pending(self) -> list[dict[str, Any]]:
        """Queued scans not synced yet, oldest first, in the sync request's form."""
        rows = self.db.execute(
            "SELECT scan_id, kind, qr, plate, covered, volume_m3, scanned_at, accepted, reason, weighing, act_sig"
            " FROM scans WHERE synced_at IS NULL ORDER BY seq"
        ).fetchall()
        return [
            {
                "scan_id": r[0],
                "kind": r[1],
                "qr": r[2],
                "plate": r[3],
                "covered": None if r[4] is None else bool(r[4]),
                "volume_m3": r[5],
                **(json.loads(r[9]) if r[9] else {}),
                "scanned_at": r[6],
                "offline_verdict": {"accepted": bool(r[7]), "reason": r[8]},
                **({"gate_id": self.gate_id, "act_sig": json.loads(r[10])} if r[10] else {}),
            }
            for r in rows
        ]

    def sync(self) -> SyncReport:
        """Post the queue in batches; stops (keeping the rest) at the first failure."""
        report = SyncReport()
        queue = self.pending()
        for start in range(0, len(queue), SYNC_BATCH):
            batch = queue[start : start + SYNC_BATCH]
            body: dict[str, Any] = {"scans": batch}
            if self.gate_id:
                body["gate_id"] = self.gate_id
            key = hashlib.sha256(json.dumps([s["scan_id"] for s in batch]).encode()).hexdigest()
            try:
                resp = self.session.post(
                    self.base_url + "/api/v1/gate/sync",
                    json=body,
                    headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": key},
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                report.error = f"unreachable: {type(exc).__name__}"
                return report
            if resp.status_code != 200:
                try:
                    reason = resp.json().get("reason", "")
                except ValueError:
                    reason = ""
                report.error = f"HTTP {resp.status_code} {reason}".strip()
                return report
            results = resp.json().get("results", [])
            now = self.clock().isoformat()
            with self.db:
                self.db.execute("BEGIN")
                for res in results:
                    self.db.execute(
                        "UPDATE scans SET synced_at = ?, server_accepted = ?, server_reason = ?,"
                        " violation_id = ? WHERE scan_id = ?",
                        (
                            now,
                            int(bool(res.get("accepted"))),
                            res.get("reason"),
                            res.get("violation_id"),
                            res.get("scan_id"),
                        ),
                    )
            report.sent += len(batch)
            report.results.extend(results)
            for res in results:
                if res.get("accepted"):
                    report.accepted += 1
                else:
                    report.refused += 1
                if res.get("violation_id"):
                    report.violations.append(res)
        return report


def _check_weighing(weighing: dict[str, str]) -> None:
    """Gross and tare come together, tare below gross, and every figure a positive number (else
    ``bad_weighing``: the attendant weighs again rather than sending what the ledger would refuse)."""
    try:
        figures = {k: Decimal(v) for k, v in weighing.items()}
    except ArithmeticError:
        raise GateRefusal("bad_weighing", "a weighing is not a number") from None
    if any(not v.is_finite() or v <= 0 for v in figures.values()):
        raise GateRefusal("bad_weighing", "a weighing must be a positive number of tonnes")
    if ("gross_t" in figures) != ("tare_t" in figures):
        raise GateRefusal("bad_weighing", "gross and tare weights come together")
    if "gross_t" in figures and figures["tare_t"] >= figures["gross_t"]:
        raise GateRefusal("bad_weighing", "the tare weight must be below the gross weight")
