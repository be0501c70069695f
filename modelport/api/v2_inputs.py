"""How a model's input schema appears in the Open Inference Protocol: one ``[-1, n]`` tensor
when every feature is a number, else one ``[-1]`` tensor per feature. The ``/v2`` metadata
and the client examples on a model's page both say it this way."""

from __future__ import annotations

from typing import Any

from modelport.serving.schema import InputSchema

# The one tensor of an all-numeric model, as its metadata names it.
MATRIX_INPUT = "input"
FEATURE_DATATYPES = {
    "number": "FP64",
    "integer": "INT64",
    "boolean": "BOOL",
    "category": "BYTES",
    "string": "BYTES",
}


def matrix_input(schema: InputSchema) -> bool:
    """Whether the schema takes one 2-D numeric tensor (every feature a number or integer)."""
    return all(f.type in ("number", "integer") for f in schema.features)


def input_metadata(schema: InputSchema) -> list[dict[str, Any]]:
    """The inputs a client should send: one [-1, n] tensor, or one [-1] tensor per feature."""
    if matrix_input(schema):
        numbers = any(f.type == "number" for f in schema.features)
        return [
            {
                "name": MATRIX_INPUT,
                "datatype": "FP64" if numbers else "INT64",
                "shape": [-1, len(schema.features)],
            }
        ]
    return [
        {"name": f.name, "datatype": FEATURE_DATATYPES[f.type], "shape": [-1]}
        for f in schema.features
    ]
