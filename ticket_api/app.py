"""The Flask app factory.

    gunicorn 'ticket_api.app:create_app()'

Configuration: see :mod:`ticket_api.config` (``TICKET_API_*`` environment,
a secrets file outside the repository, or a dict given to ``create_app``).
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, render_template_string
from flask_smorest import Api

from ticket_api import __version__
from ticket_api.auth import ApiContext
from ticket_api.config import load_config, redacted
from ticket_api.db import make_engine, make_sessionmaker
from ticket_api.errors import register_error_handlers
from ticket_api.issuer import Keyring
from ticket_api.jsonbody import ApiJSONProvider
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
    app.json = ApiJSONProvider(app)  # request bodies parsed by ticket_api.jsonbody (depth, text)
    app.json.ensure_ascii = False
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


_TEMPLATE = """<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>{{ info.title }} — API docs</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}
.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;text-transform:uppercase}
.get{color:#0a6}.post{color:#06c}.put,.patch{color:#c60}.delete{color:#c00}
code,pre{background:#f6f6f6;border-radius:4px;padding:.1rem .3rem}pre{padding:.6rem;overflow:auto}
.lock{color:#a60;font-size:.9em}
</style></head><body>
<h1>{{ info.title }} <small>v{{ info.version }}</small></h1>
<p>{{ info.description }}</p>
<p>Machine-readable: <a href="{{ spec_url }}">{{ spec_url }}</a> (OpenAPI {{ openapi }})</p>
{% for tag, ops in groups %}
<h2>{{ tag }}</h2>
{% for op in ops %}
<div class="op" id="{{ op.id }}">
<div><span class="m {{ op.method }}">{{ op.method }}</span> <code>{{ op.path }}</code>
{% if op.secure %}<span class="lock">🔒 Bearer</span>{% endif %}</div>
{% if op.summary %}<p><b>{{ op.summary }}</b></p>{% endif %}
{% if op.description %}<pre>{{ op.description }}</pre>{% endif %}
{% if op.request %}<p>Request body: <code>{{ op.request }}</code></p>{% endif %}
<p>Responses: {% for code, desc in op.responses %}<code>{{ code }}</code> {{ desc }}
{%- if not loop.last %}; {% endif %}{% endfor %}</p>
</div>
{% endfor %}{% endfor %}
<h2>Schemas</h2>
{% for name, schema in schemas %}<h3 id="schema-{{ name }}">{{ name }}</h3><pre>{{ schema }}</pre>{% endfor %}
</body></html>
"""


def _ref_name(content: Any) -> str | None:
    if not isinstance(content, dict):
        return None
    for media in content.values():
        schema = media.get("schema", {})
        if "$ref" in schema:
            return str(schema["$ref"]).rsplit("/", 1)[-1]
        if schema.get("type") == "array" and "$ref" in schema.get("items", {}):
            return "list of " + str(schema["items"]["$ref"]).rsplit("/", 1)[-1]
        return str(schema.get("type", "object"))
    return None


def render_docs(spec: dict[str, Any]) -> str:
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            tag = (op.get("tags") or ["other"])[0]
            groups.setdefault(tag, []).append(
                {
                    "id": f"{method}-{path}",
                    "method": method,
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "secure": bool(op.get("security")),
                    "request": _ref_name(op.get("requestBody", {}).get("content")),
                    "responses": [
                        (code, r.get("description", ""))
                        for code, r in sorted(op.get("responses", {}).items())
                    ],
                }
            )
    schemas = sorted(
        (name, json.dumps(s, indent=2, ensure_ascii=False))
        for name, s in spec.get("components", {}).get("schemas", {}).items()
    )
    return render_template_string(
        _TEMPLATE,
        info=spec.get("info", {}),
        openapi=spec.get("openapi", ""),
        spec_url="/api/openapi.json",
        groups=sorted(groups.items()),
        schemas=schemas,
    )


def install_docs(app: Flask) -> None:
    @app.route("/api/docs")
    def api_docs() -> Response:
        api = current_app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
        html = render_docs(api.spec.to_dict())
        return Response(html, mimetype="text/html")
