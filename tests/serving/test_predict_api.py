"""The predict API (issue 3, items 3 and 4): request shapes, responses, CSV, input errors.

Every bad request is shown to change nothing in the database; invalid input is not recorded.
Tests that write or resolve through the registry run on all three databases (``db``); the
many input-validation cases, which never reach the database, run on SQLite only.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from sklearn.datasets import load_iris

from modelport.extensions import db
from modelport.models.predictions import PredictionRecord
from modelport.serving.inference import PredictionFailed
from tests.support.databases import table_counts
from tests.support.fuzzing import examples
from tests.support.http import assert_api_error
from tests.support.models import IRIS_ROW, register_colour_model, register_demo

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

PREDICT = "/api/v1/models/{}/predict"
IRIS_COLUMNS = list(IRIS_ROW)
SECOND_ROW = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}


@pytest.fixture
def served(app_factory: Any, demo_models: dict[str, Any]) -> Flask:
    """An app serving iris and diabetes; limits high and registry polled at once."""
    app = app_factory(
        PREDICT_LIMIT_ANONYMOUS="100000 per minute",
        REGISTRY_POLL_SECONDS="0.001",
        MAX_BATCH_ROWS="50",
        CSV_MAX_ROWS="200",
        CSV_MAX_BYTES="4096",
    )
    register_demo(app, demo_models, "iris", "diabetes")
    return app


@pytest.fixture
def client(served: Flask) -> FlaskClient:
    return served.test_client()


def predict(client: FlaskClient, ref: str, inputs: Any, **kwargs: Any) -> Any:
    return client.post(PREDICT.format(ref), json={"inputs": inputs}, **kwargs)


def records(app: Flask) -> list[PredictionRecord]:
    with app.app_context():
        found = list(db.session.scalars(sa.select(PredictionRecord).order_by(PredictionRecord.id)))
        db.session.expunge_all()
        return found


def post_raw(client: FlaskClient, ref: str, body: bytes | str, mimetype: str, **kw: Any) -> Any:
    return client.post(PREDICT.format(ref), data=body, content_type=mimetype, **kw)


def strict_json(text: str) -> Any:
    """Parse JSON refusing NaN and Infinity, which are not JSON."""

    def refuse(literal: str) -> None:
        raise AssertionError(f"{literal} in a JSON response")

    return json.loads(text, parse_constant=refuse)


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --- request shapes and resolution ---------------------------------------------------------


def test_one_object_a_list_and_columns_give_the_same_predictions(client: FlaskClient) -> None:
    one = predict(client, "iris", IRIS_ROW)
    rows = predict(client, "iris", [IRIS_ROW, SECOND_ROW])
    columns = predict(client, "iris", {k: [IRIS_ROW[k], SECOND_ROW[k]] for k in IRIS_COLUMNS})
    assert one.status_code == rows.status_code == columns.status_code == 200
    assert len(one.get_json()["predictions"]) == 1
    assert rows.get_json()["predictions"] == columns.get_json()["predictions"]
    assert rows.get_json()["predictions"][0] == one.get_json()["predictions"][0]
    labels = [p["label"] for p in rows.get_json()["predictions"]]
    assert labels == ["setosa", "virginica"]
    # Column order in the request does not matter: the service orders features.
    shuffled = dict(reversed(list(IRIS_ROW.items())))
    assert (
        predict(client, "iris", shuffled).get_json()["predictions"]
        == (one.get_json()["predictions"])
    )


def _add_iris_version(app: Flask, demo_models: dict[str, Any], aliases: tuple = ()) -> int:
    from modelport.serving import registry

    item = demo_models["iris"]
    with app.app_context():
        version = registry.register_version(
            registry.get_model("iris"),
            item.artifact,
            filename=item.artifact.name,
            sample=item.sample,
            aliases=aliases,
        )
        return version.number


def _alias(app: Flask, alias: str, number: int | None) -> None:
    from modelport.serving import registry

    with app.app_context():
        model = registry.get_model("iris")
        if number is None:
            registry.delete_alias(model, alias)
        else:
            registry.set_alias(model, alias, number)


@pytest.mark.db
def test_version_alias_and_default_resolution(
    served: Flask, client: FlaskClient, demo_models: dict[str, Any]
) -> None:
    assert _add_iris_version(served, demo_models, ("challenger",)) == 2

    def served_model(path: str) -> dict[str, Any]:
        response = client.post(path, json={"inputs": IRIS_ROW})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["model"]

    # No version: the champion (version 1), although version 2 is newer; the answer says so.
    default = served_model(PREDICT.format("iris"))
    assert (default["version"], default["alias"]) == (1, "champion")
    champion = served_model(PREDICT.format("iris@champion"))
    assert (champion["version"], champion["alias"]) == (1, "champion")
    challenger = served_model(PREDICT.format("iris@challenger"))
    assert (challenger["version"], challenger["alias"]) == (2, "challenger")
    explicit = served_model("/api/v1/models/iris/versions/2/predict")
    assert (explicit["name"], explicit["version"], explicit["alias"]) == ("iris", 2, None)
    assert served_model("/api/v1/models/iris/versions/1/predict")["version"] == 1

    # Moving the alias is followed at once; without a champion the newest version serves.
    _alias(served, "champion", 2)
    assert served_model(PREDICT.format("iris@champion"))["version"] == 2
    _alias(served, "champion", 1)
    _alias(served, "champion", None)
    newest = served_model(PREDICT.format("iris"))
    assert (newest["version"], newest["alias"]) == (2, None)

    before = table_counts(served)
    assert_api_error(predict(client, "iris@nosuch", IRIS_ROW), 404, "model_not_found")
    response = client.post("/api/v1/models/iris/versions/9/predict", json={"inputs": IRIS_ROW})
    assert_api_error(response, 404, "model_not_found")
    assert table_counts(served) == before


@pytest.mark.db
def test_unknown_model_and_archived_version_are_404(
    served: Flask, client: FlaskClient, demo_models: dict[str, Any]
) -> None:
    from modelport.serving import registry

    _add_iris_version(served, demo_models)
    with served.app_context():
        registry.archive_version(registry.get_model("iris"), 1)
    before = table_counts(served)
    assert_api_error(predict(client, "nosuchmodel", IRIS_ROW), 404, "model_not_found")
    archived = client.post("/api/v1/models/iris/versions/1/predict", json={"inputs": IRIS_ROW})
    error = assert_api_error(archived, 404, "model_not_found")
    assert "archived" in error["message"]
    # The champion alias went with the archived version: the newest ready version serves.
    assert table_counts(served) == before
    assert predict(client, "iris", IRIS_ROW).get_json()["model"]["version"] == 2


# --- responses -----------------------------------------------------------------------------


def test_classification_response(served: Flask, client: FlaskClient) -> None:
    response = predict(client, "iris@champion", [IRIS_ROW, SECOND_ROW])
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) >= {"request_id", "model", "predictions", "warnings", "timing_ms"}
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["model"]["name"] == "iris"
    assert body["model"]["version"] == 1
    assert body["model"]["alias"] == "champion"
    assert body["model"]["runtime"] in {"onnxruntime", "sklearn"}
    assert isinstance(body["timing_ms"], float) and body["timing_ms"] >= 0
    assert body["warnings"] == []
    for row in body["predictions"]:
        assert set(row) == {"label", "probabilities"}
        assert set(row["probabilities"]) == {"setosa", "versicolor", "virginica"}
        assert sum(row["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)
    # A request id the client sends is echoed in the body and the header.
    again = predict(client, "iris", IRIS_ROW, headers={"X-Request-ID": "client-chosen-id-42"})
    assert again.get_json()["request_id"] == again.headers["X-Request-ID"]


def test_regression_response(client: FlaskClient, demo_models: dict[str, Any]) -> None:
    sample = demo_models["diabetes"].sample
    rows = json.loads(sample.head(3).to_json(orient="records"))
    response = predict(client, "diabetes", rows)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["model"]["name"] == "diabetes"
    assert [set(p) for p in body["predictions"]] == [{"value"}] * 3
    values = [p["value"] for p in body["predictions"]]
    assert all(isinstance(v, float) and math.isfinite(v) for v in values)
    # Diabetes progression scores lie between about 25 and 346.
    assert all(0 < v < 400 for v in values)


@pytest.mark.db
def test_csv_in_csv_out_passes_extra_columns_through(served: Flask, client: FlaskClient) -> None:
    body = "id,sepal_length,sepal_width,petal_length,petal_width,note\n"
    body += 'a1,5.1,3.5,1.4,0.2,"first, with comma"\na2,6.7,3.0,5.2,2.3,second\n'
    response = post_raw(client, "iris", body, "text/csv")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    rows = read_csv(response.get_data(as_text=True))
    assert list(rows[0]) == [
        "id",
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
        "note",
        "prediction",
        "probability_setosa",
        "probability_versicolor",
        "probability_virginica",
    ]
    assert [r["id"] for r in rows] == ["a1", "a2"]
    assert rows[0]["note"] == "first, with comma"
    assert [r["prediction"] for r in rows] == ["setosa", "virginica"]
    for row in rows:
        total = sum(float(row[f"probability_{c}"]) for c in ("setosa", "versicolor", "virginica"))
        assert total == pytest.approx(1, abs=1e-4)
    # The same rows as JSON give the same labels.
    as_json = predict(client, "iris", [IRIS_ROW, SECOND_ROW]).get_json()["predictions"]
    assert [p["label"] for p in as_json] == [r["prediction"] for r in rows]
    # curl's default Accept (*/*) and text/* get CSV as well.
    for accept in ("*/*", "text/*"):
        answer = post_raw(client, "iris", body, "text/csv", headers={"Accept": accept})
        assert (answer.status_code, answer.mimetype) == (200, "text/csv")
        assert read_csv(answer.get_data(as_text=True)) == rows
    # CSV asking for JSON only by name cannot be answered.
    refused = post_raw(client, "iris", body, "text/csv", headers={"Accept": "application/json"})
    assert_api_error(refused, 406, "not_acceptable")


def test_csv_regression_appends_a_prediction_column(
    client: FlaskClient, demo_models: dict[str, Any]
) -> None:
    sample = demo_models["diabetes"].sample.head(4)
    response = post_raw(client, "diabetes", sample.to_csv(index=False), "text/csv")
    assert response.status_code == 200, response.get_data(as_text=True)
    rows = read_csv(response.get_data(as_text=True))
    assert list(rows[0]) == [*sample.columns, "prediction"]
    json_values = [
        p["value"]
        for p in predict(
            client, "diabetes", json.loads(sample.to_json(orient="records"))
        ).get_json()["predictions"]
    ]
    assert [float(r["prediction"]) for r in rows] == pytest.approx(json_values, rel=1e-6)


def test_json_with_accept_csv_answers_csv(client: FlaskClient) -> None:
    response = predict(client, "iris", [IRIS_ROW, SECOND_ROW], headers={"Accept": "text/csv"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = read_csv(response.get_data(as_text=True))
    assert [r["prediction"] for r in rows] == ["setosa", "virginica"]
    assert {"probability_setosa", "probability_versicolor", "probability_virginica"} <= set(rows[0])
    # JSON stays the answer when both are acceptable and JSON is preferred.
    both = predict(client, "iris", IRIS_ROW, headers={"Accept": "application/json, text/csv;q=0.5"})
    assert both.mimetype == "application/json"


def test_out_of_range_is_predicted_with_a_warning(served: Flask, client: FlaskClient) -> None:
    response = predict(client, "iris", [IRIS_ROW, {**IRIS_ROW, "petal_length": 42.0}])
    assert response.status_code == 200
    body = response.get_json()
    assert len(body["predictions"]) == 2
    [warning] = body["warnings"]
    assert (warning["row"], warning["field"], warning["code"]) == (
        1,
        "petal_length",
        "out_of_range",
    )
    assert "42" in warning["message"]


# --- input errors: 422 with per-row, per-field details; nothing stored --------------------


def _detail_codes(error: dict) -> set[tuple]:
    return {(d["row"], d["field"], d["code"]) for d in error["details"]}


BAD_INPUTS = [
    pytest.param(
        {k: v for k, v in IRIS_ROW.items() if k != "petal_width"},
        {(0, "petal_width", "missing_field")},
        id="missing-field",
    ),
    pytest.param({**IRIS_ROW, "colour": "red"}, {(0, "colour", "unknown_field")}, id="unknown"),
    pytest.param(
        {**IRIS_ROW, "sepal_width": "wide"}, {(0, "sepal_width", "wrong_type")}, id="type"
    ),
    pytest.param(
        {**IRIS_ROW, "sepal_width": True}, {(0, "sepal_width", "boolean_not_number")}, id="bool"
    ),
    pytest.param(
        [IRIS_ROW, {**IRIS_ROW, "sepal_length": None}, {**IRIS_ROW, "petal_length": [1]}],
        {(1, "sepal_length", "missing_field"), (2, "petal_length", "wrong_type")},
        id="per-row",
    ),
    pytest.param(
        {k: [v, False] for k, v in IRIS_ROW.items()},
        {(1, k, "boolean_not_number") for k in IRIS_ROW},
        id="columns-bool",
    ),
    pytest.param([], {(None, None, "empty_batch")}, id="empty-list"),
    pytest.param({k: [] for k in IRIS_ROW}, {(None, None, "empty_batch")}, id="empty-columns"),
    pytest.param([IRIS_ROW] * 51, {(None, None, "too_many_rows")}, id="too-many-rows"),
    pytest.param(
        {k: [v] * 51 for k, v in IRIS_ROW.items()},
        {(None, None, "too_many_rows")},
        id="too-many-columns-rows",
    ),
    pytest.param("5.1,3.5", {(None, None, "bad_shape")}, id="bad-shape"),
]


@pytest.mark.parametrize(("inputs", "expected"), BAD_INPUTS)
def test_bad_inputs_are_422_with_details_and_change_nothing(
    served: Flask, client: FlaskClient, inputs: Any, expected: set[tuple]
) -> None:
    before = table_counts(served)
    error = assert_api_error(predict(client, "iris", inputs), 422, "invalid_input")
    assert _detail_codes(error) == expected
    for detail in error["details"]:
        if detail["field"]:
            assert detail["field"] in detail["message"]
    assert table_counts(served) == before


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs": {"sepal_length": NaN, "sepal_width": 3.5, "petal_length": 1.4, '
        b'"petal_width": 0.2}}',
        b'{"inputs": [{"sepal_length": Infinity, "sepal_width": 3.5, "petal_length": 1.4, '
        b'"petal_width": 0.2}]}',
        b'{"inputs": {"sepal_length": [-Infinity]}}',
        b'{"inputs": ',
        b'{"inputs": {"a": 1}, "inputs": {"a": 2}}',
        b'{"inputs": {"sepal_length": "\xff"}}',
    ],
    ids=["nan", "infinity", "minus-infinity", "truncated", "duplicate-key", "not-utf8"],
)
def test_non_finite_literals_and_broken_json_are_400(
    served: Flask, client: FlaskClient, body: bytes
) -> None:
    before = table_counts(served)
    assert_api_error(post_raw(client, "iris", body, "application/json"), 400, "invalid_json")
    assert table_counts(served) == before


BIG = "1" * 4401  # Python parses at most 4,300 digits into an int


def test_a_number_of_4401_digits_is_a_400_on_every_channel(
    served: Flask, client: FlaskClient
) -> None:
    from tests.support.http import bearer
    from tests.support.tokens import issue_token
    from tests.support.users import make_user

    token = bearer(issue_token(served, make_user(served)))
    before = table_counts(served)
    body = json.dumps({"inputs": {**IRIS_ROW, "sepal_length": 0}}).replace(
        '"sepal_length": 0', f'"sepal_length": {BIG}'
    )
    for headers in ({}, token, token):  # anonymous, then a token (twice: the hot path)
        response = post_raw(client, "iris", body, "application/json", headers=headers)
        error = assert_api_error(response, 400, "invalid_json")
        assert "digits" in error["message"]
    tensor = '{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [BIG, 1, 1, 1]}]}'
    response = client.post(
        "/v2/models/iris/infer", data=tensor.replace("BIG", BIG), content_type="application/json"
    )
    assert response.status_code == 400
    assert "digits" in response.get_json()["error"]
    assert table_counts(served) == before


class _Digits(str):
    """A JSON number written out as text (Python cannot ``json.dumps`` one this long)."""


def _render(value: Any) -> str:
    if isinstance(value, _Digits):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_render(v) for v in value) + "]"
    return json.dumps(value)


_big_numbers = st.builds(
    lambda sign, digits, tail: _Digits(sign + "1" + "0" * digits + tail),
    st.sampled_from(["", "-"]),
    st.integers(4200, 4600),
    st.sampled_from(["", ".5", "e3", ".0e-2"]),
)
_json_with_big_numbers = st.recursive(
    _big_numbers | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4) | st.none(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from([*IRIS_COLUMNS, "x"]), inner, max_size=5)
    ),
    max_leaves=12,
)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(inputs=_json_with_big_numbers)
def test_any_predict_body_with_huge_numbers_is_answered_without_a_500(
    served: Flask, client: FlaskClient, inputs: Any
) -> None:
    response = post_raw(client, "iris", f'{{"inputs": {_render(inputs)}}}', "application/json")
    assert response.status_code in (200, 400, 422), response.get_data(as_text=True)
    if response.status_code != 200:
        assert_api_error(response, response.status_code)


def test_a_number_too_large_for_a_float_is_not_finite(served: Flask, client: FlaskClient) -> None:
    before = table_counts(served)
    body = json.dumps({"inputs": [IRIS_ROW, {**IRIS_ROW, "sepal_length": 0}]})
    body = body.replace('"sepal_length": 0', '"sepal_length": 1e999')
    response = post_raw(client, "iris", body, "application/json")
    error = assert_api_error(response, 422, "invalid_input")
    assert _detail_codes(error) == {(1, "sepal_length", "not_finite")}
    assert table_counts(served) == before


def test_body_shape_errors(served: Flask, client: FlaskClient) -> None:
    before = table_counts(served)
    response = client.post(PREDICT.format("iris"), json=[IRIS_ROW])
    assert_api_error(response, 422, "invalid_input")
    response = client.post(PREDICT.format("iris"), json={"rows": [IRIS_ROW]})
    error = assert_api_error(response, 422, "invalid_input")
    assert _detail_codes(error) == {(None, "inputs", "required"), (None, "rows", "unknown_field")}
    response = client.post(PREDICT.format("iris"), json={"inputs": IRIS_ROW, "parameters": 3})
    error = assert_api_error(response, 422, "invalid_input")
    assert _detail_codes(error) == {(None, "parameters", "invalid_type")}
    assert table_counts(served) == before


def test_wrong_content_type_is_415(served: Flask, client: FlaskClient) -> None:
    before = table_counts(served)
    for mimetype in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        response = post_raw(client, "iris", json.dumps({"inputs": IRIS_ROW}), mimetype)
        assert_api_error(response, 415, "unsupported_media_type")
    assert_api_error(client.post(PREDICT.format("iris")), 415, "unsupported_media_type")
    assert table_counts(served) == before


@pytest.mark.db
def test_bad_csv_rows_are_422_with_row_numbers(served: Flask, client: FlaskClient) -> None:
    before = table_counts(served)
    body = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n5.1,x,1.4,\n"
    error = assert_api_error(post_raw(client, "iris", body, "text/csv"), 422, "invalid_input")
    assert _detail_codes(error) == {
        (1, "sepal_width", "wrong_type"),
        (1, "petal_width", "missing_field"),
    }
    missing = "sepal_length,sepal_width,petal_length\n5.1,3.5,1.4\n"
    error = assert_api_error(post_raw(client, "iris", missing, "text/csv"), 422, "invalid_input")
    assert _detail_codes(error) == {(None, "petal_width", "missing_field")}
    header_only = "sepal_length,sepal_width,petal_length,petal_width\n"
    error = assert_api_error(post_raw(client, "iris", header_only, "text/csv"), 422)
    assert {d["code"] for d in error["details"]} == {"empty_batch"}
    error = assert_api_error(post_raw(client, "iris", b"", "text/csv"), 422)
    assert {d["code"] for d in error["details"]} == {"empty_batch"}
    error = assert_api_error(post_raw(client, "iris", b"\xff\xfe\x00a,b\n", "text/csv"), 422)
    assert {d["code"] for d in error["details"]} == {"invalid_csv"}
    assert table_counts(served) == before


@pytest.mark.db
def test_csv_over_the_row_or_byte_limit_is_413(served: Flask, client: FlaskClient) -> None:
    before = table_counts(served)
    header = "sepal_length,sepal_width,petal_length,petal_width\n"
    # CSV_MAX_ROWS is 200 and CSV_MAX_BYTES 4096 in this app.
    rows = header + "5.1,3.5,1.4,0.2\n" * 201
    assert len(rows) < 4096
    assert_api_error(post_raw(client, "iris", rows, "text/csv"), 413, "payload_too_large")
    at_limit = post_raw(client, "iris", header + "5.1,3.5,1.4,0.2\n" * 200, "text/csv")
    assert at_limit.status_code == 200
    assert at_limit.get_data(as_text=True).count("\n") == 201
    counts = table_counts(served)
    big = header + "5.1000,3.5000,1.4000,0.2000\n" * 200
    assert len(big) > 4096
    assert_api_error(post_raw(client, "iris", big, "text/csv"), 413, "payload_too_large")
    assert table_counts(served) == counts
    assert counts["predictions"] == before["predictions"] + 1


# --- categories: a pipeline with a categorical column --------------------------------------


@pytest.fixture
def colour_model(served: Flask, tmp_path: Path) -> str:
    """A skops pipeline over iris plus a categorical ``colour`` column, registered."""
    return register_colour_model(served, tmp_path)


def test_unseen_category_is_422(served: Flask, client: FlaskClient, colour_model: str) -> None:
    ok = predict(client, colour_model, {**IRIS_ROW, "colour": "blue"})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert ok.get_json()["model"]["runtime"] == "sklearn"
    before = table_counts(served)
    response = predict(
        client, colour_model, [{**IRIS_ROW, "colour": "red"}, {**IRIS_ROW, "colour": "green"}]
    )
    error = assert_api_error(response, 422, "invalid_input")
    assert _detail_codes(error) == {(1, "colour", "unseen_category")}
    assert "blue" in error["details"][0]["message"] and "red" in error["details"][0]["message"]
    csv_body = "sepal_length,sepal_width,petal_length,petal_width,colour\n5.1,3.5,1.4,0.2,pink\n"
    error = assert_api_error(post_raw(client, colour_model, csv_body, "text/csv"), 422)
    assert _detail_codes(error) == {(0, "colour", "unseen_category")}
    assert table_counts(served) == before


def test_a_category_the_model_never_saw_is_422_not_500(
    served: Flask, client: FlaskClient, colour_model: str
) -> None:
    from modelport.serving import registry

    # An admin's schema edit allows a colour the fitted encoder does not know.
    with served.app_context():
        version = registry.get_version(registry.get_model(colour_model), 1)
        schema = json.loads(json.dumps(version.input_schema))
        [colour] = [f for f in schema["features"] if f["name"] == "colour"]
        colour["categories"].append("green")
        registry.update_schema(version, schema)
    before = table_counts(served)
    response = predict(client, colour_model, {**IRIS_ROW, "colour": "green"})
    error = assert_api_error(response, 422, "prediction_failed")
    assert "green" in error["message"]
    csv_body = "sepal_length,sepal_width,petal_length,petal_width,colour\n5.1,3.5,1.4,0.2,green\n"
    assert_api_error(post_raw(client, colour_model, csv_body, "text/csv"), 422, "prediction_failed")
    # Both requests were valid and are recorded as model errors; nothing else changed.
    assert table_counts(served) == {**before, "predictions": before["predictions"] + 2}
    assert [(r.status, r.error_code) for r in records(served)[-2:]] == [
        ("error", "model_error"),
        ("error", "model_error"),
    ]


# --- non-finite model output ---------------------------------------------------------------


@pytest.fixture
def sqrt_factory(tmp_path: Path) -> Any:
    """Registers a real ONNX regression model, y = sqrt(x) (NaN for a negative x), in an app."""
    from modelport.serving import registry

    def register(app: Flask) -> str:
        with app.app_context():
            registered = registry.create_model("sqrt", task="regression")
            registry.register_version(
                registered, path, filename=path.name, sample=pd.DataFrame({"x": [1.0, 4.0, 9.0]})
            )
        return "sqrt"

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    graph = helper.make_graph([helper.make_node("Sqrt", ["x"], ["y"])], "sqrt", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path / "sqrt.onnx"
    path.write_bytes(model.SerializeToString())
    return register


@pytest.fixture
def sqrt_model(served: Flask, sqrt_factory: Any) -> str:
    return sqrt_factory(served)


@pytest.mark.db
def test_non_finite_model_output_is_422_never_nan(
    served: Flask, client: FlaskClient, sqrt_model: str
) -> None:
    ok = predict(client, sqrt_model, {"x": [4.0, 9.0]})
    assert [p["value"] for p in ok.get_json()["predictions"]] == [2.0, 3.0]
    before = table_counts(served)
    response = predict(client, sqrt_model, [{"x": 4.0}, {"x": -1.0}])
    error = assert_api_error(response, 422, "prediction_failed")
    strict_json(response.get_data(as_text=True))
    assert "finite" in error["message"]
    # The failed prediction is recorded as an error (it was a valid request), nothing else.
    after = table_counts(served)
    assert after == {**before, "predictions": before["predictions"] + 1}
    assert (records(served)[-1].status, records(served)[-1].error_code) == (
        "error",
        "non_finite_output",
    )
    # CSV: the same model error is a 422 before any CSV is sent.
    response = post_raw(client, sqrt_model, "x\n4\n-1\n", "text/csv")
    assert_api_error(response, 422, "prediction_failed")
    strict_json(response.get_data(as_text=True))
    assert records(served)[-1].status == "error"


def test_non_finite_output_after_the_first_chunk_ends_the_stream_as_an_error(
    app_factory: Any, sqrt_factory: Any
) -> None:
    from modelport.serving.csvstream import CHUNK_ROWS

    app = app_factory()
    sqrt_factory(app)
    response = app.test_client().post(
        PREDICT.format("sqrt"),
        data="x\n" + "4\n" * CHUNK_ROWS + "-1\n",
        content_type="text/csv",
        buffered=False,
    )
    # The first chunk was fine, so the answer had begun; the failure cuts the stream off
    # (the server drops the connection) rather than sending a complete-looking file.
    assert response.status_code == 200
    chunks = iter(response.response)
    assert next(chunks).count(b"\n") == CHUNK_ROWS + 1
    with pytest.raises(PredictionFailed):
        next(chunks)
    response.close()
    [record] = records(app)
    assert (record.status, record.error_code, record.row_count) == (
        "error",
        "non_finite_output",
        CHUNK_ROWS,
    )


# --- a million rows through the CSV endpoint (SQLite only: not marked db) -----------------


def _million_row_body() -> tuple[bytes, int]:
    """An iris CSV of 1,000,000 rows: a block of 1,000 random rows made with numpy, repeated."""
    rng = np.random.default_rng(0)
    X, _ = load_iris(return_X_y=True)
    block = X[rng.integers(0, len(X), 1000)] + rng.normal(0, 0.05, (1000, 4))
    text = pd.DataFrame(np.round(block, 2), columns=IRIS_COLUMNS).to_csv(index=False)
    header, _, rows = text.partition("\n")
    return (header + "\n").encode() + rows.encode() * 1000, 1_000_000


def test_a_million_row_csv_streams_through(app_factory: Any, demo_models: dict[str, Any]) -> None:
    app = app_factory()
    register_demo(app, demo_models, "iris")
    body, count = _million_row_body()
    client = app.test_client()
    response = client.post(
        PREDICT.format("iris"), data=body, content_type="text/csv", buffered=False
    )
    assert response.status_code == 200
    assert response.headers["X-Rows"] == str(count)
    del body
    lines = 0
    chunks = 0
    first = b""
    for chunk in response.response:
        if not first:
            first = chunk[:200]
        lines += chunk.count(b"\n")
        chunks += 1
    response.close()
    assert lines == count + 1
    assert chunks > 1  # streamed in pieces, not built whole
    assert first.startswith(
        b"sepal_length,sepal_width,petal_length,petal_width,prediction,probability_setosa"
    )
    [record] = records(app)
    assert (record.row_count, record.status, record.source) == (count, "ok", "csv")
    assert record.truncated is True
    assert record.inputs and len(record.inputs) <= 200
