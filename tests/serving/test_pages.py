"""Serving pages (issue 3 item 10): catalog, model page and its form, batch CSV, history, admin.

The pages are thin views over the serving services, so these tests drive them as a browser
does (forms, CSRF, multipart uploads) and check what a visitor sees and what the database
holds afterwards.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from modelport.extensions import db
from modelport.models.predictions import PredictionRecord
from modelport.serving import registry
from modelport.serving.schema import Feature, InputSchema
from modelport.serving.web.examples import client_examples, v2_request
from tests.support.databases import table_counts
from tests.support.html import (
    assert_error_beside_field,
    check_page,
    csrf_token,
    parse,
    visible_text,
)
from tests.support.models import IRIS_ROW, register_demo
from tests.support.users import login, make_user

IRIS = list(IRIS_ROW)
ANN, BOB, ADMIN = "ann@example.com", "bob@example.com", "admin@example.com"
EXPORT = "/api/v1/predictions?"


def signed_in(app: Flask, email: str, role: str = "user") -> FlaskClient:
    make_user(app, email, name=email.split("@")[0], role=role)
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def page(client: FlaskClient, path: str, lang: str = "en", **kwargs: Any) -> Any:
    """GET a page that must answer 200, checked against the house rules; its parsed tree."""
    response = client.get(path, **kwargs)
    assert response.status_code == 200, (path, response.status_code)
    return check_page(response.get_data(as_text=True), lang)


def form_data(client: FlaskClient, row: dict[str, Any], path: str = "/models/iris") -> dict:
    data = {f"feature:{name}": str(value) for name, value in row.items()}
    data["csrf_token"] = csrf_token(client, path)
    return data


def by_id(root: Any, element_id: str) -> Any:
    (node,) = [n for n in root.walk() if n.attrs.get("id") == element_id]
    return node


def records(app: Flask) -> list[PredictionRecord]:
    with app.app_context():
        rows = db.session.scalars(select(PredictionRecord).order_by(PredictionRecord.id)).all()
        db.session.expunge_all()
        return list(rows)


def csv_upload(text: str, name: str = "rows.csv") -> tuple[io.BytesIO, str]:
    return io.BytesIO(text.encode()), name


def iris_csv(rows: list[dict[str, Any]], extra: str | None = None) -> str:
    buffer = io.StringIO()
    columns = ([extra] if extra else []) + IRIS
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    for i, row in enumerate(rows):
        writer.writerow({**row, **({extra: f"r{i}"} if extra else {})})
    return buffer.getvalue()


# ---- who sees what ------------------------------------------------------------------------


def test_each_role_sees_the_pages_it_may(app: Flask, demo_models: dict) -> None:
    register_demo(app, demo_models, "iris")
    register_demo(app, demo_models, "diabetes", visibility="private")
    anonymous = app.test_client()
    user = signed_in(app, ANN)
    admin = signed_in(app, ADMIN, role="admin")

    # Anonymous visitors: public models only; a private one does not exist for them.
    root = page(anonymous, "/models")
    links = {n.attrs.get("href") for n in root.walk() if n.tag == "a"}
    assert "/models/iris" in links and "/models/diabetes" not in links
    assert "onnxruntime" in root.all_text() and "accuracy" in root.all_text()
    for path in ("/models/diabetes", "/models/diabetes/batch", "/models/diabetes/example.csv"):
        assert anonymous.get(path).status_code == 404, path
    token = csrf_token(anonymous, "/models")
    assert anonymous.post("/models/diabetes", data={"csrf_token": token}).status_code == 404
    assert anonymous.get("/models/nothing-here").status_code == 404
    for path in ("/predictions", "/predictions/1", "/admin/models", "/admin/models/new"):
        response = anonymous.get(path)
        assert response.status_code == 302 and response.location.startswith("/auth/login"), path

    # Signed-in users: private models too, with a token in their examples; no admin pages.
    root = page(user, "/models")
    links = {n.attrs.get("href") for n in root.walk() if n.tag == "a"}
    assert {"/models/iris", "/models/diabetes", "/predictions"} <= links
    root = page(user, "/models/diabetes")
    assert "Authorization: Bearer $API_TOKEN" in by_id(root, "example-curl").all_text()
    page(user, "/models/diabetes/batch")
    page(user, "/predictions")
    token = csrf_token(user, "/models")
    for method, path in [
        ("GET", "/admin/models"),
        ("GET", "/admin/models/new"),
        ("POST", "/admin/models/new"),
        ("GET", "/admin/models/iris/upload"),
        ("POST", "/admin/models/iris/upload"),
        ("POST", "/admin/models/iris/aliases"),
        ("POST", "/admin/models/iris/versions/1/archive"),
        ("GET", "/admin/models/iris/versions/1/schema"),
        ("POST", "/admin/models/iris/versions/1/schema"),
    ]:
        response = user.open(path, method=method, data={"csrf_token": token})
        assert response.status_code == 403, (method, path)

    # Administrators: the registry pages.
    text = page(admin, "/admin/models").all_text()
    assert "iris" in text and "diabetes" in text and "champion" in text
    page(admin, "/admin/models/new")
    page(admin, "/admin/models/iris/upload")
    page(admin, "/admin/models/iris/versions/1/schema")
    page(admin, "/models")


def test_model_page_shows_schema_versions_form_and_examples(
    app: Flask, client: FlaskClient, demo_models: dict
) -> None:
    register_demo(app, demo_models, "iris")
    root = page(client, "/models/iris")
    text = visible_text(root)
    for expected in ("Iris species", "Input schema", "Sepal length in cm", "accuracy", "champion"):
        assert expected in root.all_text(), expected
    # Parity figures of the compiled version: rows compared, labels equal, difference.
    assert "labels equal: yes" in text and "onnxruntime" in root.all_text()
    # The form: one number input per feature, in schema order, pre-filled with the examples.
    with app.app_context():
        schema = InputSchema.from_dict(registry.get_model("iris").versions[0].input_schema)
    inputs = [n for n in root.walk() if n.tag == "input" and n.attrs.get("type") == "number"]
    assert [n.attrs["name"] for n in inputs] == [f"feature:{f.name}" for f in schema.features]
    for node, feature in zip(inputs, schema.features, strict=True):
        assert node.attrs["step"] == "any"
        assert float(node.attrs["min"]) == feature.minimum
        assert float(node.attrs["max"]) == feature.maximum
        assert float(node.attrs["value"]) == feature.example
    # Copy-ready examples that the service really accepts.
    curl = shlex.split(by_id(root, "example-curl").all_text().replace("\\\n", " "))
    body = json.loads(curl[curl.index("-d") + 1])
    assert body == {"inputs": schema.example_row()}
    # As curl sends it: no cookies (so no CSRF token either).
    answer = app.test_client().post("/api/v1/models/iris/predict", json=body)
    assert answer.status_code == 200 and answer.get_json()["predictions"][0]["label"]
    v2 = shlex.split(by_id(root, "example-v2-curl").all_text().replace("\\\n", " "))
    assert v2[3] == "http://localhost/v2/models/iris/infer"
    v2_body = json.loads(v2[v2.index("-d") + 1])
    assert v2_body == {
        "inputs": [
            {
                "name": "input",
                "shape": [1, 4],
                "datatype": "FP32",
                "data": [float(schema.example_row()[n]) for n in IRIS],
            }
        ]
    }
    answer = app.test_client().post("/v2/models/iris/infer", json=v2_body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    python = by_id(root, "example-python").all_text()
    assert "requests.post(" in python and "'http://localhost/api/v1/models/iris/predict'" in python
    compile(python, "example.py", "exec")
    triton = by_id(root, "example-tritonclient").all_text()
    assert 'InferInput("input", list(data.shape), "FP32")' in triton
    compile(triton, "triton.py", "exec")
    # The copy buttons come from copy.js, the only script.
    scripts = [n.attrs["src"] for n in root.walk() if n.tag == "script"]
    assert scripts == ["/static/js/copy.js"]


def test_examples_for_a_schema_with_text_features() -> None:
    """Without an all-numeric schema there is no single FP32 tensor: one input per feature."""
    schema = InputSchema(
        [
            Feature("size", "number", minimum=1.0, maximum=9.0, example=2.5),
            Feature("colour", "category", categories=["red", "it's blue"], example="it's blue"),
            Feature("fresh", "boolean", example=True),
        ]
    )
    assert v2_request(schema, schema.example_row())["inputs"] == [
        {"name": "size", "shape": [1], "datatype": "FP64", "data": [2.5]},
        {"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["it's blue"]},
        {"name": "fresh", "shape": [1], "datatype": "BOOL", "data": [True]},
    ]
    examples = client_examples("fruit", schema, "https://models.example/", private=True)
    # The shell quoting survives a quote inside a value.
    curl = shlex.split(examples.curl.replace("\\\n", " "))
    assert json.loads(curl[curl.index("-d") + 1])["inputs"]["colour"] == "it's blue"
    assert "Authorization: Bearer $API_TOKEN" in examples.curl
    assert "InferenceServerClient('models.example', ssl=True)" in examples.tritonclient
    compile(examples.python, "example.py", "exec")
    compile(examples.tritonclient, "triton.py", "exec")


# ---- the prediction form ------------------------------------------------------------------


@pytest.mark.db
def test_form_predicts_warns_and_refuses_bad_input(
    app: Flask, client: FlaskClient, demo_models: dict
) -> None:
    register_demo(app, demo_models, "iris")
    response = client.post("/models/iris", data=form_data(client, IRIS_ROW))
    assert response.status_code == 200
    root = check_page(response.get_data(as_text=True), "en")
    result = by_id(root, "result")
    assert [n for n in result.walk() if "predicted" in n.classes()][0].all_text() == "setosa"
    meters = [n for n in result.walk() if n.tag == "meter"]
    assert [m.attrs["aria-label"] for m in meters][0] == "setosa"
    assert len(meters) == 3 and float(meters[0].attrs["value"]) > 0.5
    (record,) = records(app)
    assert (record.source, record.status, record.row_count) == ("page", "ok", 1)
    assert record.inputs == [IRIS_ROW] and record.outputs[0]["label"] == "setosa"

    # Out of the training range: predicted, with the warning beside the field.
    response = client.post("/models/iris", data=form_data(client, {**IRIS_ROW, "petal_length": 50}))
    assert response.status_code == 200
    root = check_page(response.get_data(as_text=True), "en")
    warning = by_id(root, "feature-2-warning")
    assert "predicted anyway" in warning.all_text()
    assert "feature-2-warning" in by_id(root, "feature-2").attrs["aria-describedby"]
    assert len(records(app)) == 2

    # Bad input: messages beside the fields, the values kept, nothing written.
    before = table_counts(app)
    bad = {**IRIS_ROW, "sepal_length": "abc", "petal_width": ""}
    response = client.post("/models/iris", data=form_data(client, bad))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    check_page(html, "en")
    assert_error_beside_field(html, "feature-0", "Enter a number.")
    assert_error_beside_field(html, "feature-3", "This field is required.")
    assert by_id(parse(html), "feature-0").attrs["value"] == "abc"
    assert table_counts(app) == before


def test_form_predictions_share_the_api_rate_limit(app_factory: Any, demo_models: dict) -> None:
    app = app_factory(PREDICT_LIMIT_ANONYMOUS="2 per minute")
    register_demo(app, demo_models, "iris")
    client = app.test_client()
    for _attempt in range(3):  # showing the page is not a prediction
        assert client.get("/models/iris").status_code == 200
    assert client.post("/models/iris", data=form_data(client, IRIS_ROW)).status_code == 200
    api = app.test_client().post("/api/v1/models/iris/predict", json={"inputs": IRIS_ROW})
    assert api.status_code == 200
    response = client.post("/models/iris", data=form_data(client, IRIS_ROW))
    assert response.status_code == 429
    assert "Too many requests" in visible_text(parse(response.get_data(as_text=True)))
    assert len(records(app)) == 2


# ---- batch --------------------------------------------------------------------------------


def test_batch_upload_answers_the_csv_with_prediction_columns(
    app_factory: Any, demo_models: dict
) -> None:
    # An upload larger than the ordinary body limit: the batch page takes CSV-sized bodies.
    app = app_factory(MAX_CONTENT_LENGTH="2048")
    register_demo(app, demo_models, "iris")
    client = app.test_client()
    root = page(client, "/models/iris/batch")
    assert by_id(root, "csv-header").all_text() == ",".join(IRIS)
    assert [n.attrs["src"] for n in root.walk() if n.tag == "script"] == ["/static/js/batch.js"]
    assert client.get("/static/js/batch.js").status_code == 200

    example = client.get("/models/iris/example.csv")
    assert example.status_code == 200 and example.mimetype == "text/csv"
    lines = example.get_data(as_text=True).splitlines()
    assert lines[0] == ",".join(IRIS) and len(lines) == 4

    rows = [IRIS_ROW] * 150
    text = iris_csv(rows, extra="id")
    assert len(text) > 2048
    response = client.post(
        "/models/iris/batch",
        data={"file": csv_upload(text), "csrf_token": csrf_token(client, "/models/iris/batch")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_data(as_text=True)[-2000:]
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="iris-predictions.csv"'
    answer = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(answer) == 150
    assert list(answer[0]) == [
        "id",
        *IRIS,
        "prediction",
        "probability_setosa",
        "probability_versicolor",
        "probability_virginica",
    ]
    assert answer[149]["id"] == "r149" and answer[0]["prediction"] == "setosa"
    (record,) = records(app)
    assert (record.source, record.status, record.row_count) == ("csv", "ok", 150)

    # The example file is a valid upload as it is.
    response = client.post(
        "/models/iris/batch",
        data={
            "file": (io.BytesIO(example.get_data()), "example.csv"),
            "csrf_token": csrf_token(client, "/models/iris/batch"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 200 and len(response.get_data(as_text=True).splitlines()) == 4


def test_batch_problems_are_listed_by_row_and_nothing_is_predicted(
    app_factory: Any, demo_models: dict
) -> None:
    app = app_factory(CSV_MAX_BYTES="4096")
    register_demo(app, demo_models, "iris")
    client = app.test_client()
    before = table_counts(app)
    text = iris_csv([IRIS_ROW, {**IRIS_ROW, "sepal_width": "wide"}, IRIS_ROW])
    response = client.post(
        "/models/iris/batch",
        data={"file": csv_upload(text), "csrf_token": csrf_token(client, "/models/iris/batch")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    root = check_page(response.get_data(as_text=True), "en")
    problems = by_id(root, "batch-problems")
    assert "The file has 1 problem; nothing was predicted." in visible_text(problems)
    (row,) = [n for n in problems.walk() if n.tag == "tr" and n.parent.tag == "tbody"]
    cells = [" ".join(c.all_text().split()) for c in row.children if c.tag == "td"]
    assert cells[:4] == ["2", "3", "sepal_width", "Enter a number."]
    assert "'wide'" in cells[4]

    # No file: the field says so. Too large: the limit is named. Neither writes anything.
    response = client.post(
        "/models/iris/batch", data={"csrf_token": csrf_token(client, "/models/iris/batch")}
    )
    assert response.status_code == 400
    assert_error_beside_field(response.get_data(as_text=True), "file", "Choose a file.")
    big = iris_csv([IRIS_ROW] * 400)
    response = client.post(
        "/models/iris/batch",
        data={"file": csv_upload(big), "csrf_token": csrf_token(client, "/models/iris/batch")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert "The file is too large" in visible_text(parse(response.get_data(as_text=True)))
    assert table_counts(app) == before


# ---- history ------------------------------------------------------------------------------


@pytest.mark.db
def test_history_shows_own_records_only(app: Flask, demo_models: dict) -> None:
    register_demo(app, demo_models, "iris")
    ann, bob = signed_in(app, ANN), signed_in(app, BOB)
    admin = signed_in(app, ADMIN, role="admin")
    assert ann.post("/models/iris", data=form_data(ann, IRIS_ROW)).status_code == 200
    bob_row = {**IRIS_ROW, "sepal_length": 6.3}
    assert bob.post("/models/iris", data=form_data(bob, bob_row)).status_code == 200
    ann_record, bob_record = records(app)

    root = page(ann, "/predictions")
    assert "1 prediction" in visible_text(root)
    links = {n.attrs.get("href") for n in root.walk() if n.tag == "a"}
    assert f"/predictions/{ann_record.id}" in links
    assert f"/predictions/{bob_record.id}" not in links
    assert "User id" not in visible_text(root)
    detail = page(ann, f"/predictions/{ann_record.id}")
    assert "sepal_length" in detail.all_text() and "setosa" in detail.all_text()
    assert ann.get(f"/predictions/{bob_record.id}").status_code == 404
    assert ann.get("/predictions/999999").status_code == 404

    # The CSV export is the API's, reached with the session cookie.
    (export,) = [n.attrs["href"] for n in root.walk() if n.attrs.get("href", "").startswith(EXPORT)]
    response = ann.get(export)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert len(response.get_data(as_text=True).splitlines()) == 2

    # Filters: by model and by date (the until day is included); bad dates are refused.
    today = datetime.now(UTC).date()
    assert "1 prediction" in visible_text(page(ann, f"/predictions?model=iris&until={today}"))
    tomorrow = today + timedelta(days=1)
    root = page(ann, f"/predictions?since={tomorrow}")
    assert "0 predictions" in visible_text(root) and "No predictions match." in visible_text(root)
    (export,) = [n.attrs["href"] for n in root.walk() if n.attrs.get("href", "").startswith(EXPORT)]
    assert f"since={tomorrow}T00" in export
    assert ann.get(export).get_data(as_text=True).count("\n") == 1
    response = ann.get("/predictions?since=yesterday")
    assert response.status_code == 400
    assert_error_beside_field(response.get_data(as_text=True), "since", "Not a valid date value.")

    # Administrators see everyone's, with the user; pages of page_size rows.
    root = page(admin, "/predictions?page_size=1")
    text = visible_text(root)
    assert "2 predictions" in text and "User id" in text and "Page 1 of 2" in text
    assert "/predictions?page=2&page_size=1" in {n.attrs.get("href") for n in root.walk()}
    assert page(admin, f"/predictions/{bob_record.id}")


# ---- the registry admin --------------------------------------------------------------------


def _sample_csv(demo: Any) -> bytes:
    return demo.sample.to_csv(index=False).encode()


def _upload(client: FlaskClient, name: str, demo: Any, sample: bytes, alias: str = "") -> Any:
    return client.post(
        f"/admin/models/{name}/upload",
        data={
            "artifact": (io.BytesIO(demo.artifact.read_bytes()), demo.artifact.name),
            "sample": (io.BytesIO(sample), "sample.csv"),
            "alias": alias,
            "csrf_token": csrf_token(client, f"/admin/models/{name}/upload"),
        },
        content_type="multipart/form-data",
    )


@pytest.mark.db
def test_admin_creates_uploads_moves_an_alias_and_archives(
    app_factory: Any, demo_models: dict
) -> None:
    # A model file and its sample are larger than ordinary bodies: the upload page takes them.
    app = app_factory(MAX_CONTENT_LENGTH="2048")
    admin = signed_in(app, ADMIN, role="admin")
    iris = demo_models["iris"]
    token = csrf_token(admin, "/admin/models/new")
    model = {
        "name": "flowers",
        "title": "Flowers",
        "description": "Iris again.",
        "task": "classification",
        "visibility": "private",
        "csrf_token": token,
    }
    response = admin.post("/admin/models/new", data=model)
    assert response.status_code == 302 and response.location == "/admin/models/flowers/upload"

    # Refusals leave everything as it was and say why beside the field.
    before = table_counts(app)
    response = admin.post("/admin/models/new", data=model)
    assert response.status_code == 409
    assert_error_beside_field(
        response.get_data(as_text=True), "name", "A model with this name already exists."
    )
    response = admin.post("/admin/models/new", data={**model, "name": "Not A Name"})
    assert response.status_code == 422
    response = _upload(admin, "flowers", iris, b"colour,weight\nred,3\nblue,4\n")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    check_page(html, "en")
    assert_error_beside_field(html, "sample", "The sample lacks columns")
    response = _upload(admin, "flowers", iris, _sample_csv(iris), alias="Not An Alias")
    assert response.status_code == 422
    assert_error_beside_field(response.get_data(as_text=True), "alias", "An alias is 1–40")
    assert table_counts(app) == before

    # Two versions, the first with the champion alias.
    assert iris.artifact.stat().st_size + len(_sample_csv(iris)) > 2048
    response = _upload(admin, "flowers", iris, _sample_csv(iris), alias="champion")
    assert response.status_code == 302 and response.location == "/admin/models"
    assert "Version 1 of flowers is registered" in visible_text(page(admin, "/admin/models"))
    assert _upload(admin, "flowers", iris, _sample_csv(iris)).status_code == 302
    with app.app_context():
        flowers = registry.get_model("flowers")
        assert (flowers.visibility, flowers.title) == ("private", "Flowers")
        assert [v.runtime for v in flowers.versions] == ["onnxruntime", "onnxruntime"]
        assert flowers.alias_map() == {"champion": 1}

    token = csrf_token(admin, "/admin/models")
    response = admin.post(
        "/admin/models/flowers/aliases",
        data={"alias": "champion", "version": "2", "csrf_token": token},
    )
    assert response.status_code == 302
    response = admin.post("/admin/models/flowers/versions/1/archive", data={"csrf_token": token})
    assert response.status_code == 302
    with app.app_context():
        flowers = registry.get_model("flowers")
        assert flowers.alias_map() == {"champion": 2}
        assert [v.status for v in flowers.versions] == ["archived", "ready"]

    # An alias cannot point at an archived version; unknown versions are 404.
    before = table_counts(app)
    response = admin.post(
        "/admin/models/flowers/aliases",
        data={"alias": "challenger", "version": "1", "csrf_token": token},
    )
    assert response.status_code == 409
    assert "An archived version cannot take an alias." in response.get_data(as_text=True)
    response = admin.post("/admin/models/flowers/versions/9/archive", data={"csrf_token": token})
    assert response.status_code == 404
    assert table_counts(app) == before

    text = page(admin, "/admin/models").all_text()
    assert "archived" in text and "flowers" in text
    assert "Serving version 2 with onnxruntime." in visible_text(page(admin, "/models/flowers"))


# ---- Korean ---------------------------------------------------------------------------------


def test_serving_pages_in_korean(app: Flask, client: FlaskClient, demo_models: dict) -> None:
    register_demo(app, demo_models, "iris")
    korean = {"Accept-Language": "ko"}
    text = visible_text(page(client, "/models", "ko", headers=korean))
    assert "모델" in text and "버전 1" in text
    text = visible_text(page(client, "/models/iris", "ko", headers=korean))
    for expected in ("입력 스키마", "예측", "버전", "프로그램에서 사용하기"):
        assert expected in text, expected
    assert "Input schema" not in text and "Try the model" not in text

    # The language switch, then a refused form: field messages in Korean.
    token = csrf_token(client, "/")
    client.post("/language", data={"lang": "ko", "next": "/models/iris", "csrf_token": token})
    bad = {**IRIS_ROW, "sepal_length": "abc"}
    response = client.post("/models/iris", data=form_data(client, bad))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    check_page(html, "ko")
    assert_error_beside_field(html, "feature-0", "숫자를 입력하십시오.")
    text = visible_text(page(client, "/models/iris/batch", "ko"))
    assert "일괄 예측" in text and "예시 CSV 내려받기" in text


def schema_form(client: FlaskClient, path: str, schema: InputSchema, **changes: str) -> dict:
    """The editor's fields as the page fills them in, with ``changes`` (field-index: value)."""
    data: dict[str, str] = {"csrf_token": csrf_token(client, path)}
    for i, f in enumerate(schema.features):
        data[f"type-{i}"] = f.type
        if f.required:
            data[f"required-{i}"] = "y"
        data[f"minimum-{i}"] = "" if f.minimum is None else str(f.minimum)
        data[f"maximum-{i}"] = "" if f.maximum is None else str(f.maximum)
        data[f"categories-{i}"] = "\n".join(f.categories or [])
        data[f"description-{i}"] = f.description
    for key, value in changes.items():
        data[key.replace("_", "-")] = value
    return data


