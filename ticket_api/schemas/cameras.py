"""Cameras: a sighting (plate, cover, time; the photo comes as base64 in JSON or a multipart file) and its answer."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from marshmallow import ValidationError, fields, validate

from ticket_api.schemas.common import ID, AwareDateTime, OpenSchema, StrictSchema
from ticket_api.schemas.miniprogram import ActSignatureSchema
from ticket_api.schemas.staff import ViolationSchema


class SightingFieldsSchema(StrictSchema):
    """The text fields of ``POST /api/v1/cameras/sightings`` (JSON members or multipart form fields)."""

    plate = fields.String(required=True, validate=validate.Length(1, 16))
    covered = fields.Boolean(required=True, metadata={"description": "false: the load is not covered"})
    time = AwareDateTime(metadata={"description": "when the camera saw the truck (defaults to now)"})


_SIGHTING_ID = {"description": "chosen by a camera that signs (with act_sig)"}
_ACT_SIG = {"description": "the camera's own signature over the sighting's ledger payload (docs/ETICKET.md \"Acts "
                           "signed by their actors\"; needs sighting_id and time)"}


class _JsonText(fields.Nested):
    """A nested object sent as JSON text (a ``multipart/form-data`` field)."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     partial: bool | Sequence[str] | AbstractSet[str] | None = None, **kwargs: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValidationError("Not JSON.") from None
        return super()._deserialize(value, attr, data, partial, **kwargs)


class SightingFormSchema(SightingFieldsSchema):
    """The form fields of a ``multipart/form-data`` sighting (the photo is the ``photo`` file)."""

    sighting_id = fields.String(validate=ID, metadata=_SIGHTING_ID)
    act_sig = _JsonText(ActSignatureSchema, metadata={"description": _ACT_SIG["description"] + "; as JSON text"})


class SightingCreateSchema(SightingFieldsSchema):
    photo = fields.String(required=True, metadata={"description": "the JPEG or PNG photo, base64"})
    sighting_id = fields.String(validate=ID, metadata=_SIGHTING_ID)
    act_sig = fields.Nested(ActSignatureSchema, metadata=_ACT_SIG)


class SightingSchema(OpenSchema):
    sighting_id = fields.String(required=True)
    photo_digest = fields.String(required=True)
    state = fields.String(metadata={"description": "pending (waits for the gate's scan), checked or cleared"})
    violations = fields.List(fields.Nested(ViolationSchema), required=True)
