"""A Python client of the ticket API (what the mini-program and devices call).

Every method maps to one row of the API contract.  Non-2xx answers raise
:class:`ApiCallError` with the ``reason`` code, except the gate calls, whose
refusals (4xx with ``{"accepted": false, "reason"}``) are ordinary results.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import requests

from ledger.core import encoding
from ledger.core.crypto import PrivateKey
from ledger.eticket import acts
from ledger.qrticket.gatecheck import normalise_plate
from ledger.qrticket.ticket import decode_ticket

JSON = dict[str, Any]


def _now_text() -> str:
    """Now as the ledger writes event times (ISO 8601 +08:00, whole seconds): what a signed act carries."""
    return encoding.iso(datetime.now(encoding.CHINA_TZ), timespec="seconds")


def _seconds(at: datetime | str) -> str:
    """A point's time as the API writes it into the ledger payload (ISO 8601 +08:00, whole seconds)."""
    return encoding.iso(at if isinstance(at, datetime) else datetime.fromisoformat(at), timespec="seconds")


def _need(value: str | None) -> str:
    if not value:
        raise ValueError("a signed scan names its gate_id (and a receipt its site_id)")
    return value


#: seconds a call may take: more than the API's own wait for finality (LEDGER_WAIT_SECONDS, 12 s), as a
#: mini-program's wx.request allows 60 s
DEFAULT_TIMEOUT = 30.0
#: methods a client may send again without doing the act twice (RFC 9110 9.2.2)
_REPEATABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: seconds an audit of every node may take to answer (it verifies whole chains)
AUDIT_TIMEOUT = 120.0


