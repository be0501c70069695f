"""``/api/v1/models``: the registry, and predictions from any registered version."""

from __future__ import annotations

import io
import json
from functools import wraps
from typing import IO, Any

from flask import Response, abort, current_app, g, request, stream_with_context
from flask_login import current_user
from werkzeug.datastructures import FileStorage

from modelport.api.blueprint import Blueprint
from modelport.api.model_schemas import (
    PREDICT_REQUEST,
    AliasResultSchema,
    AliasSchema,
    InputSchemaSchema,
    ModelCreateSchema,
    ModelDetailSchema,
    ModelPageSchema,
    ModelSchema,
    ModelUpdateSchema,
    PredictResponseSchema,
    VersionSchema,
)
from modelport.api.parser import JsonBodyError, parse_json_body
from modelport.api.schemas import PageQuerySchema
from modelport.api.v1 import MAX_ID
from modelport.auth.web.identity import AuthError, current_caller, token_scope
from modelport.errors import ApiError
from modelport.extensions import client_address
from modelport.models.predictions import Source
from modelport.models.registry import RegisteredModel
from modelport.models.tokens import Scope
from modelport.serving import access, csvcells, csvstream, prediction, registry
from modelport.serving.inference import Result
from modelport.serving.limits import COUNTED, prediction_limit
from modelport.serving.prediction import Call
from modelport.serving.predictor import Served

blp = Blueprint("api_models", __name__, url_prefix="/api/v1", description="Models and predictions")

PREDICT_SECURITY = [{"bearer": []}, {"session": []}, {}]
SECURITY = [{"bearer": []}, {"session": []}]


def csv_200(schema: type) -> dict:
    """A 200 response documented as JSON (``schema``) or the same data as CSV."""
    return {
        "200": {
            "content": {
                "application/json": {"schema": schema},
                "text/csv": {"schema": {"type": "string"}},
            }
        }
    }


# ---- access -----------------------------------------------------------------------------
# Who may use a model is serving.access's one rule; here its answers become HTTP.


def _model_or_404(name: str) -> RegisteredModel:
    # ModelNotFound becomes the 404 in errors.py.
    return access.model_for(current_caller(), name, Source.API)


def _require_admin() -> None:
    if not current_user.is_authenticated:
        raise AuthError("Sign in or send Authorization: Bearer <token>.")
    if not current_caller().is_admin:
        abort(403, description="Only administrators may change the registry.")


def admin_only(view: Any) -> Any:
    """Registry changes: admins only (a token needs the full scope, as every endpoint not
    marked otherwise does). Checked before the body is read, so that a caller without the
    right learns nothing about the body expected."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _require_admin()
        return view(*args, **kwargs)

    return wrapped


def _registry_error(exc: registry.RegistryError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


# ---- registry -----------------------------------------------------------------------------


def model_summary(model: RegisteredModel) -> dict[str, Any]:
    """A model as the API lists it."""
    serving = registry.served_version(model)
    return {
        "name": model.name,
        "title": model.title,
        "description": model.description,
        "task": model.task,
        "visibility": model.visibility,
        "aliases": model.alias_map(),
        "serving_version": serving.number if serving else None,
        "created_at": model.created_at,
    }


def version_detail(model: RegisteredModel, version: Any) -> dict[str, Any]:
    """A version with its runtime, parity figures, schema and metrics."""
    return {
        "number": version.number,
        "flavor": version.flavor,
        "runtime": version.runtime,
        "parity": version.parity,
        "status": version.status,
        "artifact_sha256": version.artifact_sha256,
        "input_schema": version.input_schema,
        "output_schema": version.output_schema,
        "metrics": version.metrics,
        "params": version.params,
        "aliases": sorted(a.alias for a in model.aliases if a.version_id == version.id),
        "created_at": version.created_at,
    }


@blp.get("/models")
@token_scope(Scope.PREDICT.value)
@blp.arguments(PageQuerySchema, location="query")
@blp.response(200, ModelPageSchema)
@blp.errors(422)
@blp.doc(security=PREDICT_SECURITY)
def list_models(query: dict[str, int]) -> dict[str, Any]:
    """Models the caller may use: public ones, and private ones when signed in."""
    models = access.visible_models(current_caller(), Source.API)
    start = (query["page"] - 1) * query["page_size"]
    return {
        "items": [model_summary(m) for m in models[start : start + query["page_size"]]],
        "page": query["page"],
        "page_size": query["page_size"],
        "total": len(models),
    }


@blp.get("/models/<name>")
@token_scope(Scope.PREDICT.value)
@blp.response(200, ModelDetailSchema)
@blp.errors(404)
@blp.doc(security=PREDICT_SECURITY)
def get_model(name: str) -> dict[str, Any]:
    """One model with its versions, aliases, schemas, metrics and runtimes."""
    model = _model_or_404(name)
    return model_summary(model) | {"versions": [version_detail(model, v) for v in model.versions]}


@blp.post("/models")
@admin_only
@blp.arguments(ModelCreateSchema)
@blp.response(201, ModelSchema)
@blp.errors(409, 413, 422)
@blp.doc(security=SECURITY)
def create_model(body: dict[str, Any]) -> dict[str, Any]:
    """Register a new model (admin)."""
    try:
        model = registry.create_model(owner=current_user, **body)
    except registry.RegistryError as exc:
        raise _registry_error(exc) from None
    return model_summary(model)


@blp.patch("/models/<name>")
@admin_only
@blp.arguments(ModelUpdateSchema)
@blp.response(200, ModelSchema)
@blp.errors(404, 413, 422)
@blp.doc(security=SECURITY)
def update_model(body: dict[str, Any], name: str) -> dict[str, Any]:
    """Change a model's title, description or visibility (admin)."""
    model = _model_or_404(name)
    return model_summary(registry.update_model(model, **body))


