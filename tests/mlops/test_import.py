"""``modelport register models:/…`` from a real MLflow server, and the trust it needs
(issue 13, items 2 and 7)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from tests.support.databases import table_counts
from tests.support.mlops import IRIS_ROW, add_demo_dataset, cli, client

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
]


@pytest.fixture
def trained(app_factory: Any, mlflow_server: str) -> str:
    """``flowers``: a logistic regression logged to the server by ``modelport train`` as
    MLflow version 1, with the MLflow alias ``champion``."""
    app = app_factory(MLFLOW_TRACKING_URI=mlflow_server)
    name = "flowers"
    found = client(mlflow_server)
    if not found.search_registered_models(f"name='{name}'"):
        dataset = add_demo_dataset(app, "iris")
        result = cli(app, "train", dataset, "--recipe", "logistic-regression", "--name", name)
        assert result.exit_code == 0, result.output
        found.set_registered_model_alias(name, "champion", "1")
    return name


@pytest.mark.parametrize("uri", ["models:/flowers@champion", "models:/flowers/1"])
def test_register_an_mlflow_sklearn_model_when_the_server_is_trusted(
    app_factory: Any, mlflow_server: str, trained: str, uri: str
) -> None:
    app = app_factory(
        MLFLOW_TRACKING_URI=mlflow_server, MLFLOW_TRUSTED="true", REGISTRY_POLL_SECONDS="0.001"
    )
    # No --sample: the input example logged with the model stands in for it.
    result = cli(app, "register", uri, "--name", "imported", "--task", "classification",
                 "--alias", "champion")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Registered imported version 1 (sklearn, served by onnxruntime)" in result.output
    detail = app.test_client().get("/api/v1/models/imported").get_json()
    version = detail["versions"][0]
    # The signature's columns, in its order and types; a skops copy, compiled to ONNX.
    schema = version["input_schema"]["features"]
    assert [(f["name"], f["type"]) for f in schema] == [(n, "number") for n in IRIS_ROW]
    assert version["parity"]["passed"] is True
    answer = app.test_client().post("/api/v1/models/imported/predict", json={"inputs": IRIS_ROW})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    prediction = answer.get_json()["predictions"][0]
    assert prediction["label"] == "setosa"
    assert prediction["probabilities"]["setosa"] > 0.9


def test_allow_pickle_trusts_the_server_too(
    app_factory: Any, mlflow_server: str, trained: str, tmp_path: Any
) -> None:
    app = app_factory(MLFLOW_TRACKING_URI=mlflow_server, ALLOW_PICKLE="true")
    sample = tmp_path / "sample.csv"
    pd.DataFrame([IRIS_ROW] * 3).to_csv(sample, index=False)
    result = cli(app, "register", "models:/flowers/1", "--name", "again", "--task",
                 "classification", "--sample", str(sample))  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("uri", ["models:/flowers@champion", "models:/flowers/1"])
def test_an_untrusted_server_is_refused_and_nothing_changes(
    app_factory: Any, mlflow_server: str, trained: str, uri: str
) -> None:
    app = app_factory(MLFLOW_TRACKING_URI=mlflow_server)
    before = table_counts(app)
    result = cli(app, "register", uri, "--name", "imported", "--task", "classification")
    assert result.exit_code != 0
    assert "MLflow models are pickled code" in result.output
    assert "MODELPORT_MLFLOW_TRUSTED=true" in result.output
    assert table_counts(app) == before


def test_an_unknown_mlflow_model_is_a_clear_error(app_factory: Any, mlflow_server: str) -> None:
    app = app_factory(MLFLOW_TRACKING_URI=mlflow_server, MLFLOW_TRUSTED="true")
    before = table_counts(app)
    result = cli(app, "register", "models:/nothing-here/1", "--name", "x", "--task", "regression")
    assert result.exit_code != 0
    assert "the MLflow model 'models:/nothing-here/1' cannot be found" in result.output
    assert table_counts(app) == before


def _log_pyfunc(url: str, name: str) -> None:
    """Log and register a pyfunc-only model (no scikit-learn flavor): 2x + y, code that
    MLflow pickles with the model."""
    import mlflow
    from mlflow.models import infer_signature
    from mlflow.pyfunc import PythonModel

    class Doubling(PythonModel):
        def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201, ARG002
            return (2 * model_input["x"] + model_input["y"]).to_numpy(dtype=float)

    example = pd.DataFrame({"x": [1.0, 2.5, 4.0], "y": [0.0, 1.0, -1.0]})
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    mlflow.set_experiment("pyfunc-models")
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model",
            python_model=Doubling(),
            signature=infer_signature(example, example["x"] * 2),
            input_example=example,
            registered_model_name=name,
            pip_requirements=[],
        )


def test_a_pyfunc_only_model_is_served_through_pyfunc_while_trusted(
    app_factory: Any, mlflow_server: str, tmp_path: Any
) -> None:
    _log_pyfunc(mlflow_server, "doubler")
    app = app_factory(MLFLOW_TRACKING_URI=mlflow_server, MLFLOW_TRUSTED="true")
    evaluation = tmp_path / "held-out.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0, 5.0], "y": [1.0, 0.0, 2.0, 1.0], "z": [3, 4, 8, 11]}).to_csv(
        evaluation, index=False
    )
    result = cli(app, "register", "models:/doubler/1", "--name", "doubler", "--task",
                 "regression", "--evaluation", str(evaluation), "--target", "z")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Registered doubler version 1 (mlflow, served by mlflow)." in result.output
    version = app.test_client().get("/api/v1/models/doubler").get_json()["versions"][0]
    assert [f["name"] for f in version["input_schema"]["features"]] == ["x", "y"]
    answer = app.test_client().post(
        "/api/v1/models/doubler/predict", json={"inputs": {"x": 3.0, "y": 0.5}}
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["predictions"][0]["value"] == pytest.approx(6.5)

    # The same version on a worker whose server is no longer trusted: not loaded, a 503.
    untrusted = app_factory(MLFLOW_TRACKING_URI=mlflow_server)
    refused = untrusted.test_client().post(
        "/api/v1/models/doubler/predict", json={"inputs": {"x": 3.0, "y": 0.5}}
    )
    assert refused.status_code == 503
    assert refused.get_json()["error"]["code"] == "model_not_ready"
