"""CSV injection (OWASP): every CSV Modelport writes neutralises cells a spreadsheet would run
as formulas, and leaves finite numbers alone."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.serving.csvcells import safe_cell, safe_column, safe_text
from tests.support.fuzzing import examples
from tests.support.html import csrf_token
from tests.support.tokens import issue_token
from tests.support.users import make_user

PAYLOADS = {
    "=cmd|' /C calc'!A0": "'=cmd|' /C calc'!A0",
    "@SUM(1+1)": "'@SUM(1+1)",
    "+1+1": "'+1+1",
    "-2+3": "'-2+3",
    "\t=1+1": "'\t=1+1",
    "\r=1+1": "'\r=1+1",
    "-inf": "'-inf",
    "+1e999": "'+1e999",
}
NUMBERS = ["-1.5", "+3", "-2e-5", "-0", "+.5", "12", "1e5"]


def test_the_rule_prefixes_formulas_and_keeps_finite_numbers() -> None:
    for payload, safe in PAYLOADS.items():
        assert safe_text(payload) == safe
    for number in NUMBERS:
        assert safe_text(number) == number
    for plain in ("", "x=1", " =1", "'=1", "1-2"):
        assert safe_text(plain) == plain
    assert [safe_cell(v) for v in (-1.5, 3, None, True, float("-inf"))] == [
        -1.5,
        3,
        None,
        True,
        "'-inf",
    ]


CELL = st.one_of(
    st.lists(
        st.sampled_from([*"=+-@\t\r\n 0123456789.eE_x,\"'", "١", "٣", "nan", "inf"]),
        max_size=12,
    ).map("".join),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats().map(lambda f: f"+{f!r}"),
    st.integers().map(lambda i: f"-{abs(i)}" + "9" * 400),  # beyond a float's range
    st.text(max_size=8),
)


@settings(max_examples=examples(500), deadline=None)
@given(st.lists(CELL, max_size=40))
def test_the_column_form_follows_the_same_rule_as_the_scalar_one(cells: list[str]) -> None:
    assert safe_column(pa.array(cells, pa.string())).to_pylist() == [safe_text(c) for c in cells]


# --- every writer ----------------------------------------------------------------------------

LABELS = ("=2+3", "-1", "@here")


@pytest.fixture
def formulas(app: Flask, tmp_path: Path) -> str:
    """A model trained on a formula category (the most frequent, so the example) and a
    negative number, whose class labels are a formula, a number and an @-cell."""
    import skops.io as sio
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from modelport.serving import registry

    rng = np.random.default_rng(0)
    x = np.round(rng.normal(-1.5, 1.0, 300), 2)
    colour = rng.choice(["=1+1", "=1+1", "@SUM(1)", "blue"], 300)
    frame = pd.DataFrame({"x": x, "colour": colour})
    labels = np.where(x < -2, LABELS[0], np.where(x < -1, LABELS[1], LABELS[2]))
    pipeline = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["colour"]), remainder="passthrough"),
        LogisticRegression(max_iter=1000),
    ).fit(frame, labels)
    path = tmp_path / "formulas.skops"
    sio.dump(pipeline, path)
    with app.app_context():
        model = registry.create_model("formulas", task="classification")
        registry.register_version(model, path, filename=path.name, sample=frame)
    return "formulas"


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_the_csv_answer_neutralises_pass_through_prediction_and_header_cells(
    app: Flask, client: Any, formulas: str
) -> None:
    cells = [*PAYLOADS, *NUMBERS, "plain"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["=HYPERLINK(1)", "x", "colour", "note"])
    for i, cell in enumerate(cells):
        writer.writerow([i, -3 if i % 2 == 0 else 0, "=1+1", cell])
    body = buffer.getvalue()
    answers = []
    response = client.post(f"/api/v1/models/{formulas}/predict", data=body, content_type="text/csv")
    assert response.status_code == 200, response.get_data(as_text=True)
    answers.append(response.get_data(as_text=True))
    page = client.post(
        f"/models/{formulas}/batch",
        data={
            "file": (io.BytesIO(body.encode()), "rows.csv"),
            "csrf_token": csrf_token(client, f"/models/{formulas}/batch"),
        },
        content_type="multipart/form-data",
    )
    assert page.status_code == 200, page.get_data(as_text=True)
    answers.append(page.get_data(as_text=True))
    for answer in answers:
        header, *rows = _rows(answer)
        assert header[:4] == ["'=HYPERLINK(1)", "x", "colour", "note"]
        assert [row[3] for row in rows] == [safe_text(c) for c in cells]
        assert [row[3] for row in rows][: len(PAYLOADS)] == list(PAYLOADS.values())
        assert [row[1] for row in rows] == ["-3", "0"] * 8  # numbers stay as they are
        assert {row[2] for row in rows} == {"'=1+1"}
        labels = {row[header.index("prediction")] for row in rows}
        assert labels == {"'=2+3", "'@here"}
        assert all(not row[-1].startswith("'") for row in rows)  # probabilities are numbers


def test_the_json_answer_as_csv_neutralises_the_labels(client: Any, formulas: str) -> None:
    response = client.post(
        f"/api/v1/models/{formulas}/predict",
        json={"inputs": [{"x": -3.0, "colour": "=1+1"}, {"x": -1.5, "colour": "blue"}]},
        headers={"Accept": "text/csv"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    header, *rows = _rows(response.get_data(as_text=True))
    assert header[0] == "prediction"
    assert [row[0] for row in rows] == ["'=2+3", "-1"]
    assert header[1:] == [f"probability_{label}" for label in sorted(LABELS)]


def test_the_example_csv_neutralises_the_example_and_keeps_its_numbers(
    client: Any, formulas: str
) -> None:
    response = client.get(f"/models/{formulas}/example.csv")
    assert response.status_code == 200
    header, *rows = _rows(response.get_data(as_text=True))
    assert header == ["x", "colour"]
    assert rows and all(row[1] == "'=1+1" for row in rows)
    assert all(float(row[0]) < 0 and row[0].startswith("-") for row in rows)


def test_the_history_export_neutralises_a_request_id_from_the_client(
    app: Flask, client: Any, formulas: str
) -> None:
    token = {"Authorization": f"Bearer {issue_token(app, make_user(app), ['predict'])}"}
    for request_id in ("-1-1", "-15"):  # both pass the request-id rule [A-Za-z0-9._-]
        response = client.post(
            f"/api/v1/models/{formulas}/predict",
            json={"inputs": {"x": -3.0, "colour": "blue"}},
            headers={**token, "X-Request-ID": request_id},
        )
        assert response.status_code == 200
    export = client.get("/api/v1/predictions?format=csv", headers=token)
    assert export.status_code == 200
    exported = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert sorted(row["request_id"] for row in exported) == ["'-1-1", "-15"]
    assert all(float(row["latency_ms"]) > 0 for row in exported)
