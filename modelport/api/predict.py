"""``/api/v1/models/<ref>/predict``: predictions from the JSON API, JSON or CSV in, JSON or
CSV out, through the one prediction service (``modelport.serving.prediction``). The hot path
(``fastpath``) answers most token predictions without Flask, with this module's answer."""

from __future__ import annotations

import io
import json
from typing import IO, Any

from flask import Response, g, request

from modelport.api.blueprint import csv_200
from modelport.api.model_schemas import (
    PREDICT_REQUEST,
    PredictResponseSchema,
)
from modelport.api.parser import JsonBodyError, parse_json_body
from modelport.api.registry import PREDICT_SECURITY, blp
from modelport.auth.web.identity import token_scope
from modelport.config import current_settings
from modelport.errors import ApiError
from modelport.models.predictions import Source
from modelport.models.tokens import Scope
from modelport.ops.inputs import body_limit
from modelport.responses import csv_answer
from modelport.serving import csvcells, prediction
from modelport.serving.inference import Result
from modelport.serving.limits import prediction_limit
from modelport.serving.predictor import Served
from modelport.serving.web.calls import after_answer, request_call


def csv_limit() -> int | None:
    """A CSV upload's body: ``MODELPORT_CSV_MAX_BYTES`` (JSON keeps the general limit)."""
    if request.mimetype != "text/csv":
        return None
    return current_settings().csv_max_bytes


def _wants_csv() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    if request.mimetype == "text/csv":
        # A CSV upload answers CSV unless JSON is asked for by name: ``in`` would also match
        # the */* that curl and requests send by default, and refuse their uploads with 406.
        named = {value.lower() for value, quality in request.accept_mimetypes if quality > 0}
        return best != "application/json" or "application/json" not in named
    return (
        best == "text/csv"
        and request.accept_mimetypes["text/csv"] > request.accept_mimetypes["application/json"]
    )


def prediction_json(result: Result, request_id: str) -> str:
    """The JSON answer to a prediction (docs/api.md, "The answer")."""
    served = result.served
    body = {
        "request_id": request_id,
        "model": {
            "name": served.name,
            "version": served.version,
            "alias": served.alias,
            "runtime": served.runtime.name,
            "variant": served.variant,
        },
        "predictions": result.predictions,
        "warnings": result.warnings,
        "timing_ms": result.timing_ms,
        "record_id": result.record_id,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _json_response(result: Result) -> Response:
    return Response(prediction_json(result, g.request_id), mimetype="application/json")


def _csv_response(result: Result) -> Response:
    buffer = io.StringIO()
    writer = csvcells.writer(buffer)
    rows = result.predictions
    classes = list(rows[0].get("probabilities", {})) if rows else []
    header = ["prediction", *[f"probability_{c}" for c in classes]]
    writer.writerow(header)
    for row in rows:
        if "value" in row:
            writer.writerow([row["value"]])
        else:
            writer.writerow([row["label"], *[row["probabilities"][c] for c in classes]])
    return Response(buffer.getvalue(), mimetype="text/csv")


def _read_predict_body() -> Any:
    if not request.is_json:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send JSON (Content-Type: application/json) or CSV (Content-Type: text/csv).",
        )
    try:
        body = parse_json_body(request.get_data(cache=False))
    except JsonBodyError as exc:
        raise ApiError(400, "invalid_json", str(exc)) from None
    return inputs_from_body(body)


def inputs_from_body(body: Any) -> Any:
    """The ``inputs`` of a decoded predict body; 422 for any other shape of body."""
    if not isinstance(body, dict):
        raise ApiError(
            422,
            "invalid_input",
            'The body must be a JSON object: {"inputs": ...}.',
            [{"row": None, "field": None, "code": "invalid_type", "message": "Not an object."}],
        )
    unknown = sorted(set(body) - {"inputs", "parameters"})
    if unknown or "inputs" not in body:
        details = [
            {"row": None, "field": key, "code": "unknown_field", "message": "Unknown field."}
            for key in unknown
        ]
        if "inputs" not in body:
            details.insert(
                0,
                {"row": None, "field": "inputs", "code": "required", "message": "Missing field."},
            )
        raise ApiError(
            422, "invalid_input", 'The body is {"inputs": ..., "parameters"?: {}}.', details
        )
    if not isinstance(body.get("parameters", {}), dict):
        # Input errors always carry per-field details (docs/api.md, "Errors"), this one too.
        raise ApiError(
            422,
            "invalid_input",
            "parameters must be an object.",
            [
                {
                    "row": None,
                    "field": "parameters",
                    "code": "invalid_type",
                    "message": "parameters must be an object.",
                }
            ],
        )
    return body["inputs"]


def _csv_body(served: Served) -> IO[bytes]:
    """The CSV upload's body (within ``MODELPORT_CSV_MAX_BYTES``), once it may be read."""
    if not _wants_csv():
        raise ApiError(406, "not_acceptable", "A CSV upload answers CSV; JSON takes a JSON body.")
    return request.stream


def _predict(name: str, version: int | None = None, alias: str | None = None) -> Response:
    call = request_call(name, Source.API, version=version, alias=alias)
    settings = current_settings()
    if request.mimetype == "text/csv":
        call.channel = Source.CSV
        return csv_answer(prediction.predict_csv(call, _csv_body))
    result = prediction.predict(
        call, lambda _served: _read_predict_body(), max_rows=settings.max_batch_rows
    )
    after_answer(result)
    if _wants_csv():
        return _csv_response(result)
    return _json_response(result)


_PREDICT_DOC = {
    "security": PREDICT_SECURITY,
    "requestBody": PREDICT_REQUEST,
}


@blp.post("/models/<ref>/predict")
@token_scope(Scope.PREDICT.value)
@prediction_limit
@body_limit(csv_limit)
@blp.doc_only(
    blp.response(
        200,
        PredictResponseSchema,
        content_type="application/json",
        description="JSON; or text/csv with Accept: text/csv or a CSV body",
    ),
    blp.errors(404, 406, 413, 415, 422, 503),
    blp.doc(**_PREDICT_DOC, responses=csv_200(PredictResponseSchema)),
)
def predict(ref: str) -> Response:
    """Predict with a model: ``name`` (champion alias, else newest) or ``name@alias``."""
    name, _, alias = ref.partition("@")
    return _predict(name, alias=alias or None)


@blp.post("/models/<name>/versions/<int:number>/predict")
@token_scope(Scope.PREDICT.value)
@prediction_limit
@body_limit(csv_limit)
@blp.doc_only(
    blp.response(200, PredictResponseSchema, content_type="application/json"),
    blp.errors(404, 406, 413, 415, 422, 503),
    blp.doc(**_PREDICT_DOC, responses=csv_200(PredictResponseSchema)),
)
def predict_version(name: str, number: int) -> Response:
    """Predict with one version of a model."""
    return _predict(name, version=number)
