"""Schemathesis against ``/api/openapi.json`` of the real stack (4 ledger nodes, gunicorn, fake WeChat).

Every documented operation is fuzzed (valid and invalid requests) with a token of a role that may call it, and
read operations once more with a second staff token; every answer must be no 5xx and exactly as documented:
status code, content type and body schema (errors included: ``Error``, gate ``GateRefusal``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .serve_fixtures import Stack, stack  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow]

MAX_EXAMPLES = 10  # per operation and mode: the file stays within ~2 minutes on 2 cores
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Who calls what: the role a real client of the operation has (``approvers.<dept>`` for a department).
WRITERS: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/auth/wechat"): "contractor",
    ("POST", "/api/v1/permits"): "contractor",
    ("POST", "/api/v1/tickets"): "contractor",
    ("POST", "/api/v1/tickets/{ticket_id}/void"): "contractor",
    ("POST", "/api/v1/permits/{permit_id}/decisions"): "approvers.chengguan",
    ("POST", "/api/v1/permits/{permit_id}/revoke"): "operator",
    ("POST", "/api/v1/registry/{kind}"): "operator",
    ("POST", "/api/v1/violations"): "enforcement",
    ("POST", "/api/v1/violations/{violation_id}/{step}"): "enforcement",
    ("POST", "/api/v1/penalties"): "enforcement",
    ("POST", "/api/v1/gate/exit"): "exit_gate",
    ("POST", "/api/v1/gate/disposal"): "disposal_gate",
    ("POST", "/api/v1/gate/sync"): "exit_gate",
    ("POST", "/api/v1/trips/{ticket_id}/positions"): "truck_terminal",
    ("POST", "/api/v1/devices"): "operator",
    ("POST", "/api/v1/devices/revoke"): "operator",
    ("DELETE", "/api/v1/devices/{token_id}"): "operator",
    ("POST", "/api/v1/drivers/bind"): "company",
    ("POST", "/api/v1/drivers/unbind"): "company",
    ("POST", "/api/v1/cameras/sightings"): "camera",
    ("POST", "/api/v1/permits/{permit_id}/amendments"): "contractor",
    ("POST", "/api/v1/amendments/{amendment_id}/decisions"): "approvers.chengguan",
}
CONTRACTOR_READS = {"/api/v1/tickets/{ticket_id}/qr.png", "/api/v1/tickets/{ticket_id}/qr.svg"}
GATE_READS = {"/api/v1/gate/revocations"}
REGULATOR_READS = {"/api/v1/audit", "/api/v1/provenance/{kind}/{key}", "/api/v1/tickets/{ticket_id}/history"}


def roles_for(method: str, path: str) -> list[str]:
    """The tokens an operation is called with: its writer, or for reads the contractor/regulator and operator."""
    if method != "GET":
        return [WRITERS[(method, path)]]
    if path in CONTRACTOR_READS:
        return ["contractor"]
    if path in GATE_READS:
        return ["exit_gate", "operator"]
    if path in REGULATOR_READS:
        return ["regulator", "contractor"] if path.endswith("/history") else ["regulator"]
    return ["operator", "regulator"]


# Revokes the very token the other operations are called with (tests/functional/test_api_auth.py covers it).
# The event streams hold their connection for NOTIFY_STREAM_SECONDS / DASHBOARD_STREAM_SECONDS, past the deadline
# of one example (tests/functional/test_notifications.py and test_dashboard_browser.py cover them).
EXCLUDED = {("POST", "/api/v1/auth/logout"), ("GET", "/api/v1/notifications/stream"),
            ("GET", "/api/v1/dashboard/stream")}
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# Operations whose work grows with the chain: the audit verifies every node's chain end to end and compares
# them (seconds on a loaded machine); the deadline guards against a hang, not a speed (benchmarks measure that).
SLOW = {("GET", "/api/v1/audit"): timedelta(seconds=90)}


def fuzz(operation: Any, mode: GenerationMode, roles: list[str], stack: Stack,  # noqa: F811 - the fixture
         session: requests.Session) -> None:
    """One Hypothesis run: ``MAX_EXAMPLES`` cases of ``operation``, each sent with the token of every role."""
    slow = SLOW.get((operation.method.upper(), operation.path))
    timeout = slow.total_seconds() if slow else 30

    @settings(
        max_examples=MAX_EXAMPLES,
        # one request, maybe a ledger write (finality of 4 nodes)
        deadline=slow or timedelta(seconds=15),
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report the failure as found
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        for role in roles:
            case.call_and_validate(base_url=stack.api, session=session, headers=stack.headers(role),
                                   checks=CHECKS, timeout=timeout)

    run()


def test_openapi_conformance(stack: Stack) -> None:  # noqa: F811 - the fixture
    # Driven by hand rather than with ``schemathesis.pytest.from_fixture``: its lazy loader writes pytest
    # internals (``Function._nodeid``) this pytest does not have.  One Hypothesis run per operation and mode;
    # every failing operation is reported, not only the first.
    schema = schemathesis.openapi.from_url(f"{stack.api}/api/openapi.json")
    failures: list[str] = []
    ran: list[str] = []
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            method = operation.method.upper()
            if (method, operation.path) in EXCLUDED:
                continue
            roles = roles_for(method, operation.path)
            for mode in MODES:
                try:
                    fuzz(operation, mode, roles, stack, session)
                except Unsatisfiable:
                    # no parameters and no body (GET /api/health ...): there is nothing to make invalid
                    assert mode is GenerationMode.NEGATIVE, operation.label
                    continue
                except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is a base group
                    failures.append(f"{operation.label} ({mode.value}, {'/'.join(roles)}):\n{exc}")
                ran.append(f"{operation.label} {mode.value}")
    assert len(ran) >= 40, ran
    assert not failures, f"{len(failures)} failing runs:\n\n" + "\n\n".join(failures)