def stored_schema(app: Flask, name: str = "iris") -> InputSchema:
    with app.app_context():
        version = registry.get_version(registry.get_model(name), 1)
        return InputSchema.from_dict(version.input_schema)


@pytest.mark.db
def test_admin_edits_a_schema_and_predictions_follow(app_factory: Any, demo_models: dict) -> None:
    app = app_factory(REGISTRY_POLL_SECONDS="0.001")
    register_demo(app, demo_models, "iris")
    admin = signed_in(app, ADMIN, role="admin")
    path = "/admin/models/iris/versions/1/schema"
    text = page(admin, path).all_text()
    assert "sepal_length" in text and "petal_width" in text
    before = stored_schema(app)

    # A narrower range for petal_width and a description: saved, and the API warns with it.
    data = schema_form(admin, path, before, maximum_3="1.0", description_3="Petal width in cm")
    response = admin.post(path, data=data)
    assert response.status_code == 302 and response.location.endswith("/admin/models")
    after = stored_schema(app)
    assert after.features[3].maximum == 1.0
    assert after.features[3].description == "Petal width in cm"
    assert after.features[0] == before.features[0]
    answer = app.test_client().post(
        "/api/v1/models/iris/predict", json={"inputs": {**IRIS_ROW, "petal_width": 1.5}}
    )
    assert answer.status_code == 200
    assert answer.get_json()["warnings"][0]["field"] == "petal_width"

    # Problems are shown on the page and nothing changes.
    counts = table_counts(app)
    for changes, words in [
        ({"minimum_0": "ten"}, "sepal_length: the minimum must be a number."),
        ({"minimum_1": "9", "maximum_1": "1"}, "sepal_width: the minimum is above the maximum."),
        ({"type_2": "category"}, "petal_length: a category feature needs its categories"),
        ({"type_2": "spreadsheet"}, "petal_length: choose a type."),
    ]:
        response = admin.post(path, data=schema_form(admin, path, after, **changes))
        assert response.status_code == 422, changes
        assert words in visible_text(parse(response.get_data(as_text=True))), changes
        assert stored_schema(app) == after
    assert table_counts(app) == counts
    assert admin.post(path, data={"type-0": "number"}).status_code == 400  # no CSRF token
    assert admin.get("/admin/models/iris/versions/7/schema").status_code == 404


def test_the_schema_editor_in_korean(app: Flask, demo_models: dict) -> None:
    register_demo(app, demo_models, "iris")
    admin = signed_in(app, ADMIN, role="admin")
    text = page(
        admin, "/admin/models/iris/versions/1/schema", "ko", headers={"Accept-Language": "ko"}
    ).all_text()
    assert "입력 스키마" in text
