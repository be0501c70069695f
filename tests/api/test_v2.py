"""The Open Inference Protocol v2 endpoints (issue 3, item 5).

Hand-written JSON pins the protocol's request shapes (a 2-D tensor, one tensor per feature,
nested or flat data) and every error body; tritonclient's own request builder and response
reader check the binary extension through the Flask client; and a real gunicorn is driven by
tritonclient's HTTP clients (sync and asyncio) with their default options.
"""

from __future__ import annotations

import asyncio
import gzip
import importlib.metadata
import json
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
import sqlalchemy as sa
import tritonclient.http as httpclient
import tritonclient.http.aio as aiohttpclient
from flask import Flask
from flask.testing import FlaskClient
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException

from modelport import create_app
from modelport.api.tensors import HEADER_LENGTH
from modelport.api.v2 import decimal_float64
from modelport.extensions import db
from modelport.models.predictions import PredictionRecord
from tests.support.databases import migrated_sqlite, table_counts
from tests.support.html import csrf_token
from tests.support.http import bearer
from tests.support.models import IRIS_ROW, register_colour_model, register_demo
from tests.support.tokens import issue_token
from tests.support.users import login, make_user

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

FEATURES = list(IRIS_ROW)
ROWS = [
    [5.1, 3.5, 1.4, 0.2],
    [6.7, 3.0, 5.2, 2.3],
]
INFER = "/v2/models/{}/infer"


@pytest.fixture
def served(app_factory: Any, demo_models: dict[str, Any]) -> Flask:
    """An app serving iris and diabetes; anonymous limits high and the registry polled at once."""
    app = app_factory(
        PREDICT_LIMIT_ANONYMOUS="100000 per minute",
        REGISTRY_POLL_SECONDS="0.001",
        MAX_BATCH_ROWS="50",
    )
    register_demo(app, demo_models, "iris", "diabetes")
    return app


@pytest.fixture
def client(served: Flask) -> FlaskClient:
    return served.test_client()


