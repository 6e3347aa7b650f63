"""``python -m miniprogram_stub``: the fake WeChat server and the demo story.

    python -m miniprogram_stub wechat --port 8081 [--appid wx-test-appid --secret wx-test-secret]
    python -m miniprogram_stub demo --api http://127.0.0.1:8000 --contractor-code test-<openid> \\
        --approver-token T1 --approver-token T2 ... --exit-gate-token T --disposal-gate-token T \\
        --terminal-token T --regulator-token T --project P-001 --site S-003 --plate 渝A12345
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta

from ticket_api.qrticket import CHINA_TZ

from .client import ApiCallError, ApiClient
from .wechat import DEFAULT_APPID, DEFAULT_SECRET, serve


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m miniprogram_stub")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("wechat", help="run the fake WeChat code2session server")
    w.add_argument("--host", default="127.0.0.1")
    w.add_argument("--port", type=int, default=8081)
    w.add_argument("--appid", default=DEFAULT_APPID)
    w.add_argument("--secret", default=DEFAULT_SECRET)
    w.add_argument("--reusable-codes", action="store_true", help="codes may be used more than once")
    d = sub.add_parser("demo", help="play the whole story against a running API")
    d.add_argument("--api", default="http://127.0.0.1:8000")
    d.add_argument("--contractor-code", required=True, help="a WeChat login code, e.g. test-<openid>")
    d.add_argument("--approver-token", action="append", default=[], help="one per department")
    d.add_argument("--exit-gate-token", required=True)
    d.add_argument("--disposal-gate-token", required=True)
    d.add_argument("--terminal-token", required=True)
    d.add_argument("--regulator-token", required=True)
    d.add_argument("--project", default="P-001")
    d.add_argument("--site", default="S-003")
    d.add_argument("--plate", default="渝A12345")
    d.add_argument("--language", default="zh")
    return p


def demo(args: argparse.Namespace) -> int:
    def step(title: str) -> None:
        print(f"== {title}")

    lang = args.language
    contractor = ApiClient(args.api, language=lang)
    step("health")
    print(contractor.health())
    step("published QR keys")
    print([k["key_id"] for k in contractor.keys()["keys"]])
    step("contractor logs in with WeChat")
    print({k: v for k, v in contractor.login_wechat(args.contractor_code).items() if k != "token"})
    now = datetime.now(CHINA_TZ).replace(microsecond=0)
    step("apply for a permit")
    permit = contractor.create_permit(
        project_id=args.project,
        volume_m3="30000",
        disposal_site_ids=[args.site],
        truck_plates=[args.plate],
        valid_from=now,
        valid_to=now + timedelta(days=180),
    )
    print(permit)
    for token in args.approver_token:
        step("a department approves")
        print(ApiClient(args.api, token, language=lang).decide_permit(permit["id"], "approve", "同意"))
    step("issue a ticket")
    ticket = contractor.issue_ticket(
        permit_id=permit["id"], truck_plate=args.plate, disposal_site_id=args.site, volume_m3="16"
    )
    print(ticket)
    png = contractor.ticket_qr_png(ticket["id"])
    print(f"QR PNG {len(png)} bytes")
    step("site exit")
    print(
        ApiClient(args.api, args.exit_gate_token, language=lang).gate_exit(
            qr=ticket["qr"], plate=args.plate, covered=True
        )
    )
    step("GPS positions")
    terminal = ApiClient(args.api, args.terminal_token, language=lang)
    t0 = datetime.now(CHINA_TZ).replace(microsecond=0)
    print(
        terminal.report_positions(
            ticket["id"],
            [
                {
                    "at": (t0 + timedelta(seconds=30 * i)).isoformat(),
                    "lat": 29.709 - i * 0.002,
                    "lon": 106.52,
                    "speed_kmh": 35.0,
                }
                for i in range(5)
            ],
        )
    )
    step("disposal receipt")
    print(
        ApiClient(args.api, args.disposal_gate_token, language=lang).gate_disposal(
            qr=ticket["qr"], plate=args.plate, volume_m3="15.8"
        )
    )
    regulator = ApiClient(args.api, args.regulator_token, language=lang)
    step("history with proofs")
    print(regulator.ticket_history(ticket["id"]))
    step("audit")
    print(regulator.audit())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "wechat":
        print(f"fake WeChat code2session on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
        serve(args.host, args.port, appid=args.appid, secret=args.secret, reusable_codes=args.reusable_codes)
        return 0
    try:
        return demo(args)
    except ApiCallError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"error: cannot reach the API: {type(exc).__name__}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
