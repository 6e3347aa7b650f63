"""``python -m ticket_api``: tokens and WeChat users of the API database.

    python -m ticket_api tokens issue --role exit_gate --tenant P-001 --subject gate-1 [--days 365]
    python -m ticket_api tokens revoke <token-id>
    python -m ticket_api tokens list [--active]
    python -m ticket_api users bind-wechat --openid OPENID --role contractor --tenant ORG-001 [--name N]
    python -m ticket_api keys generate --out /etc/ticket-api/qr-issuer.pem
    python -m ticket_api notify        # the notifier: follow the chain, send notifications (one per deployment)

The database is ``--database-url`` or ``TICKET_API_DATABASE_URL`` (default
``sqlite:///var/ticket_api.sqlite``).  A token's secret is printed once, by
``issue``; nothing else ever prints it.  Errors: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from ledger.errors import LedgerError
from ledger.store.keyfiles import write_private_key
from ticket_api.config import load_config
from ticket_api.db import make_engine
from ticket_api.errors import ApiError
from ticket_api.tokens import ROLES, TokenStore


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ticket_api", description=__doc__.split("\n")[0])
    p.add_argument("--database-url", help="API database (default: TICKET_API_DATABASE_URL or sqlite file)")
    sub = p.add_subparsers(dest="area", required=True)

    tokens = sub.add_parser("tokens", help="bearer tokens for staff and gate devices").add_subparsers(
        dest="command", required=True
    )
    issue = tokens.add_parser("issue", help="issue a token and print it once")
    issue.add_argument("--role", required=True, choices=sorted(ROLES))
    issue.add_argument("--tenant", required=True, help="org / site / department the role acts for")
    issue.add_argument("--subject", required=True, help="who or what holds it (gate-1, user name)")
    issue.add_argument("--days", type=float, default=365.0, help="lifetime in days (default 365)")
    issue.add_argument("--expires-at", help="ISO 8601 expiry instead of --days (naive = +08:00)")
    issue.add_argument("--json", action="store_true", help="print a JSON object instead of the bare token")
    revoke = tokens.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id")
    listing = tokens.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--active", action="store_true", help="hide revoked tokens")
    listing.add_argument("--json", action="store_true")

    users = sub.add_parser("users", help="people who log in with WeChat").add_subparsers(
        dest="command", required=True
    )
    bind = users.add_parser("bind-wechat", help="map a WeChat openid to a role and tenant")
    bind.add_argument("--openid", required=True)
    bind.add_argument("--role", required=True, choices=sorted(ROLES))
    bind.add_argument("--tenant", required=True)
    bind.add_argument("--name", default="")
    unbind = users.add_parser("unbind-wechat", help="remove a WeChat openid")
    unbind.add_argument("--openid", required=True)

    keys = sub.add_parser("keys", help="QR issuer keys").add_subparsers(dest="command", required=True)
    gen = keys.add_parser("generate", help="write a new Ed25519 issuer key (PEM, mode 0600)")
    gen.add_argument("--out", required=True)

    sub.add_parser("notify", help="follow the chain and send notifications (run exactly one per deployment)")
    return p


def _store(url: str | None) -> TokenStore:
    cfg = load_config({"DATABASE_URL": url} if url else None)
    return TokenStore(make_engine(str(cfg["DATABASE_URL"])))


def _expiry(args: argparse.Namespace) -> datetime | None:
    if not args.expires_at:
        return None
    t = datetime.fromisoformat(args.expires_at)
    return t.replace(tzinfo=CHINA_TZ) if t.tzinfo is None else t


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.area == "keys":
        out = Path(args.out)
        if out.exists():
            raise FileExistsError(f"{out} exists; refusing to overwrite a key")
        key = PrivateKey.generate()
        write_private_key(key, out)
        print(json.dumps({"key_id": key.key_id, "file": str(out), "public_key_pem": key.public_key.to_pem()}))
        return 0
    if args.area == "notify":
        from ticket_api.notify.runner import main as notify_main

        return notify_main(args.database_url)
    store = _store(args.database_url)
    if args.area == "tokens" and args.command == "issue":
        issued = store.issue(
            role=args.role,
            tenant=args.tenant,
            subject=args.subject,
            ttl=timedelta(days=args.days),
            expires_at=_expiry(args),
        )
        if args.json:
            print(
                json.dumps(
                    {
                        "token": issued.token,
                        "id": issued.id,
                        "role": issued.role,
                        "tenant": issued.tenant,
                        "subject": issued.subject,
                        "expires_at": issued.expires_at.isoformat(),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            print(issued.token)
            print(f"id {issued.id} expires {issued.expires_at.isoformat()}", file=sys.stderr)
        return 0
    if args.area == "tokens" and args.command == "revoke":
        if not store.revoke(args.token_id):
            raise LookupError(f"no token with id {args.token_id}")
        print(f"revoked {args.token_id}")
        return 0
    if args.area == "tokens" and args.command == "list":
        rows = store.list(include_revoked=not args.active)
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "id": r.id,
                            "role": r.role,
                            "tenant": r.tenant,
                            "subject": r.subject,
                            "created_at": r.created_at.isoformat(),
                            "expires_at": r.expires_at.isoformat(),
                            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
                            "source": r.source,
                        }
                        for r in rows
                    ],
                    ensure_ascii=False,
                )
            )
        else:
            for r in rows:
                state = "revoked" if r.revoked_at else "active"
                print(f"{r.id}\t{r.role}\t{r.tenant}\t{r.subject}\t{r.expires_at.isoformat()}\t{state}")
        return 0
    if args.area == "users" and args.command == "bind-wechat":
        store.bind_wechat(args.openid, role=args.role, tenant=args.tenant, name=args.name)
        print(f"bound {args.openid} as {args.role} of {args.tenant}")
        return 0
    if args.area == "users" and args.command == "unbind-wechat":
        if not store.unbind_wechat(args.openid):
            raise LookupError(f"no WeChat user {args.openid}")
        print(f"unbound {args.openid}")
        return 0
    raise AssertionError("unreachable")  # pragma: no cover


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv)
    except ApiError as exc:
        print(f"error: {exc.detail or exc.reason}", file=sys.stderr)
    except (LedgerError, LookupError, FileExistsError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except Exception as exc:  # one clear line, no traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 2