def v2_error(response: Any, status: int) -> str:
    """The protocol's error body, exactly: {"error": str} as application/json."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.get_data(as_text=True))
    assert list(body) == ["error"]
    assert isinstance(body["error"], str) and len(body["error"]) > 10
    return body["error"]


def infer(client: FlaskClient, ref: str, inputs: list[dict], **extra: Any) -> Any:
    """POST a JSON inference request with no Content-Type, as tritonclient does."""
    headers = extra.pop("headers", None)
    body = json.dumps({"inputs": inputs, **extra}).encode()
    return client.post(INFER.format(ref), data=body, headers=headers)


def matrix(data: Any, datatype: str = "FP32", shape: list[int] | None = None) -> dict:
    return {
        "name": "input",
        "shape": shape or [len(ROWS), len(FEATURES)],
        "datatype": datatype,
        "data": data,
    }


def api_predict(client: FlaskClient, ref: str, rows: list[dict]) -> list[dict]:
    response = client.post(f"/api/v1/models/{ref}/predict", json={"inputs": rows})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["predictions"]


def records(app: Flask) -> list[PredictionRecord]:
    with app.app_context():
        found = list(db.session.scalars(sa.select(PredictionRecord).order_by(PredictionRecord.id)))
        db.session.expunge_all()
        return found


def outputs_by_name(body: dict) -> dict[str, dict]:
    return {output["name"]: output for output in body["outputs"]}


IRIS_ROWS = [dict(zip(FEATURES, row, strict=True)) for row in ROWS]


# --- health, server metadata, model metadata and readiness ---------------------------------


def test_health_and_server_metadata(client: FlaskClient) -> None:
    live = client.get("/v2/health/live")
    assert (live.status_code, live.get_json()) == (200, {"live": True})
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, ready.get_json()) == (200, {"ready": True})
    server = client.get("/v2")
    assert server.status_code == 200
    assert server.headers["Content-Type"] == "application/json"
    assert server.get_json() == {
        "name": "modelport",
        "version": importlib.metadata.version("modelport"),
        "extensions": ["binary_tensor_data"],
    }


def test_server_is_not_ready_before_migrations(tmp_path: Path) -> None:
    app = create_app(
        {
            "ENV": "testing",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
            "INSTANCE_PATH": str(tmp_path),
        }
    )
    client = app.test_client()
    assert client.get("/v2/health/live").status_code == 200
    message = v2_error(client.get("/v2/health/ready"), 503)
    assert "migration" in message and "modelport db upgrade" in message
    with app.app_context():
        db.engine.dispose()


IRIS_METADATA = {
    "name": "iris",
    "versions": ["1"],
    "platform": "onnx_onnxv1",
    "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}],
    "outputs": [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]},
    ],
    "parameters": {
        "version": "1",
        "task": "classification",
        "feature_names": FEATURES,
        "classes": ["setosa", "versicolor", "virginica"],
    },
}


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/iris",
        "/v2/models/iris/versions/1",
        "/v2/models/iris@champion",
        "/v2/models/iris%40champion",  # tritonclient quotes the name
    ],
)
def test_model_metadata(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == IRIS_METADATA


def test_regression_metadata(client: FlaskClient) -> None:
    body = client.get("/v2/models/diabetes").get_json()
    assert body["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 10]}]
    assert body["outputs"] == [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    assert body["parameters"]["classes"] is None
    assert body["parameters"]["task"] == "regression"


def test_versions_lists_ready_versions_only(
    served: Flask, client: FlaskClient, demo_models: dict[str, Any]
) -> None:
    from modelport.serving import registry

    register_demo(served, demo_models, "iris")  # version 2, now the champion
    body = client.get("/v2/models/iris").get_json()
    assert body["versions"] == ["1", "2"]
    assert body["parameters"]["version"] == "2"
    assert client.get("/v2/models/iris/versions/1").get_json()["parameters"]["version"] == "1"
    with served.app_context():
        registry.archive_version(registry.get_model("iris"), 1)
    assert client.get("/v2/models/iris").get_json()["versions"] == ["2"]
    message = v2_error(client.get("/v2/models/iris/versions/1"), 404)
    assert "archived" in message
    v2_error(client.get("/v2/models/iris/versions/1/ready"), 404)


def test_model_ready(client: FlaskClient) -> None:
    for path in (
        "/v2/models/iris/ready",
        "/v2/models/iris/versions/1/ready",
        "/v2/models/iris%40champion/ready",
    ):
        response = client.get(path)
        assert (response.status_code, response.get_json()) == (200, {"name": "iris", "ready": True})


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/v2/models/nope", 404, "no model named nope"),
        ("/v2/models/nope/ready", 404, "no model named nope"),
        ("/v2/models/iris/versions/2", 404, "no version 2"),
        ("/v2/models/iris/versions/2/ready", 404, "no version 2"),
        ("/v2/models/iris/versions/one", 404, "versions are numbers"),
        ("/v2/models/iris/versions/-1/ready", 404, "versions are numbers"),
        ("/v2/models/iris/versions/99999999999", 404, "versions are numbers"),
        ("/v2/models/iris/versions/4294967296", 404, "no version 4294967296"),
        ("/v2/models/iris/versions/2147483648", 404, "no version 2147483648"),
        ("/v2/models/iris@challenger", 404, "no alias challenger"),
        ("/v2/models/iris@champion/versions/1", 400, "not both"),
        ("/v2/nothing", 404, "Nothing is at /v2/nothing"),
        ("/v2/models/iris/infer", 405, "use POST"),
    ],
)
def test_metadata_errors(
    served: Flask, client: FlaskClient, path: str, status: int, words: str
) -> None:
    before = table_counts(served)
    assert words in v2_error(client.get(path), status)
    assert table_counts(served) == before


# --- inference: request shapes ---------------------------------------------------------------


def test_infer_2d_tensor_matches_the_api(served: Flask, client: FlaskClient) -> None:
    expected = api_predict(client, "iris", IRIS_ROWS)
    response = infer(client, "iris", [matrix(ROWS)], id="req-1")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    assert HEADER_LENGTH not in response.headers
    body = response.get_json()
    assert list(body) == ["model_name", "model_version", "id", "parameters", "outputs"]
    assert (body["model_name"], body["model_version"], body["id"]) == ("iris", "1", "req-1")
    assert body["parameters"] == {"variant": "champion"}  # no version named: the champion
    outputs = outputs_by_name(body)
    assert outputs["label"] == {
        "name": "label",
        "datatype": "BYTES",
        "shape": [2],
        "data": [p["label"] for p in expected],
    }
    assert outputs["probabilities"]["datatype"] == "FP64"
    assert outputs["probabilities"]["shape"] == [2, 3]
    # FP32 5.1 is taken as 5.1, so the model sees exactly what the JSON API fed it.
    assert outputs["probabilities"]["data"] == [
        p["probabilities"][c] for p in expected for c in ("setosa", "versicolor", "virginica")
    ]


@pytest.mark.parametrize(
    "tensor",
    [
        matrix(ROWS),  # nested
        matrix([v for row in ROWS for v in row]),  # flat, row-major
        matrix(ROWS, "FP64"),
        matrix(ROWS, "FP16"),
        matrix([[5, 3, 1, 0], [7, 3, 5, 2]], "INT64"),
        matrix([["5.1", "3.5", "1.4", "0.2"], ["6.7", "3.0", "5.2", "2.3"]], "BYTES"),
    ],
    ids=["nested", "flat", "fp64", "fp16", "int64", "bytes"],
)
def test_infer_2d_tensor_shapes_and_datatypes(
    served: Flask, client: FlaskClient, tensor: dict
) -> None:
    rows = np.array(tensor["data"], dtype=object).reshape(2, 4).astype(float)
    expected = api_predict(client, "iris", [dict(zip(FEATURES, r, strict=True)) for r in rows])
    response = infer(client, "iris", [tensor])
    assert response.status_code == 200, response.get_data(as_text=True)
    labels = outputs_by_name(response.get_json())["label"]["data"]
    assert labels == [p["label"] for p in expected]


def per_feature(shape: str, datatype: str = "FP64") -> list[dict]:
    tensors = []
    for j, name in enumerate(FEATURES):
        column = [row[j] for row in ROWS]
        if shape == "column":
            tensors.append({"name": name, "shape": [2, 1], "datatype": datatype, "data": column})
        elif shape == "nested":
            data = [[v] for v in column]
            tensors.append({"name": name, "shape": [2, 1], "datatype": datatype, "data": data})
        else:
            tensors.append({"name": name, "shape": [2], "datatype": datatype, "data": column})
    return tensors[::-1]  # any order: tensors are matched by name


@pytest.mark.parametrize(
    "tensors",
    [
        per_feature("flat"),
        per_feature("column"),
        per_feature("nested"),
        per_feature("flat", "FP32"),
    ],
    ids=["[N]", "[N,1]-flat-data", "[N,1]-nested-data", "fp32"],
)
def test_infer_one_tensor_per_feature(client: FlaskClient, tensors: list[dict]) -> None:
    expected = api_predict(client, "iris", IRIS_ROWS)
    response = infer(client, "iris", tensors)
    assert response.status_code == 200, response.get_data(as_text=True)
    outputs = outputs_by_name(response.get_json())
    assert outputs["label"]["data"] == [p["label"] for p in expected]
    assert outputs["probabilities"]["data"] == pytest.approx(
        [v for p in expected for v in p["probabilities"].values()]
    )


def test_regression_infer(client: FlaskClient) -> None:
    rows = [{"age": 0.03, "sex": 0.05, "bmi": 0.06, "bp": 0.02, "s1": -0.04, "s2": -0.03}] * 2
    rows = [{**r, "s3": -0.04, "s4": 0.0, "s5": 0.02, "s6": -0.02} for r in rows]
    expected = api_predict(client, "diabetes", rows)
    data = [list(r.values()) for r in rows]
    response = infer(client, "diabetes", [matrix(data, "FP64", [2, 10])])
    assert response.status_code == 200, response.get_data(as_text=True)
    [output] = response.get_json()["outputs"]
    assert output == {
        "name": "value",
        "datatype": "FP64",
        "shape": [2],
        "data": [p["value"] for p in expected],
    }


@pytest.mark.db
def test_infer_is_recorded_with_source_v2(served: Flask, client: FlaskClient) -> None:
    before = table_counts(served)
    response = infer(client, "iris", [matrix(ROWS)])
    assert response.status_code == 200, response.get_data(as_text=True)
    after = table_counts(served)
    assert after == {**before, "predictions": before["predictions"] + 1}
    record = records(served)[-1]
    assert (record.source, record.status, record.row_count) == ("v2", "ok", 2)
    assert (record.model_name, record.version_number, record.user_id) == ("iris", 1, None)
    assert record.request_id == response.headers["X-Request-ID"]
    # FP32 values are recorded as the decimals the client wrote.
    assert record.inputs == IRIS_ROWS
    labels = outputs_by_name(response.get_json())["label"]["data"]
    assert [row["label"] for row in record.outputs] == labels


def test_requested_outputs_and_binary_data(client: FlaskClient) -> None:
    response = infer(client, "iris", [matrix(ROWS)], outputs=[{"name": "label"}])
    assert [o["name"] for o in response.get_json()["outputs"]] == ["label"]

    # Binary in both directions, built by hand: FP32 rows after the JSON part.
    raw = np.array(ROWS, dtype="<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [2, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [
                {"name": "probabilities", "parameters": {"binary_data": True}},
                {"name": "label", "parameters": {"binary_data": True}},
            ],
        }
    ).encode()
    response = client.post(
        INFER.format("iris"),
        data=header + raw,
        headers={HEADER_LENGTH: str(len(header)), "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/octet-stream"
    body = response.get_data()
    length = int(response.headers[HEADER_LENGTH])
    document = json.loads(body[:length])
    probabilities, label = document["outputs"]
    assert (probabilities["name"], label["name"]) == ("probabilities", "label")
    assert "data" not in probabilities and "data" not in label
    size = probabilities["parameters"]["binary_data_size"]
    assert size == 2 * 3 * 8
    values = np.frombuffer(body[length : length + size], dtype="<f8").reshape(2, 3)
    assert values.argmax(axis=1).tolist() == [0, 2]
    rest = body[length + size :]
    assert len(rest) == label["parameters"]["binary_data_size"]
    (first,) = struct.unpack_from("<I", rest)
    assert rest[4 : 4 + first] == b"setosa"


def test_tritonclient_request_and_response_through_flask(client: FlaskClient) -> None:
    """tritonclient's own encoder and decoder, default options: binary both ways."""
    data = np.array(ROWS, dtype=np.float32)
    tensor = httpclient.InferInput("input", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    body, json_size = httpclient.InferenceServerClient.generate_request_body([tensor])
    response = client.post(INFER.format("iris"), data=body, headers={HEADER_LENGTH: str(json_size)})
    assert response.status_code == 200, response.get_data(as_text=True)
    result = httpclient.InferenceServerClient.parse_response_body(
        response.get_data(), header_length=int(response.headers[HEADER_LENGTH])
    )
    expected = api_predict(client, "iris", IRIS_ROWS)
    assert result.as_numpy("label").tolist() == [p["label"].encode() for p in expected]
    assert result.as_numpy("probabilities").shape == (2, 3)
    assert result.get_response()["model_version"] == "1"


# --- a model with a category feature: one tensor per feature, integer labels ---------------


@pytest.fixture
def colour_model(served: Flask, tmp_path: Path) -> str:
    """A skops pipeline over iris plus a categorical ``colour`` column; classes 0, 1, 2."""
    return register_colour_model(served, tmp_path)


def colour_tensors(colours: list[str]) -> list[dict]:
    tensors = per_feature("flat")
    tensors.append({"name": "colour", "shape": [2], "datatype": "BYTES", "data": colours})
    return tensors


def test_category_model_metadata_and_infer(client: FlaskClient, colour_model: str) -> None:
    body = client.get(f"/v2/models/{colour_model}").get_json()
    assert body["inputs"] == [
        {"name": name, "datatype": "FP64", "shape": [-1]} for name in FEATURES
    ] + [{"name": "colour", "datatype": "BYTES", "shape": [-1]}]
    assert body["outputs"] == [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]},
    ]
    assert body["parameters"]["classes"] == [0, 1, 2]

    rows = [{**row, "colour": c} for row, c in zip(IRIS_ROWS, ["blue", "red"], strict=True)]
    expected = api_predict(client, colour_model, rows)
    response = infer(client, colour_model, colour_tensors(["blue", "red"]))
    assert response.status_code == 200, response.get_data(as_text=True)
    label = outputs_by_name(response.get_json())["label"]
    assert label == {
        "name": "label",
        "datatype": "INT64",
        "shape": [2],
        "data": [p["label"] for p in expected],
    }

    # The same request, binary, BYTES input included, through tritonclient's encoder.
    inputs = []
    for tensor in colour_tensors(["blue", "red"]):
        dtype = object if tensor["datatype"] == "BYTES" else np.float64
        array = np.array(tensor["data"], dtype=dtype)
        made = httpclient.InferInput(tensor["name"], [2], tensor["datatype"])
        inputs.append(made.set_data_from_numpy(array))
    body, json_size = httpclient.InferenceServerClient.generate_request_body(inputs)
    response = client.post(
        INFER.format(colour_model), data=body, headers={HEADER_LENGTH: str(json_size)}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    result = httpclient.InferenceServerClient.parse_response_body(
        response.get_data(), header_length=int(response.headers[HEADER_LENGTH])
    )
    assert result.as_numpy("label").tolist() == [p["label"] for p in expected]


def test_category_model_refuses_one_matrix(client: FlaskClient, colour_model: str) -> None:
    message = v2_error(infer(client, colour_model, [matrix(ROWS)]), 400)
    assert "one tensor per feature" in message and "colour" in message
    message = v2_error(infer(client, colour_model, colour_tensors(["blue", "green"])), 400)
    assert message.startswith("'colour'") and "green" in message


# --- errors: {"error": str}, the right status, nothing written ---------------------------------


def _flat(values: list) -> dict:
    return {"inputs": values}


BAD_REQUESTS: list[tuple[str, Any, int, str]] = [
    ("not json", b"{inputs", 400, "not valid JSON"),
    ("not an object", b"[1, 2]", 400, "must be a JSON object"),
    ("no inputs", b"{}", 400, "inputs must be a non-empty list"),
    (
        "NaN",
        b'{"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": [NaN]}]}',
        400,
        "NaN",
    ),
    ("unknown datatype", _flat([{**matrix(ROWS), "datatype": "FLOAT"}]), 400, "datatype"),
    ("data and shape differ", _flat([matrix(ROWS, shape=[2, 3])]), 400, "shape"),
    ("booleans as FP32", _flat([matrix([[True] * 4] * 2)]), 400, "numbers"),
    ("2-D of 3 columns", _flat([matrix([[1.0, 2.0, 3.0]] * 2, shape=[2, 3])]), 400, "[rows, 4]"),
    ("1-D matrix", _flat([matrix(ROWS[0], shape=[4])]), 400, "[rows, 4]"),
    ("3-D", _flat([matrix(ROWS, shape=[1, 2, 4])]), 400, "[rows, 4]"),
    ("empty batch", _flat([matrix([], shape=[0, 4])]), 400, "empty"),
    (
        "too many rows",
        _flat([matrix([ROWS[0]] * 51, shape=[51, 4])]),
        400,
        "more than 200 tensor elements",
    ),
    (
        "unknown feature",
        _flat([*per_feature("flat"), {**per_feature("flat")[0], "name": "x"}]),
        400,
        "'x' is not a feature",
    ),
    ("missing feature", _flat(per_feature("flat")[1:]), 400, "'petal_width' is required"),
    (
        "per-feature [N,2]",
        _flat([{**per_feature("flat")[0], "shape": [1, 2]}, *per_feature("flat")[1:]]),
        400,
        "[rows] or [rows, 1]",
    ),
    (
        "ragged columns",
        _flat([{**per_feature("flat")[0], "shape": [1], "data": [1.0]}, *per_feature("flat")[1:]]),
        400,
        "different lengths",
    ),
    (
        "BOOL for a number",
        _flat([{**t, "datatype": "BOOL", "data": [True, False]} for t in per_feature("flat")]),
        400,
        "boolean",
    ),
    (
        "text for a number",
        _flat([matrix([["a", "b", "c", "d"]] * 2, "BYTES")]),
        400,
        "8 problems in the input: row 0: 'sepal_length' must be a number",
    ),
    (
        "unknown output",
        {**_flat([matrix(ROWS)]), "outputs": [{"name": "predict"}]},
        400,
        "unknown output 'predict'",
    ),
    (
        "classification extension",
        {
            **_flat([matrix(ROWS)]),
            "outputs": [{"name": "label", "parameters": {"classification": 2}}],
        },
        400,
        "classification extension",
    ),
]


@pytest.mark.db
def test_bad_infer_requests(served: Flask, client: FlaskClient) -> None:
    before = table_counts(served)
    failures = []
    for name, body, status, words in BAD_REQUESTS:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = client.post(INFER.format("iris"), data=data)
        message = v2_error(response, status)
        if words not in message:
            failures.append(f"{name}: {message!r} lacks {words!r}")
    assert not failures, "\n".join(failures)
    assert table_counts(served) == before


@pytest.mark.parametrize(
    ("ref", "headers", "body", "status", "words"),
    [
        ("nope", {}, None, 404, "no model named nope"),
        ("iris@challenger", {}, None, 404, "no alias challenger"),
        ("iris", {HEADER_LENGTH: "abc"}, None, 400, HEADER_LENGTH),
        ("iris", {HEADER_LENGTH: "100000"}, None, 400, HEADER_LENGTH),
        ("iris", {"Content-Encoding": "gzip"}, "gzip", 415, "Content-Encoding gzip"),
        ("iris", {"Authorization": "Basic YTpi"}, None, 401, "Bearer"),
        ("iris", {"Authorization": "Bearer mp_nothing"}, None, 401, "invalid"),
        ("iris", {}, b"x" * (3 * 1024 * 1024), 413, "too large"),
    ],
    ids=[
        "unknown-model",
        "unknown-alias",
        "bad-header-length",
        "header-length-too-long",
        "gzip",
        "basic",
        "bad-token",
        "too-large",
    ],
)
def test_infer_errors(
    served: Flask,
    client: FlaskClient,
    ref: str,
    headers: dict,
    body: Any,
    status: int,
    words: str,
) -> None:
    data = json.dumps({"inputs": [matrix(ROWS)]}).encode()
    if body == "gzip":
        data = gzip.compress(data)
    elif body is not None:
        data = body
    before = table_counts(served)
    message = v2_error(client.post(INFER.format(ref), data=data, headers=headers), status)
    assert words in message
    assert table_counts(served) == before


@pytest.fixture
def sqrt_model(served: Flask, tmp_path: Path) -> str:
    """A real ONNX regression model, y = sqrt(x): NaN for a negative x."""
    from modelport.serving import registry

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    graph = helper.make_graph([helper.make_node("Sqrt", ["x"], ["y"])], "sqrt", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path / "sqrt.onnx"
    path.write_bytes(model.SerializeToString())
    with served.app_context():
        registered = registry.create_model("sqrt", task="regression")
        registry.register_version(
            registered, path, filename=path.name, sample=pd.DataFrame({"x": [1.0, 4.0, 9.0]})
        )
    return "sqrt"


def test_non_finite_model_output_is_400(
    served: Flask, client: FlaskClient, sqrt_model: str
) -> None:
    ok = infer(
        client, sqrt_model, [{"name": "x", "shape": [2], "datatype": "FP64", "data": [4, 9]}]
    )
    assert outputs_by_name(ok.get_json())["value"]["data"] == [2.0, 3.0]
    bad = infer(
        client, sqrt_model, [{"name": "x", "shape": [2], "datatype": "FP64", "data": [4, -1]}]
    )
    assert "finite" in v2_error(bad, 400)
    # A valid request that the model failed is recorded as an error, as on the JSON API.
    assert (records(served)[-1].source, records(served)[-1].status) == ("v2", "error")


# --- access: public, private, cookies, tokens and rate limits --------------------------------


@pytest.fixture
def private_app(app_factory: Any, demo_models: dict[str, Any]) -> Flask:
    app = app_factory(REGISTRY_POLL_SECONDS="0.001")
    register_demo(app, demo_models, "iris", visibility="private")
    return app


def test_private_model_needs_a_bearer_token(private_app: Flask) -> None:
    user_id = make_user(private_app)
    token = issue_token(private_app, user_id, ["predict"])
    anonymous = private_app.test_client()
    member = private_app.test_client()
    assert login(member).status_code == 302
    # The member's session opens the JSON API...
    opened = member.post(
        "/api/v1/models/iris/predict",
        json={"inputs": IRIS_ROW},
        headers={"X-CSRFToken": csrf_token(member, "/account")},
    )
    assert opened.status_code == 200, opened.get_data(as_text=True)
    before = table_counts(private_app)
    for caller in (anonymous, member):  # ...but a cookie never counts on /v2 (no CSRF there)
        for path in ("/v2/models/iris", "/v2/models/iris/ready", "/v2/models/iris@champion"):
            assert "no model named iris" in v2_error(caller.get(path), 404)
        # Unknown versions and aliases of a private model do not reveal that it exists.
        for path in ("/v2/models/iris/versions/7", "/v2/models/iris@nope/ready"):
            assert "no model named iris" in v2_error(caller.get(path), 404)
        assert "no model named iris" in v2_error(infer(caller, "iris", [matrix(ROWS)]), 404)
    assert table_counts(private_app) == before

    headers = bearer(token)
    assert anonymous.get("/v2/models/iris", headers=headers).get_json()["name"] == "iris"
    assert anonymous.get("/v2/models/iris/ready", headers=headers).status_code == 200
    response = infer(anonymous, "iris", [matrix(ROWS)], headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    record = records(private_app)[-1]
    assert (record.source, record.user_id) == ("v2", user_id)
    assert record.token_id is not None


def test_infer_shares_the_predict_rate_limit(app_factory: Any, demo_models: dict) -> None:
    app = app_factory(PREDICT_LIMIT_ANONYMOUS="2 per minute")
    register_demo(app, demo_models, "iris")
    client = app.test_client()
    assert client.post("/api/v1/models/iris/predict", json={"inputs": IRIS_ROW}).status_code == 200
    assert infer(client, "iris", [matrix(ROWS)]).status_code == 200
    before = table_counts(app)
    message = v2_error(infer(client, "iris", [matrix(ROWS)]), 429)
    assert message.startswith("Too many requests")
    assert table_counts(app) == before
    # Health and metadata are not predictions.
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/iris").status_code == 200


# --- FP32 as the client wrote it -------------------------------------------------------------


def test_decimal_float64() -> None:
    values = np.array([5.1, 7.9, 0.1, -0.051, 123456.7, 1234.5677, 4194304.5], dtype=np.float32)
    assert decimal_float64(values).tolist() == [
        5.1,
        7.9,
        0.1,
        -0.051,
        123456.7,
        1234.5677,
        4194304.5,
    ]
    whole = np.array([0.0, -0.0, 3.0, 16777216.0, 3.4e38], dtype=np.float32)
    assert decimal_float64(whole).tolist() == whole.astype(np.float64).tolist()
    half = np.array([0.1, 3.14, 65504.0], dtype=np.float16)
    assert decimal_float64(half).tolist() == [0.1, 3.14, 65504.0]
    rng = np.random.default_rng(0)
    random = (rng.random((50, 20)) * 10.0 ** rng.integers(-6, 6, (50, 20))).astype(np.float32)
    converted = decimal_float64(random)
    assert converted.shape == random.shape
    # Each value is the shortest decimal that reads back as the same float32.
    assert (converted.astype(np.float32) == random).all()
    assert converted.tolist() == random.astype(str).astype(np.float64).tolist()


# --- a real gunicorn and tritonclient with its default options ------------------------------


@pytest.fixture
def served_database(tmp_path: Path, demo_models: dict[str, Any]) -> str:
    """A migrated SQLite file with iris registered, artifacts where gunicorn will look."""
    url = migrated_sqlite(tmp_path)
    app = create_app(
        {"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance")}
    )
    register_demo(app, demo_models, "iris")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return url


@pytest.mark.slow
def test_tritonclient_against_gunicorn(tmp_path: Path, served_database: str) -> None:
    from tests.support.servers import gunicorn

    data = np.array(ROWS, dtype=np.float32)
    with gunicorn(tmp_path, served_database) as server:
        api = requests.post(
            f"{server.url}/api/v1/models/iris/predict", json={"inputs": IRIS_ROWS}, timeout=30
        ).json()["predictions"]
        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
        try:
            assert client.is_server_live()
            assert client.is_server_ready()
            assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
            metadata = client.get_model_metadata("iris")
            assert metadata["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]
            assert client.is_model_ready("iris")
            assert client.is_model_ready("iris", "1")
            assert client.get_model_metadata("iris@champion")["name"] == "iris"
            assert not client.is_model_ready("nope")

            tensor = httpclient.InferInput("input", [2, 4], "FP32")
            tensor.set_data_from_numpy(data)  # binary by default
            binary = client.infer("iris", [tensor])
            tensor_json = httpclient.InferInput("input", [2, 4], "FP32")
            tensor_json.set_data_from_numpy(data, binary_data=False)
            as_json = client.infer(
                "iris",
                [tensor_json],
                outputs=[
                    httpclient.InferRequestedOutput("label", binary_data=False),
                    httpclient.InferRequestedOutput("probabilities", binary_data=False),
                ],
                request_id="42",
            )
            with pytest.raises(InferenceServerException) as unknown:
                client.get_model_metadata("nope")
            wrong = httpclient.InferInput("input", [2, 2], "FP32")
            wrong.set_data_from_numpy(data[:, :2].copy())
            with pytest.raises(InferenceServerException) as bad_shape:
                client.infer("iris", [wrong])
        finally:
            client.close()
        # In a thread of its own: Playwright's sync API (the e2e tests, in the same worker)
        # may leave an event loop running in this one, where asyncio.run refuses to start.
        with ThreadPoolExecutor(1) as thread:
            aio_results = thread.submit(asyncio.run, _aio_calls(server.port, data)).result()

    labels = [p["label"].encode() for p in api]
    probabilities = [list(p["probabilities"].values()) for p in api]
    assert binary.as_numpy("label").tolist() == labels
    assert binary.as_numpy("probabilities").tolist() == probabilities
    assert binary.get_response()["model_version"] == "1"
    # JSON data carries BYTES as text; binary data as bytes.
    assert as_json.as_numpy("label").tolist() == [p["label"] for p in api]
    assert as_json.as_numpy("probabilities").tolist() == probabilities
    assert as_json.get_response()["id"] == "42"
    assert unknown.value.status() == "404"
    assert unknown.value.message() == (
        "There is no model named nope (private models need Authorization: Bearer <token>)."
    )
    assert bad_shape.value.status() == "400"
    assert "[rows, 4]" in bad_shape.value.message()
    live, ready, aio_labels = aio_results
    assert live and ready
    assert aio_labels == labels


async def _aio_calls(port: int, data: np.ndarray) -> tuple[bool, bool, list]:
    """The asyncio client (aiohttp, Content-Type application/octet-stream) with defaults."""
    client = aiohttpclient.InferenceServerClient(url=f"127.0.0.1:{port}")
    try:
        live = await client.is_server_live()
        ready = await client.is_model_ready("iris")
        tensor = aiohttpclient.InferInput("input", [2, 4], "FP32")
        tensor.set_data_from_numpy(data)
        result = await client.infer("iris", [tensor])
        return live, ready, result.as_numpy("label").tolist()
    finally:
        await client.close()
