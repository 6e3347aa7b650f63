"""Configuration: defaults, then ``TICKET_API_*`` environment, then a secrets file, then the dict.

Secrets (``WECHAT_SECRET``...) should come from the environment or from a
JSON file named by ``TICKET_API_SECRETS_FILE`` kept outside the repository
(mode 0600); they are never logged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": "sqlite:///var/ticket_api.sqlite",
    "WECHAT_API_BASE": "https://api.weixin.qq.com",
    "WECHAT_APPID": "",
    "WECHAT_SECRET": "",
    "WECHAT_TIMEOUT": 5.0,
    "LOGIN_TOKEN_TTL_HOURS": 12.0,
    # Published QR issuer keys: a list of {"pem" | "public_key_file", "valid_from",
    # "valid_until", "current"}; or a JSON file of that list.
    "QR_KEYS": [],
    "QR_KEYS_FILE": "",
    # The current issuer's private key (PEM file, outside the repository).
    "QR_SIGNING_KEY_FILE": "",
    # "module:factory" returning a ticket_api.services.Services, or a Services instance.
    "SERVICES": "",
    # The ledger adapter (ticket_api.adapter): a local consortium's consortium.json, or node URLs and the
    # gateway member's key file.
    "LEDGER_LOCAL": "",
    "LEDGER_NODES": [],
    "LEDGER_GATEWAY_KEY_FILE": "",
    # With LEDGER_NODES: the consortium document, and the gateway's TLS files (its certificate, its key
    # and the consortium's CA bundle) for https:// node URLs (mutual TLS).
    "LEDGER_CONSORTIUM_FILE": "",
    "LEDGER_TLS_CERT_FILE": "",
    "LEDGER_TLS_KEY_FILE": "",
    "LEDGER_TLS_CA_FILE": "",
    "LEDGER_WAIT_SECONDS": 12.0,
    "LOG_LEVEL": "INFO",
    "LOG_JSON": True,
    "MAX_CONTENT_LENGTH": 1 << 20,
    "GATE_CLOCK_LEEWAY_SECONDS": 120,
    # Camera photos (ticket_api.evidence): the largest photo accepted, and how long photos are kept.
    "EVIDENCE_MAX_BYTES": 512 * 1024,
    "EVIDENCE_RETENTION_DAYS": 365.0,
    "SECRETS_FILE": "",
    # The notifier (python -m ticket_api notify): first run from the "genesis" block or the "head";
    # WeChat subscribe-message templates by event kind (JSON object), miniprogram_state, message language.
    "NOTIFY_START": "genesis",
    "NOTIFY_POLL_SECONDS": 0.5,
    "NOTIFY_BACKOFF_SECONDS": 1.0,
    "NOTIFY_WECHAT_TEMPLATES": "",
    "NOTIFY_WECHAT_STATE": "formal",
    "NOTIFY_LANGUAGE": "zh",
    "NOTIFY_STREAM_SECONDS": 25.0,
    # The dashboard's event stream: how long one connection lasts, how often the snapshot is recomputed.
    "DASHBOARD_STREAM_SECONDS": 60.0,
    "DASHBOARD_STREAM_POLL_SECONDS": 1.0,
}

SECRET_KEYS = frozenset({"WECHAT_SECRET", "SECRET_KEY", "DATABASE_URL"})
ENV_PREFIX = "TICKET_API_"


def _coerce(default: Any, raw: str) -> Any:
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, list):
        return json.loads(raw)
    return raw


def load_config(
    overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The effective configuration (see module doc for the order)."""
    env = os.environ if env is None else env
    cfg = dict(DEFAULTS)
    for name, default in DEFAULTS.items():
        raw = env.get(ENV_PREFIX + name)
        if raw is not None:
            cfg[name] = _coerce(default, raw)
    secrets_file = (overrides or {}).get("SECRETS_FILE") or cfg["SECRETS_FILE"]
    if secrets_file:
        try:
            data = json.loads(Path(secrets_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot read secrets file {secrets_file}: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            raise RuntimeError(f"secrets file {secrets_file} must hold a JSON object")
        cfg.update(data)
    if overrides:
        cfg.update(overrides)
    return cfg


def redacted(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration with secrets masked (safe to log)."""
    return {k: ("***" if k in SECRET_KEYS and v else v) for k, v in cfg.items() if k.isupper()}
