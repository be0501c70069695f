"""Open Inference Protocol v2 (REST) at ``/v2``: health, metadata, readiness and inference.

The contract is ``docs/inference-protocol.md`` with the binary tensor data
extension; tensors are parsed and encoded by :mod:`modelport.api.tensors`. Inference goes
through the same service as the JSON API (:func:`modelport.serving.prediction.predict`),
so access, rate limits, validation and the prediction record are shared. Errors are rendered by
:mod:`modelport.errors` as ``{"error": "message"}``: 400 bad input, 404 unknown model (or a
private one without a token), 503 not ready.

Only an ``Authorization`` header identifies a caller here. /v2 is exempt from CSRF, so a
session cookie must not open private models: a cross-site form could otherwise predict in
the member's name.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import numpy as np
from flask import Blueprint, Response, abort, g, request
from sqlalchemy import select

from modelport.api.tensors import (
    HEADER_LENGTH,
    InferRequest,
    ProtocolError,
    Tensor,
    check_requested_outputs,
    encode_infer_response,
    parse_infer_request,
)
from modelport.api.v2_inputs import input_metadata, matrix_input
from modelport.auth.web.identity import current_caller, token_scope
from modelport.config import Settings, current_settings
from modelport.extensions import db, limiter, login_manager
from modelport.models.predictions import Source
from modelport.models.registry import ModelVersion, VersionStatus
from modelport.models.tokens import Scope
from modelport.ops import health
from modelport.serving import access, prediction
from modelport.serving.limits import prediction_limit
from modelport.serving.predictor import Served
from modelport.serving.schema import InputSchema
from modelport.serving.web.calls import after_answer, request_call

bp = Blueprint("v2", __name__, url_prefix="/v2")

SERVER_NAME = "modelport"
EXTENSIONS = ["binary_tensor_data"]
_MAX_DECIMALS = 22
_POWERS_OF_TEN = 10.0 ** np.arange(_MAX_DECIMALS + 1)

try:
    VERSION = importlib.metadata.version("modelport")
except importlib.metadata.PackageNotFoundError:  # running from a checkout without install
    VERSION = "0+unknown"


@bp.before_request
def identify_by_header_only() -> None:
    """Treat a request without ``Authorization`` as anonymous, whatever cookies it carries."""
    if not request.headers.get("Authorization"):
        g._login_user = login_manager.anonymous_user()  # Flask-Login's; tests/test_upstream.py


# ---- health and server metadata -------------------------------------------------------------


@bp.get("/health/live", endpoint="live")
@token_scope(Scope.PREDICT.value)
@limiter.exempt
def live() -> dict[str, bool]:
    """The server answers."""
    return {"live": True}


@bp.get("/health/ready", endpoint="ready")
@token_scope(Scope.PREDICT.value)
@limiter.exempt
def ready() -> dict[str, bool]:
    """Ready when the database answers and is at this code's migration (as ``/readyz``)."""
    body, status = health.readyz()
    if status != 200:
        problems = "; ".join(f"{k}: {v}" for k, v in body["checks"].items() if v != "ok")
        abort(503, description=f"The server is not ready: {problems}.")
    return {"ready": True}


@bp.get("", endpoint="server_metadata")
@token_scope(Scope.PREDICT.value)
def server_metadata() -> dict[str, Any]:
    """Server name, version and the protocol extensions it supports."""
    return {"name": SERVER_NAME, "version": VERSION, "extensions": EXTENSIONS}


# ---- model references and access ------------------------------------------------------------


def _reference(ref: str, version: str | None) -> tuple[str, int | None, str | None]:
    """(name, version, alias) of ``name``, ``name@alias`` or a version of ``name``."""
    name, _, alias = ref.partition("@")
    number = None
    if version is not None:
        if alias:
            abort(
                400,
                description=f"Give either an alias ({ref}) or a version in the path, not both.",
            )
        if not (version.isascii() and version.isdigit()) or len(version) > 10:
            abort(404, description=f"{name} has no version {version}; versions are numbers.")
        number = int(version)
    return name, number, alias or None


def served_for_caller(ref: str, version: str | None = None) -> Served:
    """The version ``ref`` names that the caller may use (ModelNotFound: errors.py's 404)."""
    name, number, alias = _reference(ref, version)
    return access.served_for(current_caller(), name, channel=Source.V2, version=number, alias=alias)


# ---- model metadata and readiness ---------------------------------------------------------


def _label_datatype(classes: list | None) -> str:
    if classes and all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if classes is None or all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "INT64"
    return "BYTES"