class ApiCallError(Exception):
    """A refused or failed API call: HTTP ``status``, ``reason`` code and the body."""

    def __init__(self, status: int, reason: str, message: str, body: Any) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("times must be timezone-aware (+08:00)")
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class ApiClient:
    """``ApiClient("http://127.0.0.1:8000", token=...)``; ``login_wechat`` sets the token."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        session: requests.Session | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        language: str = "zh",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.session = session or requests.Session()
        self.timeout = timeout
        self.language = language

    # plumbing ---------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        wait: bool = True,
        auth: bool = True,
        timeout: float | None = None,
    ) -> requests.Response:
        headers = {"Accept-Language": self.language}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if not wait:
            headers["Prefer"] = "respond-async"
        # A kept-alive connection the server closed just as it was reused fails before any answer
        # ("connection reset"): sent once more on a new connection when a repeat cannot do the act twice
        # (a read, or a write under an Idempotency-Key, which the API answers once).
        repeatable = idempotency_key is not None or method.upper() in _REPEATABLE_METHODS
        for attempt in (1, 2):
            try:
                return self.session.request(
                    method,
                    self.base_url + path,
                    json=_jsonable(json) if json is not None else None,
                    params=params,
                    headers=headers,
                    timeout=self.timeout if timeout is None else timeout,
                )
            except requests.ConnectionError as exc:
                if attempt == 2 or not repeatable or isinstance(exc, requests.Timeout):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _result(resp: requests.Response, *, refusal_ok: bool = False) -> Any:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.ok:
            return body
        if refusal_ok and isinstance(body, dict) and body.get("accepted") is False and resp.status_code < 500:
            return body
        reason = body.get("reason", "") if isinstance(body, dict) else ""
        message = ""
        if isinstance(body, dict):
            message = body.get("message") or (body.get("error") or {}).get("message", "")
        raise ApiCallError(resp.status_code, reason or f"http_{resp.status_code}", message, body)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        refusal_ok = kwargs.pop("refusal_ok", False)
        return self._result(self.request(method, path, **kwargs), refusal_ok=refusal_ok)

    def _object(self, method: str, path: str, **kwargs: Any) -> JSON:
        """:meth:`_call` of an endpoint that answers a JSON object."""
        body: JSON = self._call(method, path, **kwargs)
        return body

    @staticmethod
    def new_key() -> str:
        """A fresh Idempotency-Key."""
        return uuid.uuid4().hex

    # system, auth, keys -------------------------------------------------------------

    def health(self) -> JSON:
        return self._object("GET", "/api/health", auth=False)

    def openapi(self) -> JSON:
        return self._object("GET", "/api/openapi.json", auth=False)

    def login_wechat(self, code: str) -> JSON:
        """``POST /api/v1/auth/wechat``; keeps the token for later calls."""
        body = self._object("POST", "/api/v1/auth/wechat", json={"code": code}, auth=False)
        self.token = body["token"]
        return body

    def me(self) -> JSON:
        return self._object("GET", "/api/v1/auth/me")

    def logout(self) -> None:
        self._call("POST", "/api/v1/auth/logout")

    def keys(self) -> JSON:
        return self._object("GET", "/api/v1/keys", auth=False)

    # permits ------------------------------------------------------------------------

    def create_permit(
        self,
        *,
        project_id: str,
        volume_m3: Decimal | float | str,
        disposal_site_ids: Iterable[str],
        truck_plates: Iterable[str],
        valid_from: datetime,
        valid_to: datetime,
        idempotency_key: str | None = None,
        wait: bool = True,
        **extra: Any,
    ) -> JSON:
        body = {
            "project_id": project_id,
            "volume_m3": str(volume_m3),
            "disposal_site_ids": list(disposal_site_ids),
            "truck_plates": list(truck_plates),
            "valid_from": valid_from,
            "valid_to": valid_to,
            **extra,
        }
        return self._object(
            "POST", "/api/v1/permits", json=body, idempotency_key=idempotency_key or self.new_key(), wait=wait
        )

    def decide_permit(
        self, permit_id: str, decision: str, comment: str | None = None, *, idempotency_key: str | None = None,
        signing_key: PrivateKey | None = None, department: str | None = None,
    ) -> JSON:
        """A department's decision; with ``signing_key`` (the department's approver key, registered on the
        chain by the department itself) the act is signed here, on the department's side."""
        body = self._decision_body("permit.decide", permit_id, decision, comment, signing_key, department)
        return self._object("POST", f"/api/v1/permits/{permit_id}/decisions", json=body,
                            idempotency_key=idempotency_key or self.new_key())

    def _decision_body(self, tx_type: str, object_id: str, decision: str, comment: str | None,
                       key: PrivateKey | None, department: str | None) -> JSON:
        if key is None:
            return {"decision": decision, "comment": comment}
        dept = department or str(self.me()["tenant"])
        at = _now_text()
        return acts.decision_body(key, tx_type, object_id, dept, decision, comment, at)

    def get_permit(self, permit_id: str) -> JSON:
        return self._object("GET", f"/api/v1/permits/{permit_id}")

    def request_amendment(
        self,
        permit_id: str,
        *,
        add_disposal_site_ids: Iterable[str] = (),
        add_truck_plates: Iterable[str] = (),
        add_company_ids: Iterable[str] = (),
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> JSON:
        """Ask for sites, trucks or companies to be added to an approved permit (the departments concerned decide)."""
        body: JSON = {"add_disposal_site_ids": list(add_disposal_site_ids), "add_truck_plates": list(add_truck_plates),
                      "add_company_ids": list(add_company_ids), "reason": reason}
        return self._object("POST", f"/api/v1/permits/{permit_id}/amendments", json=body,
                            idempotency_key=idempotency_key or self.new_key())

    def decide_amendment(
        self, amendment_id: str, decision: str, comment: str | None = None, *, idempotency_key: str | None = None,
        signing_key: PrivateKey | None = None, department: str | None = None,
    ) -> JSON:
        """A concerned department's decision on an amendment (signed like :meth:`decide_permit`)."""
        body = self._decision_body("permit.amend_decide", amendment_id, decision, comment, signing_key, department)
        return self._object("POST", f"/api/v1/amendments/{amendment_id}/decisions", json=body,
                            idempotency_key=idempotency_key or self.new_key())

    def amendments(self, *, awaiting_me: bool = False) -> JSON:
        """The caller's amendments (an approver with ``awaiting_me``: its department's queue)."""
        return self._object("GET", "/api/v1/amendments" + ("?awaiting=me" if awaiting_me else ""))

    # tickets ------------------------------------------------------------------------

    def issue_ticket(
        self,
        *,
        permit_id: str,
        truck_plate: str,
        disposal_site_id: str,
        volume_m3: Decimal | float | str,
        idempotency_key: str | None = None,
        wait: bool = True,
        **extra: Any,
    ) -> JSON:
        body = {
            "permit_id": permit_id,
            "truck_plate": truck_plate,
            "disposal_site_id": disposal_site_id,
            "volume_m3": str(volume_m3),
            **extra,
        }
        return self._object(
            "POST", "/api/v1/tickets", json=body, idempotency_key=idempotency_key or self.new_key(), wait=wait
        )

    def get_ticket(self, ticket_id: str) -> JSON:
        return self._object("GET", f"/api/v1/tickets/{ticket_id}")

    def _image(self, path: str) -> bytes:
        resp = self.request("GET", path)
        if not resp.ok:
            self._result(resp)
        return resp.content

    def ticket_qr_png(self, ticket_id: str) -> bytes:
        return self._image(f"/api/v1/tickets/{ticket_id}/qr.png")

    def ticket_qr_svg(self, ticket_id: str) -> bytes:
        return self._image(f"/api/v1/tickets/{ticket_id}/qr.svg")

    def ticket_history(self, ticket_id: str) -> JSON:
        return self._object("GET", f"/api/v1/tickets/{ticket_id}/history")

    # gates, trips, audit -----------------------------------------------------------------

    def sighting(
        self,
        *,
        plate: str,
        covered: bool,
        photo: bytes,
        time: datetime | str | None = None,
        multipart: bool = False,
        idempotency_key: str | None = None,
        signing_key: PrivateKey | None = None,
        camera_id: str | None = None,
        sighting_id: str | None = None,
    ) -> JSON:
        """A camera's sighting (its token: role ``camera``): ``{"sighting_id", "photo_digest", "state",
        "violations": [...]}``; the photo (JPEG or PNG bytes) as base64 JSON or, ``multipart``, a file."""
        fields: dict[str, Any] = {"plate": plate, "covered": covered}
        if time is not None:
            fields["time"] = time.isoformat() if isinstance(time, datetime) else time
        if signing_key is not None:  # the camera signs the sighting's ledger payload itself
            at = (encoding.iso(time, timespec="seconds") if isinstance(time, datetime) else time) or _now_text()
            sid = sighting_id or f"SG{uuid.uuid4().hex[:16].upper()}"
            digest = "sha256:" + hashlib.sha256(photo).hexdigest()
            payload = acts.sighting_payload(sid, _need(camera_id), normalise_plate(plate), covered, digest, at)
            fields.update(time=at, sighting_id=sid,
                          act_sig=acts.act_signature(signing_key, "camera.sighting", payload))
        key = idempotency_key or self.new_key()
        if not multipart:
            body = {**fields, "photo": base64.b64encode(photo).decode("ascii")}
            return self._object("POST", "/api/v1/cameras/sightings", json=body, idempotency_key=key)
        headers = {"Accept-Language": self.language, "Idempotency-Key": key}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        form = {k: (str(v).lower() if isinstance(v, bool) else json.dumps(v) if isinstance(v, dict) else str(v))
                for k, v in fields.items()}
        resp = self.session.post(self.base_url + "/api/v1/cameras/sightings", data=form, headers=headers,
                                 files={"photo": ("photo.png", photo, "image/png")}, timeout=self.timeout)
        body_: JSON = self._result(resp)
        return body_

    def evidence(self, digest: str) -> bytes:
        """The photo filed under ``digest`` (staff tokens)."""
        return self._image(f"/api/v1/evidence/{digest}")

    def gate_exit(
        self,
        *,
        qr: str,
        plate: str,
        covered: bool,
        idempotency_key: str | None = None,
        wait: bool = True,
        signing_key: PrivateKey | None = None,
        gate_id: str | None = None,
        **extra: Any,
    ) -> JSON:
        """``{"accepted": true, "ticket_id", ...}`` or a refusal ``{"accepted": false, "reason"}``.

        ``wait=False`` (what a barrier wants): answered before the block, ``final`` false; the ledger's
        verdict is then at :meth:`gate_scan` with the answer's ``tx_id``.  With ``signing_key`` (the gate
        device's key, registered on the chain by an operator) and ``gate_id`` the scan is signed here.
        """
        body: JSON = {"qr": qr, "plate": plate, "covered": covered, **extra}
        if signing_key is not None:
            at = extra.get("time") or _now_text()
            payload = acts.exit_payload(decode_ticket(qr)[0].ticket_id, _need(gate_id), normalise_plate(plate),
                                        covered, at, photo_digest=extra.get("photo_digest"))
            body.update(gate_id=gate_id, time=at,
                        act_sig=acts.act_signature(signing_key, "gate.exit", payload))
        return self._object(
            "POST",
            "/api/v1/gate/exit",
            json=body,
            idempotency_key=idempotency_key or self.new_key(),
            wait=wait,
            refusal_ok=True,
        )

    def gate_scan(self, tx_id: str) -> JSON:
        """A scan answered before the block, with the ledger's verdict once final."""
        return self._object("GET", f"/api/v1/gate/scans/{tx_id}")

    def gate_disposal(
        self,
        *,
        qr: str,
        plate: str,
        volume_m3: Decimal | float | str | None = None,
        weight_t: Decimal | float | str | None = None,
        gross_t: Decimal | float | str | None = None,
        tare_t: Decimal | float | str | None = None,
        idempotency_key: str | None = None,
        wait: bool = True,
        signing_key: PrivateKey | None = None,
        gate_id: str | None = None,
        site_id: str | None = None,
        **extra: Any,
    ) -> JSON:
        """A disposal receipt by volume, by net weight (``weight_t``), or by a weighbridge's ``gross_t`` and
        ``tare_t`` (the ledger converts a weight at the consortium's density).  With ``signing_key``,
        ``gate_id`` and ``site_id`` (the gate's site) the receipt is signed here, like :meth:`gate_exit`."""
        measure = {k: str(v) for k, v in (("volume_m3", volume_m3), ("weight_t", weight_t), ("gross_t", gross_t),
                                           ("tare_t", tare_t)) if v is not None}
        body: JSON = {"qr": qr, "plate": plate, **measure, **extra}
        if signing_key is not None:
            at = extra.get("time") or _now_text()
            payload = acts.receipt_payload(decode_ticket(qr)[0].ticket_id, _need(gate_id), _need(site_id),
                                           normalise_plate(plate), measure, at,
                                           photo_digest=extra.get("photo_digest"))
            body.update(gate_id=gate_id, time=at,
                        act_sig=acts.act_signature(signing_key, "gate.receipt", payload))
        return self._object(
            "POST",
            "/api/v1/gate/disposal",
            json=body,
            idempotency_key=idempotency_key or self.new_key(),
            wait=wait,
            refusal_ok=True,
        )

    def gate_sync(
        self, scans: list[JSON], *, gate_id: str | None = None, idempotency_key: str | None = None
    ) -> JSON:
        body: JSON = {"scans": scans}
        if gate_id:
            body["gate_id"] = gate_id
        return self._object(
            "POST", "/api/v1/gate/sync", json=body, idempotency_key=idempotency_key or self.new_key()
        )

    def report_positions(
        self, ticket_id: str, positions: list[JSON], *, idempotency_key: str | None = None,
        signing_key: PrivateKey | None = None, time: str | None = None,
    ) -> JSON:
        """``positions``: ``[{"at", "lat", "lon", "speed_kmh"}]``.  With ``signing_key`` (the GPS terminal's
        key, registered on the chain by an operator) the batch's ``trip.positions`` payload is signed here,
        at ``time`` (now unless given)."""
        body: Any = _jsonable(positions)
        if signing_key is not None:
            at = time or _now_text()
            points = [acts.position_point(_seconds(p["at"]), p["lat"], p["lon"], p["speed_kmh"]) for p in positions]
            payload = acts.positions_payload(ticket_id, points, at)
            body = {"positions": body, "time": at,
                    "act_sig": acts.act_signature(signing_key, "trip.positions", payload)}
        return self._object(
            "POST",
            f"/api/v1/trips/{ticket_id}/positions",
            json=body,
            idempotency_key=idempotency_key or self.new_key(),
        )

    def audit(self, **params: Any) -> JSON:
        """The regulator's audit of every node (it re-verifies whole chains: seconds, not milliseconds)."""
        return self._object("GET", "/api/v1/audit", params=_jsonable(params) or None,
                            timeout=max(self.timeout, AUDIT_TIMEOUT))

    def work_list(self, name: str, **params: Any) -> Iterator[JSON]:
        """Every item of a work list (``permits``, ``tickets``, ``projects``, ``trucks``, ``violations``,
        ``penalties``), following ``next`` page by page; ``params`` are its filters (``awaiting="me"``,
        ``status``, ``plate``, ``limit``, ``**{"from": ..., "to": ...}``)."""
        query = _jsonable(params) or {}
        while True:
            page = self._object("GET", f"/api/v1/{name}", params=query)
            yield from page["items"]
            if not page.get("next"):
                return
            query = {**query, "cursor": page["next"]}
