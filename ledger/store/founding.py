"""A member's key and card on its own machine (``ledger keygen``), and a consortium founded the same way.

:func:`keygen` is what each department runs: it writes the private key (0600, never overwritten) and the
self-signed member card.  :func:`found_consortium` is the demo's and the local launchers' one-step path
through the same code: each member makes its own key and card, the cards are assembled into a genesis and
every member signs it with its own key; only then is ``consortium.json`` written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.core.card import MemberCard, make_card
from ledger.core.consortium import Consortium, MemberSpec
from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.core.genesis import assemble
from ledger.core.validity import Validity
from ledger.store.keyfiles import create_private_key, read_private_key, write_card, write_genesis

#: validity of a key ``ledger keygen`` makes unless told (days)
KEY_DAYS = 365


def default_validity(now: datetime, days: int = KEY_DAYS) -> Validity:
    """From an hour before ``now`` (clocks differ a little) for ``days`` days, in +08:00, to the second."""
    start = now.astimezone(CHINA_TZ).replace(microsecond=0) - timedelta(hours=1)
    return Validity(not_before=start.isoformat(), not_after=(start + timedelta(days=days)).isoformat())


@dataclass(frozen=True)
class Made:
    """What :func:`keygen` wrote."""

    key_path: Path
    card_path: Path
    card: MemberCard


def keygen(*, name: str, org: str, roles: Iterable[str], key_path: str | Path, card_path: str | Path,
           validity: Validity) -> Made:
    """Make a fresh key, write it (0600; an existing file is refused) and its self-signed card."""
    key = PrivateKey.generate()
    card = make_card(key, name=name, org=org, roles=roles, validity=validity)  # checks before any file is made
    kp, cp = Path(key_path), Path(card_path)
    kp.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    cp.parent.mkdir(parents=True, exist_ok=True)
    create_private_key(key, kp)
    write_card(card, cp)
    return Made(kp, cp, card)


def found_consortium(root: str | Path, members: Sequence[MemberSpec], *, name: str,
                     parameters: Mapping[str, Any] | None = None, now: datetime,
                     validity: Mapping[str, Validity] | None = None) -> Consortium:
    """Every member makes its key (``ROOT/keys/NAME.pem``) and card (``ROOT/cards/NAME.json``), the genesis
    is assembled from the cards and signed by every member in turn (``ROOT/consortium.json``).
    ``validity`` overrides a member's period (default :func:`default_validity`)."""
    d = Path(root)
    made = [keygen(name=m.name, org=m.org, roles=m.roles, key_path=d / "keys" / f"{m.name}.pem",
                   card_path=d / "cards" / f"{m.name}.json",
                   validity=(validity or {}).get(m.name) or default_validity(now))
            for m in members]
    genesis = assemble([m.card for m in made], name=name, parameters=parameters)
    for m in made:
        genesis = genesis.sign(read_private_key(m.key_path))
    write_genesis(genesis, d / "consortium.json")
    return genesis.check()