def _upload(field: str, required: bool = True) -> FileStorage | None:
    file = request.files.get(field)
    if file is None or not file.filename:
        if required:
            raise ApiError(
                422,
                "invalid_input",
                f"Send the {field} file as multipart/form-data.",
                [{"row": None, "field": field, "code": "required", "message": "Missing file."}],
            )
        return None
    return file


PREDICT_ENDPOINTS = {f"{blp.name}.predict", f"{blp.name}.predict_version"}


@blp.url_value_preprocessor
def _upload_limit(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    """Give an administrator's upload the upload limit before any hook reads the body."""
    # URL preprocessors run before every before_request hook, and the CSRF check of a
    # cookie-authenticated upload reads the multipart form: under the general body limit
    # (MAX_CONTENT_LENGTH) an admin's model file over 2 MiB was refused with 413.
    settings = current_app.config["MODELPORT"]
    if endpoint == f"{blp.name}.upload_version" and current_caller().is_admin:
        request.max_content_length = settings["UPLOAD_MAX_BYTES"]
    elif endpoint in PREDICT_ENDPOINTS and request.mimetype == "text/csv":
        # CSV uploads have their own, larger limit (MODELPORT_CSV_MAX_BYTES).
        request.max_content_length = settings["CSV_MAX_BYTES"]


@blp.post("/models/<name>/versions")
@admin_only
@blp.response(201, VersionSchema)
@blp.errors(404, 409, 413, 415, 422)
@blp.doc(
    security=SECURITY,
    requestBody={
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["artifact", "sample"],
                    "properties": {
                        "artifact": {"type": "string", "format": "binary"},
                        "sample": {"type": "string", "format": "binary"},
                        "alias": {"type": "string"},
                        "metrics": {"type": "string", "description": "JSON object"},
                    },
                }
            }
        },
    },
)
def upload_version(name: str) -> dict[str, Any]:
    """Add a version from a skops/ONNX file and a sample CSV of training data (admin)."""
    # Model files are larger than ordinary bodies; this route alone takes them.
    request.max_content_length = current_app.config["MODELPORT"]["UPLOAD_MAX_BYTES"]
    model = _model_or_404(name)
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "Send multipart/form-data.")
    artifact = _upload("artifact")
    sample = _upload("sample")
    metrics = None
    if raw := request.form.get("metrics"):
        try:
            metrics = parse_json_body(raw.encode())
        except JsonBodyError as exc:
            raise ApiError(422, "invalid_input", f"metrics: {exc}") from None
        if not isinstance(metrics, dict):
            raise ApiError(422, "invalid_input", "metrics must be a JSON object.")
    alias = request.form.get("alias", "").strip()
    try:
        version = registry.register_version(
            model,
            artifact.stream.read(),
            filename=artifact.filename or "",
            sample=sample.stream.read(),
            created_by=current_user,
            metrics=metrics,
            aliases=(alias,) if alias else (),
        )
    except registry.RegistryError as exc:
        raise _registry_error(exc) from None
    return version_detail(model, version)


def _version_or_404(model: RegisteredModel, number: int) -> Any:
    version = registry.get_version(model, number) if number <= MAX_ID else None
    if version is None:
        raise ApiError(404, "version_not_found", f"{model.name} has no version {number}.")
    return version


@blp.get("/models/<name>/versions/<int:number>")
@token_scope(Scope.PREDICT.value)
@blp.response(200, VersionSchema)
@blp.errors(404)
@blp.doc(security=PREDICT_SECURITY)
def get_version(name: str, number: int) -> dict[str, Any]:
    """One version: runtime, parity figures, input schema, metrics."""
    model = _model_or_404(name)
    return version_detail(model, _version_or_404(model, number))


@blp.put("/models/<name>/versions/<int:number>/schema")
@admin_only
@blp.arguments(InputSchemaSchema)
@blp.response(200, VersionSchema)
@blp.errors(404, 413, 422)
@blp.doc(security=SECURITY)
def edit_schema(body: dict[str, Any], name: str, number: int) -> dict[str, Any]:
    """Edit a version's input schema: types, ranges, categories, descriptions (admin)."""
    model = _model_or_404(name)
    version = _version_or_404(model, number)
    try:
        registry.update_schema(version, body)
    except registry.RegistryError as exc:
        raise _registry_error(exc) from None
    return version_detail(model, version)


@blp.post("/models/<name>/versions/<int:number>/archive")
@admin_only
@blp.response(200, VersionSchema)
@blp.errors(404)
@blp.doc(security=SECURITY)
def archive(name: str, number: int) -> dict[str, Any]:
    """Stop serving a version; its records stay and aliases on it are removed (admin)."""
    model = _model_or_404(name)
    _version_or_404(model, number)
    version = registry.archive_version(model, number)
    return version_detail(model, version)


@blp.put("/models/<name>/aliases/<alias>")
@admin_only
@blp.arguments(AliasSchema)
@blp.response(200, AliasResultSchema)
@blp.errors(404, 409, 413, 422)
@blp.doc(security=SECURITY)
def put_alias(body: dict[str, Any], name: str, alias: str) -> dict[str, Any]:
    """Point an alias such as ``champion`` at a version (admin); every worker follows."""
    model = _model_or_404(name)
    try:
        registry.set_alias(model, alias, body["version"])
    except registry.RegistryError as exc:
        raise _registry_error(exc) from None
    return {"alias": alias, "version": body["version"]}


@blp.delete("/models/<name>/aliases/<alias>")
@admin_only
@blp.response(204)
@blp.errors(404)
@blp.doc(security=SECURITY)
def delete_alias(name: str, alias: str) -> None:
    """Remove an alias (admin)."""
    model = _model_or_404(name)
    try:
        registry.delete_alias(model, alias)
    except registry.RegistryError as exc:
        raise _registry_error(exc) from None


# ---- prediction ---------------------------------------------------------------------------


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
    request.max_content_length = current_app.config["MODELPORT"]["CSV_MAX_BYTES"]
    return request.stream


def _csv_answer(answer: csvstream.CsvAnswer) -> Response:
    response = Response(stream_with_context(answer.chunks), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{answer.served.name}-predictions.csv"'
    )
    response.headers["X-Rows"] = str(answer.rows)
    response.headers["X-Accel-Buffering"] = "no"  # streamed: nginx passes it on as it comes
    return response


def _predict(name: str, version: int | None = None, alias: str | None = None) -> Response:
    call = Call(
        current_caller(),
        name,
        Source.API,
        g.request_id,
        address=client_address(),
        version=version,
        alias=alias,
        counted=bool(request.environ.get(COUNTED)),
    )
    settings = current_app.config["MODELPORT"]
    if request.mimetype == "text/csv":
        call.channel = Source.CSV
        return _csv_answer(prediction.predict_csv(call, _csv_body))
    result = prediction.predict(
        call, lambda _served: _read_predict_body(), max_rows=settings["MAX_BATCH_ROWS"]
    )
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
@blp.doc_only(
    blp.response(200, PredictResponseSchema, content_type="application/json"),
    blp.errors(404, 406, 413, 415, 422, 503),
    blp.doc(**_PREDICT_DOC, responses=csv_200(PredictResponseSchema)),
)
def predict_version(name: str, number: int) -> Response:
    """Predict with one version of a model."""
    if number > MAX_ID:
        raise ApiError(404, "model_not_found", f"{name} has no version {number}.")
    return _predict(name, version=number)


__all__ = ["blp", "inputs_from_body", "prediction_json"]
