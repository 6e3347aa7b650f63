"""``python -m ticket_api notify``: the configuration, the database and the logs of the notifier."""

from __future__ import annotations

from ticket_api.config import load_config
from ticket_api.db import make_engine
from ticket_api.logs import setup_logging
from ticket_api.notify.follower import run_forever
from ticket_api.notify.outbox import Outbox


def main(database_url: str | None = None) -> int:
    cfg = load_config({"DATABASE_URL": database_url} if database_url else None)
    setup_logging(str(cfg["LOG_LEVEL"]), bool(cfg["LOG_JSON"]))
    outbox = Outbox(make_engine(str(cfg["DATABASE_URL"])),
                    backoff_base=float(cfg.get("NOTIFY_BACKOFF_SECONDS") or 1.0))
    run_forever(cfg, outbox)
    return 0
