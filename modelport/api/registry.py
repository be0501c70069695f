"""``/api/v1/models``: the registry — models, versions, schemas and aliases. Reading is for
anyone who may use the model; changing it is for administrators."""

from __future__ import annotations

from functools import wraps
from typing import Any

from flask import abort, request
from flask_login import current_user
from werkzeug.datastructures import FileStorage

from modelport.api.blueprint import Blueprint
from modelport.api.model_schemas import (
    AliasResultSchema,
    AliasSchema,
    CanaryResultSchema,
    CanarySchema,
    InputSchemaSchema,
    ModelCreateSchema,
    ModelDetailSchema,
    ModelPageSchema,
    ModelSchema,
    ModelUpdateSchema,
    VersionSchema,
)
from modelport.api.parser import JsonBodyError, parse_json_body
from modelport.api.schemas import PageQuerySchema
from modelport.auth.web.identity import AuthError, current_caller, token_scope
from modelport.config import current_settings
from modelport.errors import ApiError
from modelport.models.predictions import Source
from modelport.models.registry import RegisteredModel
from modelport.models.tokens import Scope
from modelport.ops.inputs import body_limit
from modelport.serving import access, registry

blp = Blueprint("api_models", __name__, url_prefix="/api/v1", description="Models and predictions")


PREDICT_SECURITY = [{"bearer": []}, {"session": []}, {}]


SECURITY = [{"bearer": []}, {"session": []}]


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
        "canary_share": model.canary_share,
        "shadow_share": model.shadow_share,
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
    model = registry.create_model(owner=current_user, **body)
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


def upload_limit() -> int | None:
    """A model file's body, for administrators (others keep the general limit)."""
    if not current_caller().is_admin:
        return None
    return current_settings().upload_max_bytes


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


@blp.post("/models/<name>/versions")
@admin_only
@body_limit(upload_limit)
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
                        "evaluation": {
                            "type": "string",
                            "format": "binary",
                            "description": "held-out rows (CSV) with their true target: "
                            "the version's report is computed on them",
                        },
                        "target": {
                            "type": "string",
                            "description": "the evaluation CSV's target column (default _target)",
                        },
                    },
                }
            }
        },
    },
)
def upload_version(name: str) -> dict[str, Any]:
    """Add a version from a skops/ONNX file and a sample CSV of training data, with held-out
    rows for its report if given (admin)."""
    model = _model_or_404(name)
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "Send multipart/form-data.")
    artifact = _upload("artifact")
    sample = _upload("sample")
    evaluation = _upload("evaluation", required=False)
    metrics = None
    if raw := request.form.get("metrics"):
        try:
            metrics = parse_json_body(raw.encode())
        except JsonBodyError as exc:
            raise ApiError(422, "invalid_input", f"metrics: {exc}") from None
        if not isinstance(metrics, dict):
            raise ApiError(422, "invalid_input", "metrics must be a JSON object.")
    alias = request.form.get("alias", "").strip()
    version = registry.register_version(
        model,
        artifact.stream.read(),
        filename=artifact.filename or "",
        sample=sample.stream.read(),
        created_by=current_user,
        metrics=metrics,
        aliases=(alias,) if alias else (),
        evaluation=evaluation.stream.read() if evaluation else None,
        evaluation_target=request.form.get("target", "").strip() or None,
    )
    return version_detail(model, version)


def _version_or_404(model: RegisteredModel, number: int) -> Any:
    version = registry.get_version(model, number)
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
    registry.update_schema(version, body)
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
    registry.set_alias(model, alias, body["version"])
    return {"alias": alias, "version": body["version"]}


@blp.delete("/models/<name>/aliases/<alias>")
@admin_only
@blp.response(204)
@blp.errors(404)
@blp.doc(security=SECURITY)
def delete_alias(name: str, alias: str) -> None:
    """Remove an alias (admin)."""
    model = _model_or_404(name)
    registry.delete_alias(model, alias)


def canary_state(model: RegisteredModel) -> dict[str, Any]:
    """A model's canary and shadow: their shares and the versions their aliases name."""
    aliases = model.alias_map()
    return {
        "model": model.name,
        "share": model.canary_share,
        "shadow_share": model.shadow_share,
        "champion": aliases.get(registry.CHAMPION),
        "challenger": aliases.get(registry.CHALLENGER),
        "shadow": aliases.get(registry.SHADOW),
    }


@blp.put("/models/<name>/canary")
@admin_only
@blp.arguments(CanarySchema)
@blp.response(200, CanaryResultSchema)
@blp.errors(404, 409, 413, 422)
@blp.doc(security=SECURITY)
def put_canary(body: dict[str, Any], name: str) -> dict[str, Any]:
    """Set the canary share (callers who get the ``challenger`` version) and/or the shadow
    share (requests also run on the ``shadow`` version), 0–1 (admin)."""
    model = _model_or_404(name)
    registry.set_shares(
        model,
        canary=body.get("share"),
        shadow=body.get("shadow_share"),
        clear_canary="share" in body and body["share"] is None,
        clear_shadow="shadow_share" in body and body["shadow_share"] is None,
    )
    return canary_state(model)


@blp.post("/models/<name>/canary/promote")
@admin_only
@blp.response(200, CanaryResultSchema)
@blp.errors(404, 409)
@blp.doc(security=SECURITY)
def promote(name: str) -> dict[str, Any]:
    """The challenger becomes the champion; the canary ends (admin)."""
    model = _model_or_404(name)
    registry.promote(model)
    return canary_state(model)


@blp.post("/models/<name>/canary/rollback")
@admin_only
@blp.response(200, CanaryResultSchema)
@blp.errors(404, 409)
@blp.doc(security=SECURITY)
def rollback(name: str) -> dict[str, Any]:
    """One step back: end the canary (the challenger alias and the share go); without one,
    undo the last promote, the champion before it serving again (admin)."""
    model = _model_or_404(name)
    registry.rollback(model)
    return canary_state(model)
