"""Schemas of the model registry and prediction endpoints (also their OpenAPI documentation)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from modelport.api.schemas import PageQuerySchema, StrictSchema, plain_text
from modelport.models.types import MAX_INT_ID

NAME = validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$", error="1–64 of a-z, 0-9, '-', '_'.")


class FeatureSchema(Schema):
    name = fields.String(required=True)
    type = fields.String(
        required=True,
        validate=validate.OneOf(["number", "integer", "boolean", "category", "string"]),
    )
    required = fields.Boolean(required=True)
    minimum = fields.Float(allow_none=True)
    maximum = fields.Float(allow_none=True)
    categories = fields.List(fields.String(), allow_none=True)
    example = fields.Raw(allow_none=True)
    description = fields.String()


class InputSchemaSchema(Schema):
    features = fields.List(fields.Nested(FeatureSchema), required=True)


class VersionSchema(Schema):
    number = fields.Integer(required=True)
    flavor = fields.String(required=True)
    runtime = fields.String(required=True, metadata={"description": "onnxruntime, sklearn, mlflow"})
    parity = fields.Dict(
        allow_none=True,
        metadata={"description": "compiled vs native predictions on the held-out sample"},
    )
    status = fields.String(required=True, validate=validate.OneOf(["ready", "archived"]))
    artifact_sha256 = fields.String(allow_none=True)
    input_schema = fields.Nested(InputSchemaSchema, required=True)
    output_schema = fields.Dict(required=True)
    metrics = fields.Dict(allow_none=True)
    params = fields.Dict(allow_none=True)
    aliases = fields.List(fields.String(), required=True)
    created_at = fields.DateTime(required=True)


class ModelSchema(Schema):
    name = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    task = fields.String(required=True, validate=validate.OneOf(["classification", "regression"]))
    visibility = fields.String(required=True, validate=validate.OneOf(["public", "private"]))
    aliases = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    serving_version = fields.Integer(allow_none=True, required=True)
    canary_share = fields.Float(
        allow_none=True,
        metadata={"description": "share (0–1) of callers naming no version who get the challenger"},
    )
    shadow_share = fields.Float(
        allow_none=True,
        metadata={"description": "share (0–1) of those requests also run on the shadow version"},
    )
    created_at = fields.DateTime(required=True)


class ModelDetailSchema(ModelSchema):
    versions = fields.List(fields.Nested(VersionSchema), required=True)


class ModelPageSchema(Schema):
    items = fields.List(fields.Nested(ModelSchema), required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)


class ModelCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    title = fields.String(load_default="", validate=[validate.Length(max=200), plain_text])
    description = fields.String(load_default="", validate=validate.Length(max=10_000))
    task = fields.String(required=True, validate=validate.OneOf(["classification", "regression"]))
    visibility = fields.String(
        load_default="public", validate=validate.OneOf(["public", "private"])
    )


class ModelUpdateSchema(StrictSchema):
    title = fields.String(validate=[validate.Length(max=200), plain_text])
    description = fields.String(validate=validate.Length(max=10_000))
    visibility = fields.String(validate=validate.OneOf(["public", "private"]))


class AliasSchema(StrictSchema):
    version = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_INT_ID))


class CanarySchema(StrictSchema):
    """A canary's settings: either share or both; 0 (or null) turns one off."""

    share = fields.Float(
        allow_none=True,
        validate=validate.Range(min=0, max=1),
        metadata={"description": "callers naming no version who get the challenger, 0–1"},
    )
    shadow_share = fields.Float(
        allow_none=True,
        validate=validate.Range(min=0, max=1),
        metadata={"description": "requests naming no version also run on the shadow, 0–1"},
    )

    @validates_schema
    def _some(self, data: dict, **_kwargs: object) -> None:
        if not data:
            raise ValidationError("Give share, shadow_share or both.", "share")


class CanaryResultSchema(Schema):
    model = fields.String(required=True)
    share = fields.Float(allow_none=True, required=True)
    shadow_share = fields.Float(allow_none=True, required=True)
    champion = fields.Integer(allow_none=True, required=True)
    challenger = fields.Integer(allow_none=True, required=True)
    shadow = fields.Integer(allow_none=True, required=True)


class FollowSchema(StrictSchema):
    """The MLflow registered model to follow."""

    mlflow_model = fields.String(
        required=True,
        validate=validate.Length(min=1, max=256),
        metadata={"description": "name of a registered model in MLflow", "example": "churn"},
    )


class SyncSchema(Schema):
    model = fields.String(required=True)
    mlflow_model = fields.String(required=True)
    changes = fields.List(fields.String(), required=True)
    error = fields.String(allow_none=True, required=True)
    busy = fields.Boolean(required=True)


class FollowResultSchema(Schema):
    """A following model after a sync: what it follows, its aliases, what the sync did."""

    model = fields.String(required=True)
    mlflow_model = fields.String(allow_none=True, required=True)
    aliases = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    synced_at = fields.AwareDateTime(allow_none=True, required=True)
    sync = fields.Nested(SyncSchema, allow_none=True, required=True)


class WebhookResultSchema(Schema):
    event = fields.String(required=True, metadata={"example": "model_version_alias.created"})
    synced = fields.List(fields.Nested(SyncSchema), required=True)


class AliasResultSchema(Schema):
    alias = fields.String(required=True)
    version = fields.Integer(required=True)