def output_metadata(served: Served) -> list[dict[str, Any]]:
    """``label`` and ``probabilities`` (classification) or ``value`` (regression)."""
    if served.task != "classification":
        return [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    outputs = [{"name": "label", "datatype": _label_datatype(served.classes), "shape": [-1]}]
    # A native classifier without predict_proba gives labels only.
    if getattr(served.runtime, "has_proba", True):
        width = len(served.classes) if served.classes else -1
        outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, width]})
    return outputs


def _ready_versions(served: Served) -> list[str]:
    numbers = db.session.scalars(
        select(ModelVersion.number)
        .where(
            ModelVersion.model_id == served.model_id,
            ModelVersion.status == VersionStatus.READY.value,
        )
        .order_by(ModelVersion.number)
    )
    return [str(n) for n in numbers]


@bp.get("/models/<ref>", endpoint="model_metadata")
@bp.get("/models/<ref>/versions/<version>", endpoint="version_metadata")
@token_scope(Scope.PREDICT.value)
def model_metadata(ref: str, version: str | None = None) -> dict[str, Any]:
    """Inputs, outputs, platform and ready versions of a model."""
    served = served_for_caller(ref, version)
    return {
        "name": served.name,
        "versions": _ready_versions(served),
        "platform": served.platform,
        "inputs": input_metadata(served.schema),
        "outputs": output_metadata(served),
        "parameters": {
            "version": str(served.version),
            "task": served.task,
            "feature_names": served.schema.names,
            "classes": served.classes,
        },
    }


@bp.get("/models/<ref>/ready", endpoint="model_ready")
@bp.get("/models/<ref>/versions/<version>/ready", endpoint="version_ready")
@token_scope(Scope.PREDICT.value)
def model_ready(ref: str, version: str | None = None) -> dict[str, Any]:
    """200 when the model is loaded and can predict (404 unknown, 503 not loadable)."""
    served = served_for_caller(ref, version)
    return {"name": served.name, "ready": True}


# ---- inference ----------------------------------------------------------------------------


def decimal_float64(values: np.ndarray) -> np.ndarray:
    """FP16/FP32 values as the float64 nearest their shortest decimal form (5.1f -> 5.1).

    A client that writes 5.1 into a float32 array means 5.1, not 5.099999904632568: the
    record shows what was sent, float64 models see the same value as from the JSON API, and
    a training maximum of 7.9 is not "exceeded" by 7.9 sent as FP32. Values that need more
    than 22 decimal places (below about 1e-13) are kept exact.
    """
    flat = values.reshape(-1)
    exact = flat.astype(np.float64)
    result = exact.copy()
    # Whole numbers are exact decimals already; a value with a fraction needs a decimal place.
    pending = np.flatnonzero(exact != np.trunc(exact))
    with np.errstate(all="ignore"):
        # Digits before the point, minus one: 0 for 5.1, 2 for 123.4, -2 for 0.051.
        magnitude = np.floor(np.log10(np.abs(exact[pending]))).astype(np.int64)
    for decimals in range(1, _MAX_DECIMALS + 1):
        if not pending.size:
            break
        # Powers of ten up to 1e22 are exact in float64, so the candidate is the float64
        # nearest to the value rounded to ``decimals`` places.
        power = _POWERS_OF_TEN[decimals]
        candidate = np.round(exact[pending] * power) / power
        same = candidate.astype(values.dtype) == flat[pending]
        result[pending[same]] = candidate[same]
        # float32 round-trips with 9 significant digits: past them, keep the exact value.
        keep = ~same & (magnitude + 1 + decimals < 9)
        pending = pending[keep]
        magnitude = magnitude[keep]
    return result.reshape(values.shape)


def _column(data: np.ndarray, datatype: str) -> np.ndarray | list:
    """One feature's values in the form the schema validation takes fastest."""
    if datatype in ("FP16", "FP32"):
        return decimal_float64(data)
    if datatype == "BYTES":
        return data.tolist()
    return data


