"""The Open Inference Protocol v2 endpoints in ``/api/openapi.json``.

``/v2`` is served by a plain Flask blueprint (the protocol's bodies are not the house's),
so its operations are described here by hand, after the protocol's own OpenAPI
(``open_inference_rest.yaml``), with the error statuses Modelport answers. schemathesis
reads them with the rest of the document.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from werkzeug.routing import Rule

TAG = "Open Inference Protocol v2"

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
SCALAR = {"oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]}
DATA = {
    "description": "row-major tensor data, flat or nested",
    "oneOf": [
        SCALAR,
        {"type": "array", "items": {}},
    ],
}
PARAMETERS = {"type": "object", "additionalProperties": SCALAR}
DATATYPE = {
    "type": "string",
    "enum": [
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
        "BYTES",
    ],
}
SHAPE = {"type": "array", "items": {"type": "integer", "minimum": 0}}
TENSOR_METADATA = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": DATATYPE,
        "shape": {"type": "array", "items": {"type": "integer"}},
        "parameters": {"type": "object"},
    },
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "V2Error": ERROR,
    "V2ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": TENSOR_METADATA},
            "outputs": {"type": "array", "items": TENSOR_METADATA},
            "parameters": {"type": "object"},
        },
    },
    "V2InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": PARAMETERS,
            "inputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {"type": "string"},
                        "shape": SHAPE,
                        "datatype": DATATYPE,
                        "parameters": PARAMETERS,
                        "data": DATA,
                    },
                },
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "parameters": PARAMETERS},
                },
            },
        },
        "example": {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 4],
                    "datatype": "FP32",
                    "data": [5.1, 3.5, 1.4, 0.2],
                }
            ]
        },
    },
    "V2InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "description": "variant: champion or challenger, when no version was named",
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype"],
                    "properties": {
                        "name": {"type": "string"},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "datatype": DATATYPE,
                        "parameters": {"type": "object"},
                        "data": {"type": "array", "items": {}},
                    },
                },
            },
        },
    },
}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Bad input",
        401: "Bad credentials",
        404: "No such model or version",
        413: "Body too large",
        415: "Unsupported content encoding",
        429: "Rate limited",
        503: "Not ready",
    }
    return {str(s): {"description": reasons[s], "content": _json("V2Error")} for s in statuses}


def _path(spec: APISpec, rule: str, operations: dict[str, Any]) -> None:
    # flask-smorest's apispec plugin builds paths and their parameters from a Flask rule.
    spec.path(rule=Rule(rule), operations=operations)


def _operation(summary: str, ok: dict[str, Any], *errors: int, **extra: Any) -> dict[str, Any]:
    return {
        "tags": [TAG],
        "summary": summary,
        "security": [{"bearer": []}, {}],
        "responses": {"200": ok, **_errors(*errors)},
        **extra,
    }


def document_v2(spec: APISpec) -> None:
    """Add the /v2 operations and their schemas to the API's OpenAPI document."""
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema)
    spec.tag({"name": TAG, "description": "KServe/Triton-compatible inference (REST)."})
    live = {
        "description": "Live",
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"live": {"type": "boolean"}}}
            }
        },
    }
    ready = {
        "description": "Ready",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"ready": {"type": "boolean"}, "name": {"type": "string"}},
                }
            }
        },
    }
    _path(
        spec,
        "/v2",
        {
            "get": _operation(
                "Server metadata", {"description": "Metadata", "content": _json("V2ServerMetadata")}
            )
        },
    )
    _path(spec, "/v2/health/live", {"get": _operation("Server live", live)})
    _path(spec, "/v2/health/ready", {"get": _operation("Server ready", ready, 503)})
    metadata = {"description": "Model metadata", "content": _json("V2ModelMetadata")}
    infer_ok = {
        "description": "Outputs (binary outputs follow the JSON, see the extension)",
        "content": {
            **_json("V2InferenceResponse"),
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
    infer_body = {"required": True, "content": _json("V2InferenceRequest")}
    for prefix in ("/v2/models/<model_name>", "/v2/models/<model_name>/versions/<model_version>"):
        _path(spec, prefix, {"get": _operation("Model metadata", metadata, 400, 401, 404, 503)})
        _path(
            spec, f"{prefix}/ready", {"get": _operation("Model ready", ready, 400, 401, 404, 503)}
        )
        _path(
            spec,
            f"{prefix}/infer",
            {
                "post": _operation(
                    "Inference",
                    infer_ok,
                    400,
                    401,
                    404,
                    413,
                    415,
                    429,
                    503,
                    requestBody=infer_body,
                )
            },
        )
