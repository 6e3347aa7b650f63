"""Cameras and the evidence they bring.

``POST /api/v1/cameras/sightings`` (role ``camera``; the token's tenant is the camera's registry id,
``registry.camera``) takes ``{"plate", "covered", "time", "photo"}`` — the photo a JPEG or PNG, base64 in
JSON, or a ``photo`` file of a ``multipart/form-data`` body with the other fields beside it (a camera's
``act_sig`` there as JSON text) — stores the photo
in the evidence store (:mod:`ticket_api.evidence`), puts its digest on the chain with the sighting and answers
``202 {"sighting_id", "photo_digest", "state", "violations": [...]}``: the violations known at once (a black
truck, an uncovered load, off-route); a missing gate scan is an event after the grace window, in the
violation lists.  ``GET /api/v1/evidence/<digest>`` serves a photo to staff, only if it matches its digest.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Response, request

from ticket_api.auth import answer, authenticate, ctx, require, submission
from ticket_api.errors import ApiError, BadPhoto
from ticket_api.evidence import evidence_store
from ticket_api.idempotency import idempotent
from ticket_api.jsonbody import Blueprint
from ticket_api.schemas.cameras import SightingCreateSchema, SightingFormSchema, SightingSchema

blp = Blueprint("cameras", __name__, url_prefix="/api/v1", description="Cameras and their evidence photos")
EVIDENCE_READERS = ("operator", "enforcement", "regulator")


def _photo_and_fields() -> tuple[bytes, dict[str, Any]]:
    if request.mimetype == "multipart/form-data":
        raw: dict[str, Any] = dict(request.form.items())
        upload = request.files.get("photo")
        if upload is None:
            raise BadPhoto("no photo file", fields={"photo": ["Missing data for required field."]})
        return upload.read(), SightingFormSchema().load(raw)
    if not request.is_json:
        raise ApiError("a sighting is JSON or multipart/form-data", reason="unsupported_media_type")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("the body must be a JSON object", reason="malformed")
    data = dict(SightingCreateSchema().load(body))
    text = str(data.pop("photo"))
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True), data
    except (binascii.Error, ValueError):
        raise BadPhoto("photo is not base64", fields={"photo": ["Not base64."]}) from None


@blp.route("/cameras/sightings", methods=["POST"])
@require("camera")
@idempotent
@blp.doc(requestBody={"required": True, "content": {
    "application/json": {"schema": SightingCreateSchema},
    "multipart/form-data": {"schema": {"type": "object", "required": ["plate", "covered", "photo"], "properties": {
        "plate": {"type": "string"}, "covered": {"type": "boolean"}, "time": {"type": "string"},
        "sighting_id": {"type": "string"}, "act_sig": {"type": "string", "description": "JSON text"},
        "photo": {"type": "string", "format": "binary"}}}}}})
@blp.response(202, SightingSchema)
def post_sighting() -> tuple[Any, int]:
    """A camera saw a plate: the photo goes to the evidence store, its digest and the sighting on the chain."""
    photo, data = _photo_and_fields()
    stored = evidence_store().put(photo)
    body, _status = answer(ctx().services.cameras.sight(authenticate(), data, stored.digest, submission()))
    return {**body, "photo_digest": stored.digest}, 202


@blp.route("/cameras/sightings/<sighting_id>")
@require(*EVIDENCE_READERS)
@blp.response(200, SightingSchema)
def get_sighting(sighting_id: str) -> Any:
    """A sighting as the rules left it: ``pending`` (waiting for the gate's scan), ``cleared`` or ``checked``."""
    return ctx().services.cameras.sighting(authenticate(), sighting_id)


@blp.route("/evidence/<digest>")
@require(*EVIDENCE_READERS)
@blp.doc(responses={200: {"description": "the photo", "content": {
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "image/png": {"schema": {"type": "string", "format": "binary"}}}}})
def get_evidence(digest: str) -> Response:
    """A camera photo by its digest (``sha256:<hex>``); never bytes that do not hash to it."""
    data, content_type = evidence_store().get(digest)
    resp = Response(data, mimetype=content_type)
    resp.headers["Cache-Control"] = "private, max-age=86400, immutable"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp
