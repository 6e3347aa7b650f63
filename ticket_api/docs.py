"""``/api/docs``: a self-contained HTML rendering of the OpenAPI document.

flask-smorest's Swagger UI / ReDoc pages load their JavaScript from a CDN,
which gates and test machines cannot reach, so the docs are rendered on the
server from the same ``/api/openapi.json`` without any script.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, current_app, render_template_string

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
