"""``modelport dataset from-records`` (issue 13, item 6): predicted rows with feedback become
a dataset version, on which ``modelport train`` trains a challenger (the retraining loop).

Everything goes through the real API: predictions (one row, a batch, a CSV upload) and
feedback, then the CLI; the stored dataset is read back from the artifact store."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from modelport.analytics import monitoring
from modelport.models import PredictionRecord
from modelport.serving.demo import demo_dataset
from tests.support.databases import execute, table_counts
from tests.support.datasets import stored_files
from tests.support.http import bearer
from tests.support.mlops import cli
from tests.support.models import register_colour_model, register_demo
from tests.support.tokens import issue_token
from tests.support.users import make_user

pytestmark = [pytest.mark.db, pytest.mark.filterwarnings("ignore::UserWarning")]

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ONE = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
BATCH = [
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    {"sepal_length": 6.3, "sepal_width": 2.5, "petal_length": 4.9, "petal_width": 1.5},
    {"sepal_length": 5.7, "sepal_width": 2.8, "petal_length": 4.1, "petal_width": 1.3},
]
UPLOAD = [
    {"sepal_length": 4.9, "sepal_width": 3.1, "petal_length": 1.5, "petal_width": 0.1},
    {"sepal_length": 6.7, "sepal_width": 3.3, "petal_length": 5.7, "petal_width": 2.5},
]


@pytest.fixture
def served(app_factory: Any, demo_models: dict[str, Any], tmp_path: Path) -> Flask:
    app = app_factory(ARTIFACTS_DIR=str(tmp_path / "artifacts"), PREDICT_LIMIT_USER="1000/minute")
    register_demo(app, demo_models, "iris")
    return app


@pytest.fixture
def token(served: Flask) -> str:
    return issue_token(served, make_user(served, "ann@example.com"), scopes=["predict"])


def predict(client: FlaskClient, token: str, inputs: Any, model: str = "iris") -> int:
    """Predict through the JSON API; the record's id."""
    response = client.post(
        f"/api/v1/models/{model}/predict", json={"inputs": inputs}, headers=bearer(token)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["record_id"]


def upload(client: FlaskClient, token: str, rows: list[dict[str, Any]]) -> int:
    """Predict a CSV upload (with a column that is no feature); the record's id, from the
    caller's newest record."""
    body = io.StringIO()
    pd.DataFrame(rows).assign(note="x").to_csv(body, index=False)
    response = client.post(
        "/api/v1/models/iris/predict",
        data=body.getvalue(),
        headers={**bearer(token), "Content-Type": "text/csv"},
    )
    assert response.status_code == 200
    response.get_data()  # read to the end: the record is completed then
    listed = client.get("/api/v1/predictions?model=iris&page_size=1", headers=bearer(token))
    (newest,) = listed.get_json()["items"]
    assert newest["source"] == "csv"
    return newest["id"]


def give(client: FlaskClient, token: str, record: int, actuals: list[Any]) -> None:
    response = client.post(
        f"/api/v1/predictions/{record}/feedback", json={"actuals": actuals}, headers=bearer(token)
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def stored_frame(app: Flask, reference: str) -> pd.DataFrame:
    from modelport.mlops import training

    with app.app_context():
        frame, _ = training.read_dataset(reference)
    return frame


def expected(rows: list[dict[str, Any]], answers: list[Any], target: str) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=FEATURES).assign(**{target: answers})


def test_the_rows_with_feedback_become_a_dataset_version(served: Flask, token: str) -> None:
    client = served.test_client()
    one = predict(client, token, ONE)
    give(client, token, one, ["virginica"])
    batch = predict(client, token, BATCH)
    give(client, token, batch, ["setosa", None, "versicolor"])
    predict(client, token, BATCH[1])  # no feedback: left out
    csv = upload(client, token, UPLOAD)
    give(client, token, csv, ["setosa", "virginica"])
    give(client, token, one, ["versicolor"])  # sent again: it replaces the first answer

    result = cli(served, "dataset", "from-records", "iris")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "Stored iris-feedback version 1: 5 rows with feedback from 3 prediction records of "
        "iris version 1; target column species."
    )
    # The demo's report names its target (species); rows in the order they were predicted.
    pd.testing.assert_frame_equal(
        stored_frame(served, "iris-feedback@1"),
        expected(
            [ONE, BATCH[0], BATCH[2], *UPLOAD],
            ["versicolor", "setosa", "versicolor", "setosa", "virginica"],
            "species",
        ),
        check_dtype=False,
    )

    # A dataset that exists gets its next version; another name and target may be chosen.
    again = cli(served, "dataset", "from-records", "iris", "--target", "truth")
    assert "Stored iris-feedback version 2: 5 rows" in again.output
    assert list(stored_frame(served, "iris-feedback@2").columns) == [*FEATURES, "truth"]
    named = cli(served, "dataset", "from-records", "iris", "--name", "flowers")
    assert "Stored flowers version 1: 5 rows" in named.output


