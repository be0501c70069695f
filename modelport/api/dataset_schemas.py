"""Schemas of the dataset endpoints (also their OpenAPI documentation)."""

from __future__ import annotations

from marshmallow import Schema, fields


class ColumnTypeSchema(Schema):
    name = fields.String(required=True)
    type = fields.String(required=True, metadata={"description": "pandas dtype of the column"})


class DatasetVersionSchema(Schema):
    number = fields.Integer(required=True)
    filename = fields.String(required=True)
    format = fields.String(required=True, metadata={"description": "csv or parquet"})
    rows = fields.Integer(required=True)
    columns = fields.Integer(required=True)
    column_types = fields.List(fields.Nested(ColumnTypeSchema), required=True)
    size_bytes = fields.Integer(required=True)
    file_sha256 = fields.String(required=True)
    created_by = fields.String(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)


class DatasetSchema(Schema):
    name = fields.String(required=True)
    owner = fields.String(allow_none=True, required=True, metadata={"description": "e-mail"})
    latest_version = fields.Integer(required=True)
    rows = fields.Integer(required=True, metadata={"description": "rows of the latest version"})
    columns = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)


class DatasetPageSchema(Schema):
    items = fields.List(fields.Nested(DatasetSchema), required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)


class ColumnSummarySchema(Schema):
    name = fields.String(required=True)
    kind = fields.String(
        required=True, metadata={"description": "numeric, categorical, boolean or datetime"}
    )
    missing_share = fields.Float(required=True)
    mean = fields.Float(allow_none=True)
    std = fields.Float(allow_none=True)
    min = fields.Raw(allow_none=True)
    max = fields.Raw(allow_none=True)
    distinct = fields.Integer()
    top = fields.List(fields.List(fields.Raw()), metadata={"description": "[value, count] pairs"})


class ProfileSummarySchema(Schema):
    version = fields.Integer(required=True)
    overview = fields.Dict(
        required=True,
        metadata={
            "description": "rows, columns, memory_bytes, missing_cells, missing_share, "
            "duplicate_rows"
        },
    )
    columns = fields.List(fields.Nested(ColumnSummarySchema), required=True)


class DatasetDetailSchema(DatasetSchema):
    versions = fields.List(fields.Nested(DatasetVersionSchema), required=True)
    profile = fields.Nested(ProfileSummarySchema, required=True)
