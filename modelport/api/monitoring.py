"""``/api/v1/models/<name>/monitoring`` (a model's volume, latency, errors, predictions and
accuracy over a time window, ``analytics.monitoring``), ``/api/v1/models/<name>/drift``
(its recent inputs against its training sample, ``analytics.drift``) and
``/api/v1/models/<name>/report`` (a version's evaluation stored at registration,
``analytics.report``)."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from modelport.analytics import drift, monitoring, report
from modelport.api.registry import PREDICT_SECURITY, blp
from modelport.api.schemas import StrictSchema
from modelport.auth.web.identity import current_caller, scope_required
from modelport.models.tokens import Scope
from modelport.models.types import MAX_INT_ID


class MonitoringQuerySchema(StrictSchema):
    since = fields.AwareDateTime(metadata={"example": "2026-12-01T00:00:00Z"})
    until = fields.AwareDateTime(metadata={"example": "2026-12-02T00:00:00Z"})
    version = fields.Integer(validate=validate.Range(min=1, max=MAX_INT_ID))


@blp.get("/models/<name>/monitoring")
@scope_required(Scope.PREDICT.value)
@blp.arguments(MonitoringQuerySchema, location="query")
@blp.response(200, description="The model's monitoring over the window (docs/monitoring.md)")
@blp.errors(404, 422)
@blp.doc(security=PREDICT_SECURITY)
def model_monitoring(query: dict[str, Any], name: str) -> dict[str, Any]:
    """Volume, latency, errors, the predicted distribution and accuracy of a model you may
    use (signed in, or a token), per time bucket (minute, hour or day, from the window's length; default: the last
    24 hours); admins also see the top users and tokens."""
    span = monitoring.window(query.get("since"), query.get("until"), version=query.get("version"))
    return monitoring.monitor(current_caller(), name, span)


class DriftQuerySchema(MonitoringQuerySchema):
    method = fields.String(load_default="auto", validate=validate.OneOf(drift.METHODS))
    over_time = fields.Boolean(
        load_default=False,
        metadata={"description": "also the share of features drifted per day (or hour)"},
    )


@blp.get("/models/<name>/drift")
@scope_required(Scope.PREDICT.value)
@blp.arguments(DriftQuerySchema, location="query")
@blp.response(200, description="Per feature, the window's inputs against the training sample")
@blp.errors(404, 422)
@blp.doc(security=PREDICT_SECURITY)
def model_drift(query: dict[str, Any], name: str) -> dict[str, Any]:
    """Data drift of a model you may use: each feature's stored inputs over the window
    (default: the last 24 hours) against the version's training sample (``version``, else
    the one it serves), with Evidently's default tests or PSI (``method=psi``)."""
    span = monitoring.window(query.get("since"), query.get("until"), version=query.get("version"))
    return drift.drift(
        current_caller(), name, span, method=query["method"], over_time=query["over_time"]
    )


class ReportQuerySchema(StrictSchema):
    version = fields.Integer(
        validate=validate.Range(min=1, max=MAX_INT_ID),
        metadata={"description": "default: the version the model serves, else its newest"},
    )
    compare = fields.Integer(
        validate=validate.Range(min=1, max=MAX_INT_ID),
        metadata={"description": "a second version, reported beside the first"},
    )


@blp.get("/models/<name>/report")
@scope_required(Scope.PREDICT.value)
@blp.arguments(ReportQuerySchema, location="query")
@blp.response(200, description="The version's evaluation stored at registration (docs/reports.md)")
@blp.errors(404, 422)
@blp.doc(security=PREDICT_SECURITY)
def model_report(query: dict[str, Any], name: str) -> dict[str, Any]:
    """The report of a model you may use: metrics, curves and permutation importance of a
    version on the held-out rows given at registration (``report`` null for a version
    registered without any), and of a second version with ``compare``."""
    return report.model_report(
        current_caller(), name, version=query.get("version"), compare=query.get("compare")
    )