def columns_from_tensors(schema: InputSchema, tensors: list[Tensor]) -> dict[str, Any]:
    """Columnar inputs ``{feature: values}`` from one [N, n] tensor or one tensor per feature."""
    names = schema.names
    if len(tensors) == 1 and tensors[0].name not in names:
        tensor = tensors[0]
        if not matrix_input(schema):
            raise ProtocolError(
                f"input {tensor.name!r} is not a feature of this model; it has text or "
                f"category features, so send one tensor per feature: {', '.join(names)}"
            )
        if len(tensor.shape) != 2 or tensor.shape[1] != len(names):
            raise ProtocolError(
                f"input {tensor.name!r} has shape {tensor.shape}; send one tensor of shape "
                f"[rows, {len(names)}] with the features in this order: {', '.join(names)}"
            )
        return {name: _column(tensor.data[:, j], tensor.datatype) for j, name in enumerate(names)}
    columns: dict[str, Any] = {}
    for tensor in tensors:
        shape = tensor.shape
        if not (len(shape) == 1 or len(shape) == 2 and shape[1] == 1):
            raise ProtocolError(
                f"input {tensor.name!r} has shape {shape}; a tensor per feature has shape "
                "[rows] or [rows, 1]"
                + (
                    f", or send one tensor of shape [rows, {len(names)}]"
                    if matrix_input(schema)
                    else ""
                )
            )
        columns[tensor.name] = _column(tensor.data.reshape(-1), tensor.datatype)
    return columns


def _labels(labels: np.ndarray, datatype: str) -> tuple[str, np.ndarray]:
    if datatype == "INT64" and labels.dtype.kind in "iu":
        return datatype, labels.astype(np.int64)
    if datatype == "BOOL" and labels.dtype.kind == "b":
        return datatype, labels
    # Text labels, or labels of a type the metadata could not foresee: as text.
    return "BYTES", np.array([str(v) for v in labels.tolist()], dtype=object)


def output_tensors(served: Served, prediction: Any) -> list[Tensor]:
    """The prediction as the tensors the metadata promises."""
    if prediction.values is not None:
        values = np.asarray(prediction.values, dtype=np.float64)
        return [Tensor("value", "FP64", list(values.shape), values)]
    labels = np.asarray(prediction.labels).reshape(-1)
    datatype, labels = _labels(labels, _label_datatype(served.classes))
    tensors = [Tensor("label", datatype, [len(labels)], labels)]
    if prediction.probabilities is not None:
        probabilities = np.asarray(prediction.probabilities, dtype=np.float64)
        tensors.append(Tensor("probabilities", "FP64", list(probabilities.shape), probabilities))
    return tensors


def infer_body_limit(settings: Settings, features: int) -> int:
    """The largest inference body for a model of ``features`` inputs: a full batch must fit,
    at up to 24 bytes per element as JSON text (8 in binary)."""
    return max(settings.max_content_length, settings.max_batch_rows * features * 24 + 65536)


def _parse(served: Served, max_rows: int) -> tuple[InferRequest, dict[str, Any]]:
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        abort(415, description=f"Content-Encoding {encoding} is not supported; send it plain.")
    try:
        parsed = parse_infer_request(
            request.get_data(cache=False),
            request.headers.get(HEADER_LENGTH),
            max_elements=max_rows * len(served.schema.features),
        )
        check_requested_outputs(parsed, [o["name"] for o in output_metadata(served)])
        return parsed, columns_from_tensors(served.schema, parsed.inputs)
    except ProtocolError as exc:
        abort(400, description=str(exc))


@bp.post("/models/<ref>/infer", endpoint="infer")
@bp.post("/models/<ref>/versions/<version>/infer", endpoint="version_infer")
@token_scope(Scope.PREDICT.value)
@prediction_limit
def infer(ref: str, version: str | None = None) -> Response:
    """Predict: tensors in, ``label``/``probabilities`` or ``value`` tensors out."""
    name, number, alias = _reference(ref, version)
    settings = current_settings()
    max_rows = settings.max_batch_rows
    parsed: list[InferRequest] = []

    def read(served: Served) -> dict[str, Any]:
        # The tensors are read once the version (and so its width) is known.
        request.max_content_length = infer_body_limit(settings, len(served.schema.features))
        request_, columns = _parse(served, max_rows)
        parsed.append(request_)
        return columns

    call = request_call(name, Source.V2, version=number, alias=alias)
    result = prediction.predict(call, read, max_rows=max_rows)
    after_answer(result)
    served = result.served
    try:
        body, headers = encode_infer_response(
            model_name=served.name,
            model_version=str(served.version),
            request_id=parsed[0].id,
            outputs=output_tensors(served, result.raw),
            request=parsed[0],
            # Which variant answered a request naming no version (champion or challenger).
            parameters={"variant": served.variant} if served.variant else None,
        )
    except ProtocolError as exc:  # e.g. probabilities asked of a model that gave none
        abort(400, description=str(exc))
    content_type = headers.pop("Content-Type")
    return Response(body, content_type=content_type, headers=headers)
