"""The Flask app factory.

    gunicorn 'ticket_api.app:create_app()'

Configuration: see :mod:`ticket_api.config` (``TICKET_API_*`` environment,
a secrets file outside the repository, or a dict given to ``create_app``).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_smorest import Api

from ticket_api import __version__
from ticket_api.config import load_config, redacted
from ticket_api.context import ApiContext
from ticket_api.db import make_engine, make_sessionmaker
from ticket_api.docs import install_docs
from ticket_api.errors import register_error_handlers
from ticket_api.issuer import Keyring
from ticket_api.logs import install_request_id, setup_logging
from ticket_api.schemas import ErrorSchema
from ticket_api.services import Services
from ticket_api.tokens import TokenStore
from ticket_api.views import BLUEPRINTS

log = logging.getLogger("ticket_api.app")


class TicketApi(Api):
    """flask-smorest ``Api`` documenting our error body."""

    ERROR_SCHEMA = ErrorSchema


def _services(cfg: Mapping[str, Any], keyring: Keyring) -> tuple[Services, bool]:
    spec = cfg.get("SERVICES")
    if not spec:
        return Services.unavailable(), False
    if isinstance(spec, Services):
        return spec, True
    if callable(spec):
        return spec(cfg, keyring), True
    module_name, _, attr = str(spec).partition(":")
    factory = getattr(importlib.import_module(module_name), attr or "make_services")
    return factory(cfg, keyring), True


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config, database, tokens, keys, services, blueprints, docs, errors."""
    cfg = load_config(config)
    setup_logging(str(cfg["LOG_LEVEL"]), bool(cfg["LOG_JSON"]))
    app = Flask("ticket_api")
    app.config.update(
        API_TITLE="Muck e-ticket API (电子渣票)",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=int(cfg["MAX_CONTENT_LENGTH"]),
        JSON_AS_ASCII=False,
        API_SPEC_OPTIONS={
            "info": {
                "description": "Permissioned-ledger e-tickets for muck transport. "
                "Errors: {error: {code, message, fields}, reason}; gate refusals: "
                "{accepted: false, reason, message}. Messages follow Accept-Language (zh default, en).",
            },
        },
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    engine = make_engine(str(cfg["DATABASE_URL"]))
    keyring = Keyring.from_config(cfg)
    services, configured = _services({**cfg, "_ENGINE": engine}, keyring)
    app.extensions["ticket_api"] = ApiContext(
        config=cfg,
        engine=engine,
        sessionmaker=make_sessionmaker(engine),
        tokens=TokenStore(engine),
        keyring=keyring,
        services=services,
        services_configured=configured,
    )
    api = TicketApi(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "mtk_... token"}
    )
    for blp in BLUEPRINTS:
        api.register_blueprint(blp)
    register_error_handlers(app)
    install_request_id(app)
    install_docs(app)
    log.info("ticket_api ready", extra={"config": str(redacted(cfg)), "ledger": configured})
    return app
