"""The import contract that keeps the layers: read from the sources with ``ast``, nothing imported.

- The pure core (``ledger.core``, the e-ticket rules ``ledger.eticket``, the QR format ``ledger.qrticket``)
  does no I/O: no database, HTTP, etcd, drawing, files, processes, sockets, clock or ambient randomness
  (``secrets`` only where keys and nonces are made, never in validation).
- ``ledger`` imports none of the packages built on it; ``miniprogram_stub`` (the client) not the server;
  ``consortium_nodes`` not the API.
- Product code imports no testing module and no tool; tools stay out of the wheel.
- No product module is over 500 lines.
"""

from __future__ import annotations

import ast
import configparser
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("ledger", "consortium_nodes", "ticket_api", "miniprogram_stub")
PURE = ("ledger.core", "ledger.eticket", "ledger.qrticket", "ledger.reasons")
#: Standard-library and third-party modules the pure core may use (pure computation only).
PURE_ALLOWED = {
    "__future__", "abc", "array", "base64", "binascii", "bisect", "collections", "csv", "dataclasses", "datetime",
    "decimal", "enum", "functools", "hashlib", "heapq", "hmac", "io", "itertools", "json", "math", "operator",
    "re", "string", "struct", "types", "typing", "unicodedata", "zlib",
    "cryptography", "nacl", "rfc8785",
}
#: Where the pure core may draw randomness: making keys and transaction nonces, not validating.
RANDOMNESS_ALLOWED = {"ledger.core.crypto": {"secrets"}, "ledger.core.transaction": {"secrets"}}
#: Calls that read the clock or touch files, wherever they are spelt in the pure core.
IMPURE_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
                ("time", "time"), ("time", "monotonic"), ("time", "sleep")}


def _modules(package: str) -> Iterator[tuple[str, Path]]:
    base = ROOT.joinpath(*package.split("."))
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        yield ".".join(parts), path


def _imports(path: Path, module: str) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports (absolute names), with the line."""
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield name, node.lineno
            for alias in node.names:  # ``from ledger import testing`` imports a module too
                yield f"{name}.{alias.name}", node.lineno


def _is_testing(module: str) -> bool:
    return module.split(".")[-1] == "testing"


def _under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _product_modules() -> list[tuple[str, Path]]:
    return [m for p in PRODUCT for m in _modules(p) if "migrations" not in m[0]]


def test_pure_core_does_no_io() -> None:
    """The core, the e-ticket rules and the QR format import only pure modules and call no clock or open()."""
    bad = []
    for package in PURE:
        for module, path in _modules(package):
            if _is_testing(module):
                continue
            for name, line in _imports(path, module):
                top = name.split(".")[0]
                if top in PRODUCT:
                    if name != "ledger" and not _under(name, "ledger.errors", *PURE):
                        bad.append(f"{module}:{line} imports {name}")
                    continue
                if top in PURE_ALLOWED or top in RANDOMNESS_ALLOWED.get(module, set()):
                    continue
                if name.rpartition(".")[0] in PURE_ALLOWED | {""} and top in PURE_ALLOWED:
                    continue
                bad.append(f"{module}:{line} imports {name}")
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    f = node.func
                    if isinstance(f, ast.Name) and f.id == "open":
                        bad.append(f"{module}:{node.lineno} calls open()")
                    if (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                            and (f.value.id, f.attr) in IMPURE_CALLS):
                        bad.append(f"{module}:{node.lineno} calls {f.value.id}.{f.attr}()")
    assert not bad, "the pure core does I/O:\n" + "\n".join(bad)


@pytest.mark.parametrize(("package", "forbidden"), [
    ("ledger", ("consortium_nodes", "ticket_api", "miniprogram_stub", "tools")),
    ("consortium_nodes", ("ticket_api", "miniprogram_stub", "tools")),
    ("miniprogram_stub", ("ticket_api", "consortium_nodes", "tools")),
    ("ticket_api", ("miniprogram_stub", "tools")),
])
def test_layers_import_downwards_only(package: str, forbidden: tuple[str, ...]) -> None:
    """A package imports only the layers below it (the client library never the server)."""
    bad = [f"{module}:{line} imports {name}"
           for module, path in _modules(package) for name, line in _imports(path, module)
           if _under(name, *forbidden)]
    assert not bad, "\n".join(bad)


def test_product_imports_no_testing_module() -> None:
    """Product code never imports a testing module, pytest or hypothesis (testing modules may import product)."""
    bad = []
    for module, path in _product_modules():
        if _is_testing(module):
            continue
        for name, line in _imports(path, module):
            if _is_testing(name) or name.split(".")[0] in {"pytest", "hypothesis"}:
                bad.append(f"{module}:{line} imports {name}")
    assert not bad, "\n".join(bad)


def test_tools_are_not_shipped() -> None:
    """The wheel holds the four product packages only: tools and tests stay in the repository."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    include = cfg["options.packages.find"]["include"].split()
    assert include and all(_under(p.rstrip(".*"), *PRODUCT) for p in include), include


def test_no_product_module_over_500_lines() -> None:
    """One concept per module: none of the product's modules is longer than 500 lines."""
    long = {m: n for m, p in _product_modules() if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert not long, long