def test_since_and_until_choose_the_records_by_their_prediction_time(
    served: Flask, token: str
) -> None:
    client = served.test_client()
    old = predict(client, token, BATCH[0])
    give(client, token, old, ["setosa"])
    new = predict(client, token, BATCH[1])
    give(client, token, new, ["versicolor"])
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    execute(
        served,
        sa.update(PredictionRecord)
        .where(PredictionRecord.id == old)
        .values(created_at=ten_days_ago),
    )

    recent = cli(served, "dataset", "from-records", "iris", "--since", "7d", "--name", "recent")
    assert recent.exit_code == 0, recent.output
    assert ", predicted since " in recent.output
    assert stored_frame(served, "recent")["species"].tolist() == ["versicolor"]

    day = (ten_days_ago + timedelta(days=1)).date().isoformat()
    older = cli(served, "dataset", "from-records", "iris", "--until", day, "--name", "older")
    assert older.exit_code == 0, older.output
    assert f"predicted until {day}T00:00:00+00:00" in older.output
    assert stored_frame(served, "older")["species"].tolist() == ["setosa"]

    both = cli(served, "dataset", "from-records", "iris", "--since", "264h", "--name", "all")
    assert stored_frame(served, "all")["species"].tolist() == ["setosa", "versicolor"], both.output


def test_nothing_to_store_is_refused_and_writes_nothing(served: Flask, token: str) -> None:
    client = served.test_client()
    record = predict(client, token, BATCH)  # predictions without feedback
    before, files = table_counts(served), stored_files(served)
    result = cli(served, "dataset", "from-records", "iris")
    assert result.exit_code == 1
    assert "No prediction of iris has feedback: nothing to store." in result.output

    give(client, token, record, ["setosa", None, None])
    later = cli(served, "dataset", "from-records", "iris", "--since", "2099-01-01")
    assert later.exit_code == 1
    assert "No prediction of iris since 2099-01-01T00:00:00+00:00 has feedback" in later.output
    before = {**before, "prediction_feedback": 1}
    for args, message in (
        (["nope"], "There is no model named nope."),
        (["iris", "--version", "7"], "iris has no version 7."),
        (["iris", "--since", "yesterday"], "'yesterday' is not a time"),
        (["iris", "--since", "1d", "--until", "2d"], "--since must come before --until."),
        (["iris", "--target", "petal_width"], "petal_width is one of iris's features"),
        (["iris", "--name", "Not A Name"], "A dataset name is 1–64 lower-case letters"),
    ):
        refused = cli(served, "dataset", "from-records", *args)
        assert refused.exit_code == 1, args
        assert message in refused.output, refused.output
    assert table_counts(served) == before
    assert stored_files(served) == files


