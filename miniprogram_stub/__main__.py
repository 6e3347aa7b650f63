"""``python -m miniprogram_stub``: the fake WeChat server and the demo story.

    python -m miniprogram_stub wechat --port 8081 [--appid wx-test-appid --secret-file FILE]
    python -m miniprogram_stub demo --demo-file var/demo.json [--out DIR]
    python -m miniprogram_stub demo --api http://127.0.0.1:8000 --contractor-code test-<openid> \\
        --approver-token T1 --approver-token T2 ... --exit-gate-token T --disposal-gate-token T \\
        --terminal-token T --regulator-token T --project P-001 --site S-003 --plate 渝A12345
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from ledger.core.crypto import PrivateKey
from ledger.core.encoding import CHINA_TZ
from miniprogram_stub.client import ApiCallError, ApiClient
from miniprogram_stub.photos import tiny_png
from miniprogram_stub.wechat import DEFAULT_APPID, DEFAULT_SECRET, serve


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m miniprogram_stub")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("wechat", help="run the fake WeChat code2session server")
    w.add_argument("--host", default="127.0.0.1")
    w.add_argument("--port", type=int, default=8081)
    w.add_argument("--fd", type=int, default=None, help="serve on this inherited listening socket (a launcher's) "
                   "instead of binding --host/--port")
    w.add_argument("--appid", default=DEFAULT_APPID)
    w.add_argument("--secret-file", help="file holding the app secret: the secret itself, or a JSON object with "
                   "WECHAT_SECRET (default: $WECHAT_SECRET, else the test secret)")
    w.add_argument("--secret", default=None, help=argparse.SUPPRESS)  # visible in ps: use --secret-file
    w.add_argument("--reusable-codes", action="store_true", help="codes may be used more than once")
    d = sub.add_parser("demo", help="play the whole story against a running API")
    d.add_argument("--demo-file", help="var/demo.json written by scripts/serve (fills every option below)")
    d.add_argument("--api", default=None, help="default http://127.0.0.1:8000")
    d.add_argument("--contractor-code", help="a WeChat login code, e.g. test-<openid>")
    d.add_argument("--approver-token", action="append", default=[], help="one per department")
    d.add_argument("--approver-key", action="append", default=[],
                   help="each department's approver key file (PEM), in the order of --approver-token: the "
                        "department signs its decision itself (the consortium refuses an unsigned one)")
    d.add_argument("--exit-gate-token")
    d.add_argument("--disposal-gate-token")
    d.add_argument("--terminal-token")
    d.add_argument("--regulator-token")
    d.add_argument("--camera-token", help="the site-exit camera's token (tokens.camera): plays the black truck")
    d.add_argument("--black-plate", default="渝D88888", help="a plate the registry does not know")
    d.add_argument("--device-key", action="append", default=[], metavar="ACTOR=FILE",
                   help="a device's own key (PEM), e.g. gate:exit:P-001=var/secrets/devices/gate_exit_P-001.pem: "
                        "the gates, the GPS terminal and the camera sign their acts (demo.json device_keys)")
    d.add_argument("--terminal-id", default="GPS-9900", help="the GPS terminal of --plate (its key's actor gps:<id>)")
    d.add_argument("--camera-id", default=None, help="the camera of --camera-token (default: demo.json camera_id)")
    d.add_argument("--project", default="P-001")
    d.add_argument("--site", default="S-003")
    d.add_argument("--plate", default="渝A12345")
    d.add_argument("--out", default=None, help="directory for the ticket's QR PNG (default: current directory)")
    d.add_argument("--language", default="zh")
    return p


def _from_demo_file(args: argparse.Namespace) -> None:
    """Fill the options not given from ``demo.json``; fail with one clear line if something is missing."""
    if args.demo_file:
        doc = json.loads(Path(args.demo_file).read_text(encoding="utf-8"))
        t = doc["tokens"]
        args.api = args.api or doc["api"]
        args.contractor_code = args.contractor_code or doc["contractor_wechat_code"]
        if not args.approver_token:
            args.approver_token = list(t["approvers"].values())
            keys = doc.get("approver_keys") or {}
            args.approver_key = args.approver_key or [keys.get(d) for d in t["approvers"]]
        args.exit_gate_token = args.exit_gate_token or t["exit_gate"]
        args.disposal_gate_token = args.disposal_gate_token or t["disposal_gate"]
        args.terminal_token = args.terminal_token or t["truck_terminal"]
        args.regulator_token = args.regulator_token or t["regulator"]
        args.camera_token = args.camera_token or t.get("camera")
        args.camera_id = args.camera_id or doc.get("camera_id")
        if not args.device_key:
            args.device_key = [f"{a}={f}" for a, f in (doc.get("device_keys") or {}).items()]
    args.api = args.api or "http://127.0.0.1:8000"
    missing = [o for o in ("contractor_code", "exit_gate_token", "disposal_gate_token", "terminal_token",
                           "regulator_token") if not getattr(args, o)]
    if missing or not args.approver_token:
        raise ValueError("give --demo-file or " + ", ".join("--" + m.replace("_", "-")
                                                            for m in missing or ["approver_token"]))


def demo(args: argparse.Namespace) -> int:
    """The whole story: login, permit, parallel approvals, ticket + QR, exit, GPS, receipt, history, audit."""

    def step(title: str, text: str) -> None:
        print(f"== {title}: {text}", flush=True)

    lang = args.language
    contractor = ApiClient(args.api, language=lang)
    step("health", str(contractor.health()["status"]))
    step("published QR keys", ", ".join(k["key_id"] for k in contractor.keys()["keys"]))
    who = contractor.login_wechat(args.contractor_code)
    step("contractor logs in with WeChat", f"role {who['role']}, organisation {who['tenant']}")
    now = datetime.now(CHINA_TZ).replace(microsecond=0)
    permit = contractor.create_permit(
        project_id=args.project,
        volume_m3="30000",
        disposal_site_ids=[args.site],
        truck_plates=[args.plate],
        valid_from=now - timedelta(minutes=5),
        valid_to=now + timedelta(days=180),
    )
    step("apply for a permit", f"{permit['id']} {permit['status']}, needs {', '.join(permit['required_approvals'])}")
    keys = [PrivateKey.from_pem(Path(k).read_bytes()) if k else None for k in args.approver_key]
    for i, token in enumerate(args.approver_token):
        decided = ApiClient(args.api, token, language=lang).decide_permit(
            permit["id"], "approve", "同意", signing_key=keys[i] if i < len(keys) else None)
        mine = [d["department"] for d in decided["decisions"] if d["decision"] == "approve"]
        step("a department approves", f"approved by {', '.join(mine)} -> permit {decided['status']}")
    ticket = contractor.issue_ticket(
        permit_id=permit["id"], truck_plate=args.plate, disposal_site_id=args.site, volume_m3="16"
    )
    step("issue a ticket", f"{ticket['id']} {ticket['status']} valid until {ticket['valid_until']}")
    png = contractor.ticket_qr_png(ticket["id"])
    out = Path(args.out or ".") / f"{ticket['id']}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    step("QR code", f"{out} ({len(png)} bytes): {ticket['qr'][:40]}...")
    devices = _device_keys(args)
    gate = ApiClient(args.api, args.exit_gate_token, language=lang)
    # A barrier does not wait for the block: answered at once, the ledger's verdict follows.  Each device signs
    # its own act with its key (when it has one; a consortium that wants device acts signed refuses one without)
    ex = gate.gate_exit(qr=ticket["qr"], plate=args.plate, covered=True, wait=False,
                        signing_key=devices.get(f"gate:exit:{args.project}"), gate_id=f"{args.project}-G1")
    step("site exit", f"accepted={ex['accepted']} at {ex.get('departed_at')} (final={ex.get('final')})")
    if ex.get("accepted") and not ex.get("final"):
        deadline = time.monotonic() + 30
        verdict = gate.gate_scan(ex["tx_id"])
        while not verdict["final"] and time.monotonic() < deadline:
            time.sleep(0.2)
            verdict = gate.gate_scan(ex["tx_id"])
        step("ledger verdict", f"{verdict['verdict']} in block {verdict['block_height']}")
    terminal = ApiClient(args.api, args.terminal_token, language=lang)
    t0 = datetime.now(CHINA_TZ).replace(microsecond=0)
    pos = terminal.report_positions(
        ticket["id"],
        [{"at": (t0 + timedelta(seconds=30 * i)).isoformat(), "lat": 29.709 - i * 0.002, "lon": 106.52,
          "speed_kmh": 35.0} for i in range(5)],
        signing_key=devices.get(f"gps:{args.terminal_id}"),
    )
    step("GPS positions", f"{pos['accepted']} points, violations: {[v['type'] for v in pos['violations']]}")
    rc = ApiClient(args.api, args.disposal_gate_token, language=lang).gate_disposal(
        qr=ticket["qr"], plate=args.plate, volume_m3="15.8", signing_key=devices.get(f"gate:disposal:{args.site}"),
        gate_id=f"{args.site}-G1", site_id=args.site)
    step("disposal receipt", f"accepted={rc['accepted']} measured {rc.get('measured_m3')} m3, "
                             f"site load {rc.get('site', {}).get('load_rate_pct')}%")
    regulator = ApiClient(args.api, args.regulator_token, language=lang)
    hist = regulator.ticket_history(ticket["id"])
    cp = hist["checkpoint"]
    step("history with proofs", f"{len(hist['records'])} records "
                                f"({', '.join(r['type'] for r in hist['records'])}) in a log of {cp['size']}, "
                                f"co-signed by {', '.join(cp['signatures'])}")
    if args.camera_token:
        black_truck(args, step)
    audit = regulator.audit()
    step("audit", f"ok={audit['ok']}")
    return 0 if audit["ok"] else 1


def black_truck(args: argparse.Namespace, step: Callable[[str, str], None]) -> None:
    """A plate the registry does not know drives out of the site exit: the camera's sighting ends as a numbered
    ``unapproved_disposal`` event (未经核准擅自处置) whose photo the regulator fetches and checks."""
    camera = ApiClient(args.api, args.camera_token, language=args.language)
    photo = tiny_png(int(time.time()))
    key = _device_keys(args).get(f"camera:{args.camera_id}")
    seen = camera.sighting(plate=args.black_plate, covered=False, photo=photo, signing_key=key,
                           camera_id=args.camera_id)
    step("site-exit camera", f"{args.black_plate} uncovered, photo {seen['photo_digest'][:19]}...")
    for v in seen["violations"]:
        where = v.get("location") or {}
        step("camera event", f"{v['violation_id']} {v['type']} at {v['reported_at']} "
                             f"({where.get('lat')}, {where.get('lon')}) {v.get('town')}, plate {v['plate']}")
    got = ApiClient(args.api, args.regulator_token, language=args.language).evidence(seen["photo_digest"])
    step("evidence photo", f"{len(got)} bytes, sha256 matches: "
                           f"{'sha256:' + hashlib.sha256(got).hexdigest() == seen['photo_digest']}")


def _device_keys(args: argparse.Namespace) -> dict[str, PrivateKey]:
    """``--device-key ACTOR=FILE`` as actor -> key."""
    out = {}
    for item in args.device_key:
        actor, sep, path = str(item).partition("=")
        if not sep:
            raise ValueError(f"--device-key {item}: give ACTOR=FILE")
        out[actor] = PrivateKey.from_pem(Path(path).read_bytes())
    return out


def _wechat_secret(args: argparse.Namespace) -> str:
    """The fake server's app secret: ``--secret-file`` (plain text or ``{"WECHAT_SECRET": …}``), else the
    ``WECHAT_SECRET`` environment variable, else ``--secret`` (kept for old scripts; ``ps`` shows it), else the
    test default.  Never from our own launchers' command lines."""
    if args.secret_file:
        text = Path(args.secret_file).read_text(encoding="utf-8").strip()
        if text.startswith("{"):
            return str(json.loads(text)["WECHAT_SECRET"])
        return text
    return os.environ.get("WECHAT_SECRET") or args.secret or DEFAULT_SECRET


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "wechat":
        print(f"fake WeChat code2session on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
        try:
            secret = _wechat_secret(args)
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: cannot read the secret file: {exc}", file=sys.stderr)
            return 2
        try:
            serve(args.host, args.port, appid=args.appid, secret=secret, reusable_codes=args.reusable_codes,
                  fd=args.fd)
        except OSError as exc:  # one line and exit 2, never a traceback (the port is taken, a bad --fd)
            what = "port_in_use" if exc.errno == errno.EADDRINUSE else "listen_failed"
            print(f"error: {what}: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
        return 0
    try:
        _from_demo_file(args)
        return demo(args)
    except ApiCallError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}" if isinstance(exc, ValueError) else f"error: cannot use the API or the demo file: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
