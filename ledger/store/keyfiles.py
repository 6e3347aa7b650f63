"""Key and consortium files on disk: private keys as PEM (owner-only), consortium documents as JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ledger.core.consortium import Consortium
from ledger.core.crypto import PrivateKey
from ledger.errors import ConsortiumError, EncodingError


def read_private_key(path: str | Path) -> PrivateKey:
    """The private key in a PEM file; ``ConsortiumError`` when it cannot be read or parsed."""
    try:
        return PrivateKey.from_pem(Path(path).read_bytes())
    except OSError as exc:
        raise ConsortiumError(f"cannot read key file {path}: {exc.strerror}") from exc


def write_private_key(key: PrivateKey, path: str | Path) -> None:
    """Write the PEM with owner-only permissions (0600), replacing the file."""
    fd = os.open(Path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.to_pem())


def write_keys(keys: Mapping[str, PrivateKey], keys_dir: str | Path) -> None:
    """``NAME.pem`` for every member key, in ``keys_dir`` (created)."""
    d = Path(keys_dir)
    d.mkdir(parents=True, exist_ok=True)
    for name, key in keys.items():
        write_private_key(key, d / f"{name}.pem")


def read_consortium(path: str | Path) -> Consortium:
    """The consortium document in a JSON file; ``ConsortiumError`` when unreadable or invalid."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConsortiumError(f"cannot read consortium file {path}: {exc.strerror}") from exc
    except (ValueError, EncodingError) as exc:
        raise ConsortiumError(f"consortium file {path} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConsortiumError(f"consortium file {path} must hold a JSON object")
    return Consortium.from_dict(doc)


def write_consortium(consortium: Consortium, path: str | Path) -> None:
    """The consortium document as indented UTF-8 JSON."""
    Path(path).write_text(json.dumps(consortium.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
