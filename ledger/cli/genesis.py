"""``ledger keygen`` and ``ledger genesis``: member-owned keys and a genesis co-signed by its founders.

On each department's own machine:

* ``ledger keygen --name zhujian --org 住房和城乡建设委员会 --roles node,approver --key zhujian.pem
  --card zhujian.json``: a fresh private key (0600, never overwritten, never printed) and the member card
  (name, organisation, roles, public key with its algorithm, key id, validity) signed by that key;

then, once the cards are gathered (they are public):

* ``ledger genesis assemble --name cq-muck --out genesis.json [--params P.json] [--policy Q.json] cards…``;
* ``ledger genesis sign genesis.json --key zhujian.pem`` by every founder in turn (adds its signature);
* ``ledger genesis check genesis.json``: exit 0 once every founder signed and every card holds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from ledger.core.encoding import CHINA_TZ
from ledger.core.genesis import assemble
from ledger.core.validity import Validity, expiring
from ledger.errors import ConsortiumError
from ledger.store.founding import KEY_DAYS, default_validity, keygen
from ledger.store.keyfiles import read_card, read_genesis, read_json, read_private_key, write_genesis

EXIT_OK = 0


def _json_file(path: str | None, what: str) -> Any:
    return None if path is None else read_json(path, what)


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def cmd_keygen(a: argparse.Namespace) -> int:
    now = dt.datetime.now(CHINA_TZ)
    if a.not_before or a.not_after:
        default = default_validity(now, a.days)
        validity = Validity(not_before=a.not_before or default.not_before, not_after=a.not_after or default.not_after)
    else:
        validity = default_validity(now, a.days)
    made = keygen(name=a.name, org=a.org or a.name, roles=[r for r in a.roles.split(",") if r],
                  key_path=a.key, card_path=a.card, validity=validity)
    _print({"member": made.card.name, "key_id": made.card.key_id, "key": str(made.key_path),
            "card": str(made.card_path), **validity.to_dict()})
    return EXIT_OK


def _summary(path: str) -> dict[str, Any]:
    g = read_genesis(path)
    return {"genesis": g.consortium.genesis_hash, "format": g.consortium.format,
            "founders": [m.name for m in g.consortium.members], "signed_by": g.signed_by(), "missing": g.missing(),
            "complete": not g.missing() or g.legacy,
            "keys_expiring": expiring(g.consortium.members, dt.datetime.now(CHINA_TZ))}


def cmd_assemble(a: argparse.Namespace) -> int:
    out = Path(a.out)
    if out.exists() and not a.force:
        raise ConsortiumError(f"{out} exists (use --force to replace it; every founder then signs again)")
    cards = [read_card(p) for p in a.cards]
    genesis = assemble(cards, name=a.name, origin=a.origin, parameters=_json_file(a.params, "parameters"),
                       policy=_json_file(a.policy, "policy"))
    write_genesis(genesis, out)
    _print(_summary(str(out)))
    return EXIT_OK


def cmd_sign(a: argparse.Namespace) -> int:
    genesis = read_genesis(a.genesis).sign(read_private_key(a.key))
    write_genesis(genesis, a.genesis)
    _print(_summary(a.genesis))
    return EXIT_OK


def cmd_check(a: argparse.Namespace) -> int:
    read_genesis(a.genesis).check()  # raises with the reason when incomplete or changed
    _print(_summary(a.genesis))
    return EXIT_OK


def register(sub: Any) -> None:
    k = sub.add_parser("keygen", help="a member's own key (0600) and its self-signed member card")
    k.add_argument("--name", required=True, help="the member's name (ASCII: chengguan, zhujian, …)")
    k.add_argument("--org", help="the organisation (default: the name)")
    k.add_argument("--roles", required=True, help="comma-separated: node, approver, gateway, regulator, …")
    k.add_argument("--key", required=True, help="where to write the private key (refused if it exists)")
    k.add_argument("--card", required=True, help="where to write the member card (public)")
    k.add_argument("--days", type=int, default=KEY_DAYS, help=f"validity in days (default {KEY_DAYS})")
    k.add_argument("--not-before", help="start of the validity, ISO 8601 with offset (default: an hour ago)")
    k.add_argument("--not-after", help="end of the validity, ISO 8601 with offset (default: --days later)")
    k.set_defaults(func=cmd_keygen)

    g = sub.add_parser("genesis", help="a genesis assembled from member cards and co-signed by the founders")
    gsub = g.add_subparsers(dest="action", required=True)
    asm = gsub.add_parser("assemble", help="the unsigned genesis from the founders' cards (in node order)")
    asm.add_argument("--name", required=True, help="the consortium's name")
    asm.add_argument("--origin", help="the checkpoint origin (default muck-ledger.example/NAME)")
    asm.add_argument("--params", help="JSON file with the parameters (default: the ledger's defaults)")
    asm.add_argument("--policy", help="JSON file with the policy (default: gateway, node and admin sign all)")
    asm.add_argument("--out", required=True)
    asm.add_argument("--force", action="store_true")
    asm.add_argument("cards", nargs="+", help="member card files")
    asm.set_defaults(func=cmd_assemble)
    sg = gsub.add_parser("sign", help="add this founder's signature to the genesis (in place)")
    sg.add_argument("genesis")
    sg.add_argument("--key", required=True, help="the founder's own private key")
    sg.set_defaults(func=cmd_sign)
    ck = gsub.add_parser("check", help="exit 0 once every founder signed and every card holds")
    ck.add_argument("genesis")
    ck.set_defaults(func=cmd_check)
