"""ledger.reasons: the one registry of reason codes (HTTP status, Chinese and English message per code).

The sources of the rules (``ledger``), the nodes (``consortium_nodes``) and the API (``ticket_api``)
are scanned with ``ast`` for every reason code they can answer with, and each must be in the
registry; no package may keep a second table of statuses or texts.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import reasons
from ledger.eticket import CODES, MESSAGES, describe
from ledger.eticket.errors import message as outcome_message

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("ledger", "consortium_nodes", "ticket_api")
CODE_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
CJK_RE = re.compile(r"[\u4e00-\u9fff]")

#: Callables taking a reason code as a positional argument, and its index.
CODE_ARG = {
    "Refusal": 0,  # ledger.eticket.errors.Refusal(code, detail)
    "GateRefusal": 0,  # ledger.qrticket.gatecheck.GateRefusal(code, detail)
    "error_response": 0,  # ticket_api.errors.error_response(reason, status)
    "status_for": 0,  # ticket_api.errors.status_for(reason)
    "message": 0,  # ticket_api.i18n.message(reason) / ledger.eticket.errors.message(code)
    "need": 1,  # ledger.eticket.params.need(record, code, detail)
    "require": 1,  # ticket_api.adapter.gateway.Gateway.require(query, missing_code, ...)
}
#: Of those, the ones that are methods (a bare ``require(...)`` is the API's role decorator).
METHODS_ONLY = {"require"}
#: Names bound to codes (class attributes ``reason = "..."``, locals ``reason = a if b else c``).
CODE_NAMES = {"reason", "code"}
#: Module tables whose values are codes (``_STATE_CODES``, ``_HTTP_REASON``, ``SIGNATURE_CODES``).
TABLE_SUFFIXES = ("_CODES", "_REASON")
#: Codes that only exist at run time, out of reach of the scan: the API passes a ticket's state on as
#: the reason when its QR code is asked for (ticket_api/adapter/tickets.py ``ticket_qr``).
RUNTIME_CODES = {"voided", "expired"}


def _sources() -> Iterator[tuple[Path, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts or path == ROOT / "ledger" / "reasons.py":
                continue
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _strings(node: ast.AST | None) -> set[str]:
    """The string constants a code expression can take (a constant, either branch of ``a if c else b``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _strings(node.body) | _strings(node.orelse)
    return set()


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


class _Scan(ast.NodeVisitor):
    """Collects the reason codes one module can raise or answer with."""

    def __init__(self, module: ast.Module) -> None:
        self.module = module
        self.codes: set[str] = set()
        self.function: ast.FunctionDef | ast.AsyncFunctionDef | None = None

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.function = self.function, node
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def _targets(self, node: ast.Assign | ast.AnnAssign) -> list[str]:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else "" for t in targets]

    def _assign(self, node: ast.Assign | ast.AnnAssign) -> None:
        for name in self._targets(node):
            if name in CODE_NAMES:
                self.codes |= _strings(node.value)
            elif name.endswith(TABLE_SUFFIXES) and node.value is not None:
                value = node.value
                if isinstance(value, ast.Dict):
                    self.codes |= {s for v in value.values for s in _strings(v)}
                else:  # frozenset({...}), a set, tuple or list literal
                    self.codes |= {s for c in ast.walk(value) for s in _strings(c)}
        self.generic_visit(node)

    visit_Assign = _assign
    visit_AnnAssign = _assign

    def visit_Dict(self, node: ast.Dict) -> None:
        # JSON answers built in place: {"reason": "not_found"}, {"code": "internal", ...}
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value in CODE_NAMES:
                self.codes |= _strings(value)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        for kw in node.keywords:
            if kw.arg == "reason":
                self.codes |= _strings(kw.value)
        callee = _callee(node)
        index = CODE_ARG.get(callee)
        if callee in METHODS_ONLY and not isinstance(node.func, ast.Attribute):
            index = None
        if index is not None and len(node.args) > index:
            self.codes |= self._code_arg(node.args[index])
        self.generic_visit(node)

    def _code_arg(self, arg: ast.expr) -> set[str]:
        found = _strings(arg)
        if isinstance(arg, ast.JoinedStr):
            found |= self._expand_fstring(arg)
        elif isinstance(arg, ast.Subscript):
            found |= self._table_column(arg)
        return found

    def _expand_fstring(self, arg: ast.JoinedStr) -> set[str]:
        """``f"unknown_{kind}"`` in ``def _existing(w, kind, ...)``: one code per constant ``kind``
        the module's calls of ``_existing`` pass."""
        holes = [v for v in arg.values if isinstance(v, ast.FormattedValue)]
        if self.function is None or len(holes) != 1 or not isinstance(holes[0].value, ast.Name):
            return set()
        param = holes[0].value.id
        names = [a.arg for a in self.function.args.args]
        if param not in names:
            return set()
        position, fn = names.index(param), self.function.name
        values: set[str] = set()
        for call in ast.walk(self.module):
            if isinstance(call, ast.Call) and _callee(call) == fn:
                if len(call.args) > position:
                    values |= _strings(call.args[position])
                values |= {s for kw in call.keywords if kw.arg == param for s in _strings(kw.value)}
        out: set[str] = set()
        for value in values:
            parts = [
                value if isinstance(v, ast.FormattedValue) else str(v.value) if isinstance(v, ast.Constant) else ""
                for v in arg.values
            ]
            out.add("".join(parts))
        return out

    def _table_column(self, arg: ast.Subscript) -> set[str]:
        """``table[1]`` where ``table = {k: (kind, code), ...}[key]``: column 1 of the literal table."""
        if not (isinstance(arg.value, ast.Name) and isinstance(arg.slice, ast.Constant)):
            return set()
        column, name = arg.slice.value, arg.value.id
        out: set[str] = set()
        for node in ast.walk(self.function or self.module):
            if not (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name
                                                         for t in node.targets)):
                continue
            table = node.value.value if isinstance(node.value, ast.Subscript) else node.value
            if isinstance(table, ast.Dict):
                for row in table.values:
                    if isinstance(row, ast.Tuple) and isinstance(column, int) and len(row.elts) > column:
                        out |= _strings(row.elts[column])
        return out


