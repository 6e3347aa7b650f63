"""The schemas' foundations: request and response base classes, shared validators, error and 202 bodies."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, post_dump, validate

from ledger.core.encoding import CHINA_TZ
from ticket_api.errors import ApiError

ID = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", error="1-64 of A-Z a-z 0-9 _ . : - (first alphanumeric)"
)
PLATE = validate.Length(min=7, max=12)


class StrictSchema(Schema):
    """Requests: unknown fields are refused (typos are caught)."""

    class Meta:
        unknown = RAISE


class OpenSchema(Schema):
    """Responses: declared fields are documented; extra members from the service pass through.

    ``unknown = INCLUDE`` makes the OpenAPI document say so (``additionalProperties: true``).
    """

    class Meta:
        unknown = INCLUDE

    @post_dump(pass_original=True)
    def _keep_extra(self, data: dict[str, Any], original: Any, **_kwargs: Any) -> dict[str, Any]:
        if isinstance(original, dict):
            for key, value in original.items():
                if key not in self.fields and key not in data:
                    data[key] = value
        return data


#: Times a request may carry: years 2000 to 2099 (China time).  Far wider than any ticket, permit or scan, and
#: far inside ``datetime``'s range, so no arithmetic on a time (offsets, leeways, validity) can overflow.
TIME_MIN = datetime(2000, 1, 1, tzinfo=CHINA_TZ)
TIME_MAX = datetime(2100, 1, 1, tzinfo=CHINA_TZ)


class TimeOutOfRange(ApiError):
    """A request's time outside :data:`TIME_MIN`..:data:`TIME_MAX`: 400, not a field problem (422), because
    the time is well-formed; the field is named in ``fields``."""

    reason = "time_out_of_range"
    status = 400


class AwareDateTime(fields.AwareDateTime):
    """ISO 8601 with an offset (``2026-11-23T22:15:00+08:00``); naive times are refused (422), times outside
    the years 2000 to 2099 answer 400 ``time_out_of_range`` (near year 1 or 9999 any offset overflows)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        when: datetime = super()._deserialize(value, attr, data, **kwargs)
        try:
            inside = TIME_MIN <= when < TIME_MAX
        except OverflowError:  # comparing converts to UTC, which 0001-01-01T00:00+08:00 is not in
            inside = False
        if not inside:
            name = attr or self.name or "_schema"
            raise TimeOutOfRange(f"{name}: {value!r} is out of range", fields={
                name: [f"must be from {TIME_MIN.isoformat()} to before {TIME_MAX.isoformat()}"]})
        return when


DECIMAL_MAX = Decimal(10**9)  # volumes (m³), weights (t): far above any real load, far below float trouble


def one_decimal(value: Decimal) -> None:
    try:
        if value != value.quantize(Decimal("0.1")):
            raise ValidationError("at most one decimal")
    except InvalidOperation:  # too many digits to quantize (e.g. 1e300): not one decimal either
        raise ValidationError("at most one decimal") from None


def bounded(value: Decimal) -> None:
    if abs(value) > DECIMAL_MAX:
        raise ValidationError(f"must be at most {DECIMAL_MAX}")


def amount(value: Decimal) -> None:
    # not validate.Range: apispec would document its bounds as strings ("minimum": "0"), which is invalid
    if not 0 <= value <= DECIMAL_MAX:
        raise ValidationError(f"must be between 0 and {DECIMAL_MAX}")


def positive(value: Decimal) -> None:
    if value <= 0:
        raise ValidationError("must be greater than 0")
    bounded(value)


# ------------------------------------------------------------------ errors and 202


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "the reason code"})
    message = fields.String(required=True, metadata={"description": "localised (Accept-Language: zh, en)"})
    # the member is named "fields"; marshmallow takes declared fields off the class, so Schema.fields is intact
    fields = fields.Dict(metadata={"description": "per-field problems of invalid requests"})  # type: ignore[assignment]


# gunicorn answers a request line over 4094 bytes itself, before the app: 414 in HTML.
URI_TOO_LONG = {"description": "request line over 4094 bytes (answered by gunicorn in HTML)",
                "content": {"text/html": {"schema": {"type": "string"}}}}


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)
    reason = fields.String(required=True)


class GateRefusalSchema(Schema):
    accepted = fields.Boolean(required=True, metadata={"example": False})
    reason = fields.String(required=True)
    message = fields.String(required=True)
    # the member is named "fields"; marshmallow takes declared fields off the class, so Schema.fields is intact
    fields = fields.Dict(metadata={"description": "per-field problems of invalid requests"})  # type: ignore[assignment]


class PendingSchema(Schema):
    tx_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"example": "submitted"})


class RevokeSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})
    version = fields.String(required=True)
    time = fields.String(required=True)
    database = fields.String(required=True)
    ledger = fields.String(required=True, metadata={"description": "configured | unavailable"})


class WechatLoginSchema(StrictSchema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=256))


class LoginResultSchema(Schema):
    token = fields.String(required=True, metadata={"description": "bearer token, shown once"})
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    role = fields.String(required=True)
    tenant = fields.String(required=True)
    subject = fields.String(required=True)
    expires_at = fields.String(required=True)


class PrincipalSchema(Schema):
    token_id = fields.String(required=True)
    role = fields.String(required=True)
    tenant = fields.String(required=True)
    subject = fields.String(required=True)
    expires_at = fields.String(required=True)


class KeySchema(Schema):
    key_id = fields.String(required=True)
    alg = fields.String(required=True, metadata={"example": "ed25519"})
    public_key_pem = fields.String(required=True)
    public_key_hex = fields.String(required=True)
    valid_from = fields.String(allow_none=True)
    valid_until = fields.String(allow_none=True)
    current = fields.Boolean(required=True)


class KeysSchema(Schema):
    keys = fields.List(fields.Nested(KeySchema), required=True)
    current_key_id = fields.String(allow_none=True)
    qr_prefix = fields.String(required=True, metadata={"example": "MT1:"})
    qr_format = fields.String(required=True)
