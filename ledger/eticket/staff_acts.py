"""Enforcement acts signed by the officer's department (:mod:`ledger.eticket.acts`): violation steps and
penalties.  The payload builders are shared by the API, which submits them, and the officer's desk, which
signs them, so both put the same bytes under the signature (pure: no I/O, no clock)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ledger.core.crypto import PrivateKey
from ledger.eticket.acts import ACT_FIELD, act_signature

#: the text field each violation step carries
STEP_FIELDS: Mapping[str, str] = {"confirm": "note", "dismiss": "note", "dispatch": "centre", "resolve": "result"}


def step_payload(step: str, violation_id: str, text: str | None, time: str) -> dict[str, Any]:
    """The ``violation.<step>`` payload (confirm, dismiss, dispatch, resolve) an enforcement officer signs and
    the API submits; ``text`` is the step's note, centre or result (:data:`STEP_FIELDS`)."""
    out: dict[str, Any] = {"violation_id": violation_id}
    if text is not None:
        out[STEP_FIELDS[step]] = text
    out["time"] = time
    return out


def penalty_payload(penalty_id: str, target_kind: str, target_id: str, amount_yuan: str, time: str, *,
                    violation_ids: Sequence[str] = (), measures: Sequence[Mapping[str, Any]] = (),
                    credit_points: int | None = None, decision_no: str | None = None) -> dict[str, Any]:
    """The ``penalty.record`` payload an enforcement officer signs and the API submits (``amount_yuan`` a
    decimal string; ``measures`` ``{"kind", "days"?}``)."""
    out: dict[str, Any] = {"penalty_id": penalty_id, "target_kind": target_kind, "target_id": target_id,
                           "violation_ids": list(violation_ids), "amount_yuan": str(amount_yuan),
                           "measures": [{k: v for k, v in m.items() if v is not None} for m in measures]}
    if credit_points is not None:
        out["credit_points"] = credit_points
    if decision_no is not None:
        out["decision_no"] = decision_no
    out["time"] = time
    return out


def step_body(key: PrivateKey, step: str, violation_id: str, text: str | None, time: str) -> dict[str, Any]:
    """The body of ``POST /api/v1/violations/<id>/<step>`` signed by the enforcement department's ``key`` at
    ``time`` (ISO 8601 +08:00, whole seconds)."""
    body: dict[str, Any] = {"time": time, ACT_FIELD: act_signature(key, f"violation.{step}",
                                                                   step_payload(step, violation_id, text, time))}
    if text is not None:
        body[STEP_FIELDS[step]] = text
    return body


def penalty_body(key: PrivateKey, fields: Mapping[str, Any], time: str) -> dict[str, Any]:
    """The body of ``POST /api/v1/penalties`` signed by the enforcement department's ``key`` at ``time``:
    ``fields`` those of the request (``penalty_id``, ``target_kind``, ``target_id``, ``amount_yuan`` and the
    optional ``violation_ids``, ``measures``, ``credit_points``, ``decision_no``)."""
    payload = penalty_payload(str(fields["penalty_id"]), str(fields["target_kind"]), str(fields["target_id"]),
                              str(fields["amount_yuan"]), time,
                              violation_ids=list(fields.get("violation_ids") or ()),
                              measures=list(fields.get("measures") or ()),
                              credit_points=fields.get("credit_points"), decision_no=fields.get("decision_no"))
    body = {k: v for k, v in fields.items() if v is not None}
    return {**body, "amount_yuan": payload["amount_yuan"], "time": time,
            ACT_FIELD: act_signature(key, "penalty.record", payload)}
