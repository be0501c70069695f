"""Copy-ready client examples for a model: curl, Python requests and the inference protocol.

Built from the version's input schema and its example row, so that every snippet sends a
request the model accepts as it is.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from modelport.api.v2_inputs import input_metadata
from modelport.serving.schema import InputSchema

# numpy types of the protocol's datatypes, for the tritonclient snippet.
NUMPY_TYPES = {"FP64": "np.float64", "INT64": "np.int64", "BOOL": "np.bool_", "BYTES": "np.object_"}
# The environment variable the snippets read the API token from: a name on the client,
# not a secret and not a setting of the server (those are MODELPORT_*).
TOKEN_VARIABLE = "API_TOKEN"  # noqa: S105


@dataclass(frozen=True)
class ClientExamples:
    """The snippets shown on a model's page."""

    curl: str
    python: str
    v2_curl: str
    tritonclient: str


def _matrix(schema: InputSchema) -> str | None:
    """The name of the one 2-D input the protocol takes for ``schema``, if it takes one."""
    inputs = input_metadata(schema)
    if len(inputs) == 1 and len(inputs[0]["shape"]) == 2:
        return inputs[0]["name"]
    return None


def v2_request(schema: InputSchema, row: dict[str, Any]) -> dict[str, Any]:
    """An infer request body for one row: one FP32 tensor of shape [1, n] in feature order
    when the protocol takes the features as a matrix, else one input per feature."""
    matrix = _matrix(schema)
    if matrix is not None:
        data = [float(row[name]) for name in schema.names]
        return {
            "inputs": [{"name": matrix, "shape": [1, len(data)], "datatype": "FP32", "data": data}]
        }
    inputs = []
    for item in input_metadata(schema):
        value = row[item["name"]]
        if item["datatype"] == "BYTES":
            value = str(value)
        inputs.append(
            {"name": item["name"], "shape": [1], "datatype": item["datatype"], "data": [value]}
        )
    return {"inputs": inputs}


def _curl(url: str, body: dict[str, Any], private: bool) -> str:
    lines = [f"curl -X POST {shlex.quote(url)}", "  -H 'Content-Type: application/json'"]
    if private:
        lines.append(f'  -H "Authorization: Bearer ${TOKEN_VARIABLE}"')
    lines.append(f"  -d {shlex.quote(json.dumps(body, ensure_ascii=False))}")
    return " \\\n".join(lines)


def _python(url: str, row: dict[str, Any], private: bool) -> str:
    headers = (
        f'    headers={{"Authorization": f"Bearer {{os.environ[{TOKEN_VARIABLE!r}]}}"}},\n'
        if private
        else ""
    )
    imports = "import os\n\nimport requests\n" if private else "import requests\n"
    return (
        f"{imports}\n"
        "response = requests.post(\n"
        f"    {url!r},\n"
        f"    json={{'inputs': {row!r}}},\n"
        f"{headers}"
        "    timeout=30,\n"
        ")\n"
        "response.raise_for_status()\n"
        'for prediction in response.json()["predictions"]:\n'
        "    print(prediction)\n"
    )


def _tritonclient(base_url: str, name: str, schema: InputSchema, row: dict, private: bool) -> str:
    parts = urlsplit(base_url)
    ssl = ", ssl=True" if parts.scheme == "https" else ""
    lines = [
        *(["import os", ""] if private else []),
        "import numpy as np",
        "import tritonclient.http as httpclient",
        "",
        f"client = httpclient.InferenceServerClient({parts.netloc!r}{ssl})",
    ]
    matrix = _matrix(schema)
    if matrix is not None:
        data = [float(row[n]) for n in schema.names]
        lines += [
            "# one row, the features in the model's order",
            f"data = np.array([{data!r}], dtype=np.float32)",
            f'tensor = httpclient.InferInput("{matrix}", list(data.shape), "FP32")',
            "tensor.set_data_from_numpy(data)",
            "inputs = [tensor]",
        ]
    else:
        lines.append("inputs = []")
        for item in input_metadata(schema):
            datatype = item["datatype"]
            value = row[item["name"]]
            dtype = NUMPY_TYPES[datatype]
            literal = repr(str(value).encode()) if datatype == "BYTES" else repr(value)
            lines += [
                f"tensor = httpclient.InferInput({item['name']!r}, [1], {datatype!r})",
                f"tensor.set_data_from_numpy(np.array([{literal}], dtype={dtype}))",
                "inputs.append(tensor)",
            ]
    if private:
        lines += [
            f'headers = {{"Authorization": f"Bearer {{os.environ[{TOKEN_VARIABLE!r}]}}"}}',
            f"result = client.infer({name!r}, inputs, headers=headers)",
        ]
    else:
        lines.append(f"result = client.infer({name!r}, inputs)")
    lines.append("print(result.get_response())")
    return "\n".join(lines) + "\n"


def client_examples(
    name: str, schema: InputSchema, base_url: str, *, private: bool
) -> ClientExamples:
    """Snippets that predict the schema's example row with model ``name`` at ``base_url``."""
    base = base_url.rstrip("/")
    row = schema.example_row()
    predict_url = f"{base}/api/v1/models/{name}/predict"
    infer_url = f"{base}/v2/models/{name}/infer"
    return ClientExamples(
        curl=_curl(predict_url, {"inputs": row}, private),
        python=_python(predict_url, row, private),
        v2_curl=_curl(infer_url, v2_request(schema, row), private),
        tritonclient=_tritonclient(base, name, schema, row, private),
    )
