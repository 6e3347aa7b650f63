"""The one place a request's JSON body is parsed: nesting depth and text checked before anything reads it.

Every JSON body goes through :func:`loads`: the webargs parser of every blueprint (:class:`Blueprint`, the
API's flask-smorest blueprint) and Flask's ``request.get_json`` (the app's JSON provider,
:class:`ApiJSONProvider`) both call it.  The size is limited before (``MAX_CONTENT_LENGTH``, 413).

* nesting deeper than :data:`MAX_DEPTH` arrays/objects is refused ``400 json_too_deep`` before it is decoded
  (Python's decoder would recurse until ``RecursionError``; no request of this API nests more than 4 deep);
* a string holding a lone UTF-16 surrogate (``"\\ud800"``: valid JSON, but no Unicode text, so it cannot be
  encoded for WeChat, the ledger or the database) is refused ``400 bad_text``;
* anything else that is not JSON raises :class:`json.JSONDecodeError` as before (webargs answers 422
  ``invalid_request``, ``get_json(silent=True)`` gives ``None``).
"""

from __future__ import annotations

import json
from typing import Any

import flask
import flask_smorest
from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from ledger.core.encoding import MAX_JSON_DEPTH, json_depth
from ticket_api.errors import ApiError

#: Arrays and objects inside each other at most this deep (the API's own bodies nest at most 4 deep).
MAX_DEPTH = MAX_JSON_DEPTH


class JsonTooDeep(ApiError):
    """The body nests arrays/objects deeper than :data:`MAX_DEPTH`."""

    reason = "json_too_deep"
    status = 400


class BadText(ApiError):
    """A string of the body is no Unicode text (a lone surrogate escape such as ``\\ud800``)."""

    reason = "bad_text"
    status = 400


def depth(data: bytes) -> int:
    """How deep arrays and objects nest in the JSON text ``data`` (:func:`ledger.core.encoding.json_depth`)."""
    return json_depth(data)


def loads(data: bytes | str) -> Any:
    """Parse a request body (see the module doc for what is refused)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if depth(raw) > MAX_DEPTH:
        raise JsonTooDeep(f"JSON nested deeper than {MAX_DEPTH}", fields={"_schema": [
            f"arrays and objects nest at most {MAX_DEPTH} deep"]})
    try:
        value = core.parse_json(raw)  # strict UTF-8: undecodable bytes are a JSONDecodeError
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits: not JSON we read either
        raise json.JSONDecodeError(f"not valid JSON: {exc.__class__.__name__}", "", 0) from None
    if b"\\u" in raw:  # only an escape can make a surrogate out of strict UTF-8
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadText("a JSON string holds a lone surrogate", fields={"_schema": [
                "strings must be Unicode text (no lone surrogate escapes)"]}) from None
    return value


class ApiJSONProvider(DefaultJSONProvider):
    """Flask's JSON (``request.get_json``) reading bodies through :func:`loads`."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)


class ApiParser(FlaskParser):
    """webargs' Flask parser reading JSON bodies through :func:`loads`."""

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return core.missing
        return loads(req.get_data(cache=True))


class Blueprint(flask_smorest.Blueprint):
    """The API's blueprint: flask-smorest's, its arguments parsed by :class:`ApiParser`."""

    ARGUMENTS_PARSER = ApiParser()
