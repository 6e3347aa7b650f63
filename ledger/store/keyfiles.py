"""Key, card and consortium files on disk: private keys as PEM (owner-only), cards and genesis documents as JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ledger.core.card import MemberCard
from ledger.core.consortium import Consortium
from ledger.core.crypto import PrivateKey
from ledger.core.genesis import Genesis
from ledger.errors import ConsortiumError, EncodingError, LedgerError


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


def create_private_key(key: PrivateKey, path: str | Path) -> None:
    """Write a new key file (0600); :class:`ConsortiumError` if the file exists (a key is never replaced)."""
    try:
        fd = os.open(Path(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConsortiumError(f"{path} exists: a member key is never overwritten (move it away first)") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(key.to_pem())


def write_keys(keys: Mapping[str, PrivateKey], keys_dir: str | Path) -> None:
    """``NAME.pem`` for every member key, in ``keys_dir`` (created)."""
    d = Path(keys_dir)
    d.mkdir(parents=True, exist_ok=True)
    for name, key in keys.items():
        write_private_key(key, d / f"{name}.pem")


def read_json(path: str | Path, what: str, *, error: type[LedgerError] = ConsortiumError) -> Any:
    """The JSON document in the ``what`` file at ``path`` (a genesis, a card, parameters, a policy); ``error``
    (default :class:`ConsortiumError`) naming the file when it cannot be read or is not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read the {what} file {path}: {exc.strerror}") from exc
    except (ValueError, EncodingError) as exc:
        raise error(f"the {what} file {path} is not JSON: {exc}") from exc


def _read_json(path: str | Path, what: str) -> dict[str, Any]:
    doc = read_json(path, what)
    if not isinstance(doc, dict):
        raise ConsortiumError(f"{what} file {path} must hold a JSON object")
    return doc


def _write_json(doc: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def read_consortium(path: str | Path) -> Consortium:
    """The consortium (genesis) document in a JSON file, complete: every card self-signed and every founder's
    signature present and verifying (:meth:`Genesis.check`); ``ConsortiumError`` (or its ``card_invalid``,
    ``genesis_unsigned``, ``genesis_bad_signature``) otherwise.  An older (v1) document is read as it is."""
    return read_genesis(path).check()


def read_genesis(path: str | Path) -> Genesis:
    """A genesis being signed (founders' signatures not checked; the cards are)."""
    return Genesis.from_dict(_read_json(path, "consortium"))


def write_genesis(genesis: Genesis, path: str | Path) -> None:
    _write_json(genesis.to_dict(), path)


def read_card(path: str | Path) -> MemberCard:
    """A member card (its self-signature checked)."""
    return MemberCard.from_dict(_read_json(path, "member card"))


def write_card(card: MemberCard, path: str | Path) -> None:
    _write_json(card.to_dict(), path)


def write_consortium(consortium: Consortium, path: str | Path) -> None:
    """The consortium document as indented UTF-8 JSON (a v2 one without founders' signatures: use
    :func:`write_genesis` for those)."""
    _write_json(consortium.to_dict(), path)