def test_rows_whose_inputs_were_purged_are_left_out_and_counted(served: Flask, token: str) -> None:
    client = served.test_client()
    old = predict(client, token, BATCH[:2])
    give(client, token, old, ["setosa", "virginica"])
    aged = datetime.now(UTC) - timedelta(days=10)
    execute(
        served,
        sa.update(PredictionRecord).where(PredictionRecord.id == old).values(created_at=aged),
    )
    assert cli(served, "purge", "--days", "5").exit_code == 0  # erases the inputs
    alone = cli(served, "dataset", "from-records", "iris")
    assert alone.exit_code == 1
    assert "2 rows of iris predicted have feedback, but none has its inputs stored" in (
        alone.output
    )
    give(client, token, predict(client, token, ONE), ["virginica"])
    result = cli(served, "dataset", "from-records", "iris")
    assert result.exit_code == 0, result.output
    assert "Stored iris-feedback version 1: 1 rows" in result.output
    assert "Left out 2 rows with feedback whose inputs were not stored" in result.output


def test_a_model_without_a_known_target_names_its_column_target(
    served: Flask, token: str, tmp_path: Path
) -> None:
    name = register_colour_model(served, tmp_path)
    client = served.test_client()
    row = {**BATCH[0], "colour": "blue"}
    give(client, token, predict(client, token, [row, row], model=name), [0, 2])
    result = cli(served, "dataset", "from-records", name)
    assert result.exit_code == 0, result.output
    frame = stored_frame(served, f"{name}-feedback")
    assert list(frame.columns) == [*FEATURES, "colour", "target"]
    assert frame["target"].tolist() == [0, 2]


def test_parse_moment_reads_relative_and_iso_times() -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert monitoring.parse_moment("7d", now=now) == now - timedelta(days=7)
    assert monitoring.parse_moment("24H", now=now) == now - timedelta(hours=24)
    assert monitoring.parse_moment("2026-11-27", now=now) == datetime(2026, 11, 27, tzinfo=UTC)
    assert monitoring.parse_moment("2026-11-27T08:30:00+09:00") == datetime(
        2026, 11, 26, 23, 30, tzinfo=UTC
    )
    with pytest.raises(monitoring.WindowError):
        monitoring.parse_moment("last week")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_the_loop_closes_train_a_challenger_on_the_feedback_and_canary_it(
    served: Flask, token: str
) -> None:
    client = served.test_client()
    features, species = demo_dataset("iris")
    rows = features.iloc[::4].to_dict("records")
    give(client, token, predict(client, token, rows), species.iloc[::4].tolist())
    made = cli(served, "dataset", "from-records", "iris")
    assert "Stored iris-feedback version 1: 38 rows" in made.output, made.output

    trained = cli(served, "train", "iris-feedback", "--recipe", "logistic-regression",
                  "--name", "iris", "--alias", "challenger", "--no-mlflow")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "Trained logistic-regression on iris-feedback@1 to predict species" in trained.output
    assert "Registered iris version 2" in trained.output
    canary = cli(served, "canary", "iris", "--share", "0.1")
    assert canary.output.strip() == (
        "iris: champion 1, challenger 2 for 10.0% of callers, shadow - on 0.0% of requests."
    )

    # The challenger's own answers, with feedback, make a dataset of version 2 alone.
    record = predict(client, token, [ONE, BATCH[0]], model="iris@challenger")
    give(client, token, record, ["virginica", "setosa"])
    second = cli(served, "dataset", "from-records", "iris", "--version", "2", "--name", "v2")
    assert "2 rows with feedback from 1 prediction records of iris version 2;" in second.output
    pd.testing.assert_frame_equal(
        stored_frame(served, "v2"),
        expected([ONE, BATCH[0]], ["virginica", "setosa"], "species"),
        check_dtype=False,
    )
    every = cli(served, "dataset", "from-records", "iris")
    assert "40 rows with feedback from 2 prediction records of iris versions 1, 2;" in (
        every.output
    )
    promoted = cli(served, "promote", "iris")
    assert promoted.output.startswith("Promoted version 2. iris: champion 2, challenger -")
