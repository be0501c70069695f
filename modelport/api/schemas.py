"""Marshmallow schemas of the JSON API; they are also its OpenAPI documentation."""

from __future__ import annotations

import unicodedata

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate


def plain_text(value: str) -> None:
    """Refuse control characters and lone surrogates: PostgreSQL cannot store NUL, no driver
    can encode a lone surrogate, and neither belongs in a name."""
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise ValidationError("Control characters are not allowed.")


class ErrorDetailSchema(Schema):
    row = fields.Integer(
        required=True, allow_none=True, metadata={"description": "input row, when rows apply"}
    )
    field = fields.String(
        required=True, allow_none=True, metadata={"description": "field name, dotted if nested"}
    )
    code = fields.String(required=True, metadata={"example": "required"})
    message = fields.String(required=True)


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"example": "invalid_input"})
    message = fields.String(required=True, metadata={"description": "readable by a person"})
    details = fields.List(
        fields.Nested(ErrorDetailSchema),
        required=True,
        allow_none=True,
        metadata={"description": "one entry per problem for input errors, else null"},
    )


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE  # an unknown field is an error, never silently assigned


class UserSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.Integer(required=True)
    email = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(["user", "admin"]))
    created_at = fields.DateTime(required=True)


class TokenCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=100), plain_text])
    scopes = fields.List(
        fields.String(validate=validate.OneOf(["predict", "full"])),
        validate=validate.Length(max=2),
        load_default=None,
    )
    expires_at = fields.AwareDateTime(
        load_default=None, allow_none=True, metadata={"example": "2027-01-01T00:00:00Z"}
    )


class TokenSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True)
    scopes = fields.List(fields.String(), required=True, attribute="scope_list")
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)


class TokenCreatedSchema(TokenSchema):
    token = fields.String(
        required=True, attribute="plaintext", metadata={"description": "shown once; store it now"}
    )


class PageQuerySchema(StrictSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class TokenPageSchema(Schema):
    items = fields.List(fields.Nested(TokenSchema), required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)