class VersionUploadSchema(Schema):
    """Multipart form fields of a version upload (the files are ``artifact``, ``sample`` and
    the optional ``evaluation``)."""

    alias = fields.String(metadata={"description": "move this alias to the new version"})
    metrics = fields.String(metadata={"description": "JSON object of training metrics"})
    target = fields.String(metadata={"description": "the evaluation CSV's target column"})


class PredictionRowSchema(Schema):
    label = fields.Raw(metadata={"description": "classification: the predicted class"})
    probabilities = fields.Dict(keys=fields.String(), values=fields.Float())
    value = fields.Float(metadata={"description": "regression: the predicted value"})


class ServedModelSchema(Schema):
    name = fields.String(required=True)
    version = fields.Integer(required=True)
    alias = fields.String(allow_none=True, required=True)
    runtime = fields.String(required=True)
    variant = fields.String(
        allow_none=True,
        validate=validate.OneOf(["champion", "challenger"]),
        metadata={
            "description": "which variant answered a request naming no version or alias "
            "(champion, or challenger for the canary share); null when one was named"
        },
    )


class WarningSchema(Schema):
    row = fields.Integer(allow_none=True, required=True)
    field = fields.String(allow_none=True, required=True)
    code = fields.String(required=True)
    message = fields.String(required=True)


class PredictResponseSchema(Schema):
    request_id = fields.String(required=True)
    model = fields.Nested(ServedModelSchema, required=True)
    predictions = fields.List(fields.Nested(PredictionRowSchema), required=True)
    warnings = fields.List(fields.Nested(WarningSchema), required=True)
    timing_ms = fields.Float(required=True)
    record_id = fields.Integer(allow_none=True)


SCALAR = {"oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}, {"type": "null"}]}

# The body is read by the predictor itself (it accepts three shapes), so it is documented here
# as JSON Schema rather than parsed by a marshmallow schema.
PREDICT_REQUEST = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "additionalProperties": False,
                "properties": {
                    "inputs": {
                        "oneOf": [
                            {
                                "type": "object",
                                "description": "one row, or columns {feature: [values]}",
                                "additionalProperties": {
                                    "oneOf": [SCALAR, {"type": "array", "items": SCALAR}]
                                },
                            },
                            {
                                "type": "array",
                                "description": "rows",
                                "items": {"type": "object", "additionalProperties": SCALAR},
                            },
                        ]
                    },
                    "parameters": {"type": "object"},
                },
            },
            "example": {
                "inputs": {
                    "sepal_length": 5.1,
                    "sepal_width": 3.5,
                    "petal_length": 1.4,
                    "petal_width": 0.2,
                }
            },
        },
        "text/csv": {
            "schema": {"type": "string"},
            "example": "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n",
        },
    },
}


class RecordSchema(Schema):
    id = fields.Integer(required=True)
    request_id = fields.String(required=True)
    model_name = fields.String(required=True)
    version_number = fields.Integer(allow_none=True, required=True)
    runtime = fields.String(allow_none=True, required=True)
    source = fields.String(required=True)
    status = fields.String(required=True)
    error_code = fields.String(allow_none=True, required=True)
    rows = fields.Integer(required=True, attribute="row_count")
    latency_ms = fields.Float(required=True)
    user_id = fields.Integer(allow_none=True, required=True)
    token_id = fields.Integer(allow_none=True, required=True)
    truncated = fields.Boolean(required=True)
    variant = fields.String(
        allow_none=True,
        metadata={"description": "champion, challenger or shadow; null: a version was named"},
    )
    shadow_of = fields.Integer(
        allow_none=True, metadata={"description": "a shadow run's served record"}
    )
    created_at = fields.DateTime(required=True)


class RecordDetailSchema(RecordSchema):
    inputs = fields.Raw(allow_none=True, required=True)
    outputs = fields.Raw(allow_none=True, required=True)


class FeedbackSchema(StrictSchema):
    """``{"actual": v}`` for a one-row prediction, or ``{"actuals": [v, ...]}``, one per row
    (null skips a row)."""

    actual = fields.Raw(allow_none=False, metadata={"example": "setosa"})
    actuals = fields.List(fields.Raw(allow_none=True), validate=validate.Length(min=1))

    @validates_schema
    def one_of_them(self, data: dict, **_kwargs: object) -> None:
        if ("actual" in data) == ("actuals" in data):
            raise ValidationError('Send either "actual" or "actuals".', "_schema")


class FeedbackRowSchema(Schema):
    row = fields.Integer(required=True, metadata={"description": "0-based, as in outputs"})
    actual = fields.Raw(required=True)
    predicted = fields.Raw(
        allow_none=True, required=True, metadata={"description": "null when not stored"}
    )


class FeedbackResultSchema(Schema):
    record_id = fields.Integer(required=True)
    rows = fields.List(fields.Nested(FeedbackRowSchema), required=True)


class RecordPageSchema(Schema):
    items = fields.List(fields.Nested(RecordSchema), required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)


class RecordQuerySchema(PageQuerySchema):
    model = fields.String(validate=validate.Length(max=64))
    since = fields.AwareDateTime(metadata={"example": "2026-11-01T00:00:00Z"})
    until = fields.AwareDateTime()
    status = fields.String(validate=validate.OneOf(["ok", "error", "incomplete"]))
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))
