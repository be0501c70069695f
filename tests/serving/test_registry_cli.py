"""``modelport register`` and ``modelport demo`` end to end (issue 3, items 7 and 9)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import skops.io as sio
from flask import Flask
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression

from tests.support.databases import table_counts
from tests.support.models import IRIS_ROW

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture
def iris_files(demo_models: dict[str, Any], tmp_path: Path) -> tuple[Path, Path]:
    """The iris demo model's skops file and a sample CSV of its training data."""
    item = demo_models["iris"]
    assert item.artifact.suffix == ".skops"
    sample = tmp_path / "iris-sample.csv"
    item.sample.to_csv(sample, index=False)
    return item.artifact, sample


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


def predict_version(app: Flask, ref: str = "flowers") -> int:
    response = app.test_client().post(f"/api/v1/models/{ref}/predict", json={"inputs": IRIS_ROW})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["predictions"][0]["label"] == "setosa"
    return response.get_json()["model"]["version"]


@pytest.mark.db
def test_register_then_predict_then_register_again(
    app_factory: Any, iris_files: tuple[Path, Path]
) -> None:
    app = app_factory(REGISTRY_POLL_SECONDS="0.001")
    artifact, sample = iris_files
    result = run(
        app,
        "register",
        str(artifact),
        "--name",
        "flowers",
        "--sample",
        str(sample),
        "--task",
        "classification",
        "--alias",
        "champion",
        "--metrics",
        '{"accuracy": 0.97}',
    )
    assert result.exit_code == 0, result.output
    assert "Registered flowers version 1" in result.output
    assert predict_version(app) == 1
    assert predict_version(app, "flowers@champion") == 1
    detail = app.test_client().get("/api/v1/models/flowers").get_json()
    assert detail["task"] == "classification"
    assert detail["aliases"] == {"champion": 1}
    assert detail["versions"][0]["metrics"] == {"accuracy": 0.97}
    assert [f["name"] for f in detail["versions"][0]["input_schema"]["features"]] == list(IRIS_ROW)

    # Again, without an alias: version 2 exists, the champion stays on version 1.
    again = run(app, "register", str(artifact), "--name", "flowers", "--sample", str(sample))
    assert again.exit_code == 0, again.output
    assert "Registered flowers version 2" in again.output
    assert predict_version(app) == 1
    assert (
        app.test_client()
        .post("/api/v1/models/flowers/versions/2/predict", json={"inputs": IRIS_ROW})
        .get_json()["model"]["version"]
        == 2
    )
    # And with the alias: the champion moves.
    third = run(
        app, "register", str(artifact), "--name", "flowers", "--sample", str(sample),
        "--alias", "champion",
    )  # fmt: skip
    assert third.exit_code == 0, third.output
    assert predict_version(app) == 3


def _refusals(tmp_path: Path, artifact: Path, sample: Path) -> list[tuple[list[str], str]]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    regressor = tmp_path / "regressor.skops"
    sio.dump(LinearRegression().fit(X, y), regressor)
    diabetes_sample = tmp_path / "diabetes.csv"
    X.head(50).to_csv(diabetes_sample, index=False)
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps(LogisticRegression()))
    garbage = tmp_path / "model.skops"
    garbage.write_bytes(b"this is not a model at all")
    empty_sample = tmp_path / "empty.csv"
    empty_sample.write_text("")
    wrong_sample = tmp_path / "wrong.csv"
    wrong_sample.write_text("height,width\n1,2\n")
    a, s = str(artifact), str(sample)
    return [
        (["register", a, "--name", "new-one", "--sample", s], "--task"),
        (["register", a, "--name", "Bad Name!", "--sample", s, "--task", "classification"], "name"),
        (["register", str(pickled), "--name", "p", "--sample", s, "--task", "classification"],
         "pickle"),
        (["register", str(garbage), "--name", "g", "--sample", s, "--task", "classification"],
         "skops"),
        (["register", a, "--name", "e", "--sample", str(empty_sample), "--task",
          "classification"], "sample"),
        (["register", a, "--name", "w", "--sample", str(wrong_sample), "--task",
          "classification"], "sepal"),
        (["register", str(regressor), "--name", "r", "--sample", str(diabetes_sample), "--task",
          "classification"], "regression"),
        (["register", a, "--name", "m", "--sample", s, "--task", "classification", "--metrics",
          "{not json"], "--metrics"),
        (["register", a, "--name", "m", "--sample", s, "--task", "classification", "--metrics",
          "[1, 2]"], "--metrics"),
        (["register", a, "--name", "m", "--sample", s, "--task", "classification", "--alias",
          "Not An Alias"], "alias"),
        (["register", str(tmp_path / "missing.skops"), "--name", "m", "--sample", s], "missing"),
        (["register", a, "--name", "m", "--sample", s, "--task", "clustering"], "clustering"),
    ]  # fmt: skip


@pytest.mark.db
def test_register_refuses_bad_input_with_a_clear_message(
    app_factory: Any, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    app = app_factory()
    before = table_counts(app)
    for args, hint in _refusals(tmp_path, *iris_files):
        result = run(app, *args)
        assert result.exit_code != 0, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            args,
            repr(result.exception),
        )
        assert "Traceback" not in result.output
        assert hint.lower() in result.output.lower(), (args, result.output)
        assert table_counts(app)["model_versions"] == before["model_versions"], args


@pytest.mark.db
def test_a_refused_register_leaves_no_model_behind(
    app_factory: Any, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    app = app_factory()
    garbage = tmp_path / "model.skops"
    garbage.write_bytes(b"this is not a model at all")
    args = ["--sample", str(iris_files[1]), "--task", "classification"]
    assert run(app, "register", str(garbage), "--name", "left-behind", *args).exit_code == 1
    assert app.test_client().get("/api/v1/models").get_json()["items"] == []


def test_demo_if_empty_loads_four_models_once(app_factory: Any) -> None:
    app = app_factory()
    first = run(app, "demo", "--if-empty")
    assert first.exit_code == 0, first.output
    listed = app.test_client().get("/api/v1/models").get_json()
    assert sorted(m["name"] for m in listed["items"]) == [
        "breast-cancer",
        "diabetes",
        "digits",
        "iris",
    ]
    assert all(m["serving_version"] == 1 for m in listed["items"])
    assert all(m["aliases"] == {"champion": 1} for m in listed["items"])
    assert predict_version(app, "iris") == 1
    # The training rows of the four models, with their target, are datasets to explore.
    with app.app_context():
        from modelport.analytics import datasets

        registered, total = datasets.list_datasets()
        shapes = {d.name: (d.latest.row_count, d.latest.column_count) for d in registered}
    assert total == 4
    assert shapes["iris-train"] == (112, 5)
    assert shapes["diabetes-train"][1] == 11

    second = run(app, "demo", "--if-empty")
    assert second.exit_code == 0, second.output
    assert "already" in second.output
    again = app.test_client().get("/api/v1/models").get_json()
    assert all(m["serving_version"] == 1 for m in again["items"])
    assert again["total"] == 4