def scanned_codes() -> dict[str, set[str]]:
    """``code -> {file, ...}`` of every reason code found in the sources of the three packages."""
    found: dict[str, set[str]] = {}
    for path, module in _sources():
        scan = _Scan(module)
        scan.visit(module)
        for code in scan.codes:
            if CODE_RE.match(code):
                found.setdefault(code, set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_scan_sees_every_way_a_reason_is_given() -> None:
    """The scan is not vacuous: it finds codes of each kind of site in each package (class attribute,
    ``reason=`` keyword, ``Refusal``/``GateRefusal``/``need`` argument, f-string over kinds, literal
    table column, state table, JSON answer literal)."""
    found = scanned_codes()
    expected = {
        "bad_signature": "ledger/errors.py",  # class attribute
        "not_ready": "consortium_nodes/errors.py",  # class attribute
        "checkpoint_mismatch": "consortium_nodes/checkpoints.py",  # reason= keyword
        "token_revoked": "ticket_api/tokens.py",  # reason= keyword
        "over_capacity": "ledger/eticket/rules_ticket.py",  # Refusal("...")
        "wrong_project": "ledger/qrticket/gatecheck.py",  # reason = a if b else c
        "unknown_site": "ledger/eticket/rules_ticket.py",  # need(..., "...")
        "unknown_project": "ledger/eticket/rules_registry.py",  # need(..., f"unknown_{kind}")
        "unknown_driver": "ledger/eticket/rules_violation.py",  # need(..., table[1])
        "already_departed": "ledger/eticket/rules_ticket.py",  # _STATE_CODES values
        "internal": "consortium_nodes/http.py",  # {"code": "internal"} answer
        "database_busy": "ticket_api/errors.py",  # error_response("...")
    }
    for code, path in expected.items():
        assert path in found.get(code, set()), (code, path)
    for package in PACKAGES:
        assert any(p.startswith(package + "/") for paths in found.values() for p in paths), package


def test_every_code_the_rules_nodes_and_api_can_give_is_registered() -> None:
    """Every reason code raised or answered in ledger/, consortium_nodes/ and ticket_api/ (plus the
    ones only known at run time) has a registry entry, so a status and both messages."""
    found = scanned_codes()
    missing = {code: sorted(paths) for code, paths in found.items() if code not in reasons.REASONS}
    assert missing == {}
    assert RUNTIME_CODES - set(reasons.REASONS) == set()


def test_every_rule_code_is_registered() -> None:
    """The e-ticket rules' catalogue (``ledger.eticket.CODES``) is a view of the registry: same texts."""
    assert set(CODES) <= set(reasons.REASONS)
    for code in CODES:
        entry = reasons.REASONS[code]
        assert dict(MESSAGES[code]) == {"zh": entry.zh, "en": entry.en}
        assert describe(code, "zh") == entry.zh and describe(code, "en-US") == entry.en
    assert outcome_message("over_capacity", "volume=9") == reasons.REASONS["over_capacity"].zh + "：volume=9"


@pytest.mark.parametrize("code", sorted(reasons.REASONS))
def test_each_entry_has_a_status_and_both_texts(code: str) -> None:
    """Each entry: its own code as key, an HTTP status (an error status but for ``valid``), a
    non-empty Chinese text with CJK characters, a non-empty ASCII English text, neither the bare code."""
    entry = reasons.REASONS[code]
    assert entry.code == code and CODE_RE.match(code)
    assert (entry.status == 200) if code == "valid" else (400 <= entry.status <= 599)
    assert entry.zh.strip() and CJK_RE.search(entry.zh)
    assert entry.en.strip() and entry.en.isascii() and not CJK_RE.search(entry.en)
    assert code not in (entry.zh, entry.en) and entry.zh != entry.en


def test_entries_are_frozen() -> None:
    """An entry cannot be changed in place, nor the registry's tables."""
    entry = reasons.REASONS["malformed"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.status = 500  # type: ignore[misc]
    with pytest.raises(TypeError):
        reasons.REASONS["malformed"] = entry  # type: ignore[index]
    with pytest.raises(TypeError):
        reasons.STATUS["malformed"] = 500  # type: ignore[index]


def test_lookups() -> None:
    """``status_of`` gives the registry status or the caller's default; ``message``
    picks English for any "en…" language, else Chinese, and the default (else the code) when unknown."""
    assert reasons.status_of("unknown_ticket") == 404
    assert reasons.status_of("no_such_code") == 422 and reasons.status_of("no_such_code", 400) == 400
    assert reasons.status_of("not_ready") == 503
    assert reasons.message("wrong_truck") == "车牌与电子渣票不符"
    assert reasons.message("wrong_truck", "en-GB") == "The plate does not match the e-ticket"
    assert reasons.message("wrong_truck", "fr") == "车牌与电子渣票不符"
    assert reasons.message("no_such_code", "en") == "no_such_code"
    assert reasons.message("no_such_code", "en", default="fallback") == "fallback"
    assert reasons.get("no_such_code") is None and reasons.get("forbidden") is reasons.REASONS["forbidden"]


def test_bad_signature_is_403_at_the_api_and_on_a_node() -> None:
    """One status per code: a node and the API both answer 403 for a bad signature (the node used to
    answer 400 while the API answered 403)."""
    assert reasons.status_of("bad_signature") == 403
    assert not hasattr(reasons, "node_status_of")


def test_the_api_answers_from_the_registry() -> None:
    """The API's status table and messages are the registry's (no copy of their own)."""
    from ticket_api import errors, i18n

    assert errors.REASON_STATUS is reasons.STATUS
    for code, entry in reasons.REASONS.items():
        assert errors.status_for(code) == entry.status
        assert (i18n.message(code, "zh"), i18n.message(code, "en")) == (entry.zh, entry.en)


def _is_code_table(node: ast.Dict) -> bool:
    keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    if sum(k in reasons.REASONS for k in keys) < 3:
        return False

    def text_or_status(v: ast.expr) -> bool:
        if isinstance(v, ast.Constant):
            return isinstance(v.value, int) or (isinstance(v.value, str) and bool(CJK_RE.search(v.value)))
        return isinstance(v, ast.Dict | ast.Tuple)

    return all(text_or_status(v) for v in node.values)


def test_no_second_table_of_statuses_or_texts() -> None:
    """No module of the three packages keeps its own literal table mapping reason codes to HTTP
    statuses or messages (as ``REASON_STATUS``, ``i18n.MESSAGES`` and the node's ``_STATUS`` did)."""
    tables = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, module in _sources()
        for node in ast.walk(module)
        if isinstance(node, ast.Dict) and _is_code_table(node)
    ]
    assert tables == []
