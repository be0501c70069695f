"""The demo models: trained offline from scikit-learn's bundled datasets into servable files."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import skops.io

from modelport.serving.demo import DEMO_NAMES, DemoModel, demo_dataset, train_demo_models

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
DIABETES_COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
DIGIT_COLUMNS = [f"pixel_{row}_{col}" for row in range(8) for col in range(8)]


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"demo training tried to open a connection: {args}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, DemoModel], str]:
    """Train everything once for the module, with sockets refused and stderr captured."""
    out_dir = tmp_path_factory.mktemp("demo") / "artifacts"
    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(stderr):
        patch.setattr(socket.socket, "connect", _no_network)
        patch.setattr(socket.socket, "connect_ex", _no_network)
        models = train_demo_models(out_dir, progress=True, seed=0)
    return out_dir, {model.name: model for model in models}, stderr.getvalue()


def test_four_models_with_artifacts_on_disk(trained) -> None:
    out_dir, models, _ = trained
    assert list(models) == list(DEMO_NAMES)
    expected = {
        "iris": ("classification", "sklearn", "iris.skops"),
        "breast-cancer": ("classification", "sklearn", "breast-cancer.skops"),
        "diabetes": ("regression", "sklearn", "diabetes.skops"),
        "digits": ("classification", "onnx", "digits.onnx"),
    }
    for name, (task, flavor, filename) in expected.items():
        model = models[name]
        assert (model.task, model.flavor) == (task, flavor)
        assert model.artifact == out_dir / filename
        assert model.artifact.stat().st_size > 0
        assert model.title and model.description.count(".") >= 2
    # Only the four artifacts: no temporary files left behind.
    assert sorted(path.name for path in out_dir.iterdir()) == sorted(
        filename for _, _, filename in expected.values()
    )


def test_progress_bar_goes_to_stderr(trained) -> None:
    _, _, stderr = trained
    assert "Training demo models" in stderr
    assert "4/4" in stderr


def test_held_out_metrics_are_sensible(trained) -> None:
    _, models, _ = trained
    assert models["iris"].metrics["accuracy"] > 0.9
    assert models["breast-cancer"].metrics["accuracy"] > 0.9
    assert models["breast-cancer"].metrics["roc_auc"] > 0.95
    assert models["digits"].metrics["accuracy"] > 0.9
    assert models["diabetes"].metrics["r2"] > 0.3
    assert 0 < models["diabetes"].metrics["mae"] < models["diabetes"].metrics["rmse"] < 100

    assert set(models["iris"].metrics) == {"accuracy", "f1_macro"}
    assert set(models["digits"].metrics) == {"accuracy", "f1_macro"}
    assert set(models["breast-cancer"].metrics) == {"accuracy", "f1_macro", "roc_auc"}
    assert set(models["diabetes"].metrics) == {"r2", "mae", "rmse"}
    for model in models.values():
        assert all(type(value) is float for value in model.metrics.values())


def test_samples_have_the_declared_columns_and_string_labels(trained) -> None:
    _, models, _ = trained
    assert list(models["iris"].sample.columns) == IRIS_COLUMNS
    assert list(models["diabetes"].sample.columns) == DIABETES_COLUMNS
    assert list(models["digits"].sample.columns) == DIGIT_COLUMNS
    cancer = list(models["breast-cancer"].sample.columns)
    assert len(cancer) == 30
    assert cancer[:2] == ["mean_radius", "mean_texture"]
    assert "worst_concave_points" in cancer
    assert all(column.isidentifier() and column.islower() for column in cancer)

    assert models["iris"].classes == ["setosa", "versicolor", "virginica"]
    assert models["breast-cancer"].classes == ["benign", "malignant"]
    assert models["digits"].classes == [str(digit) for digit in range(10)]
    assert models["diabetes"].classes is None

    for model in models.values():
        sample, target = model.sample, model.target_sample
        assert 0 < len(sample) <= 500
        assert sample.index.equals(target.index)
        assert sample.notna().all().all()
        assert set(model.feature_descriptions) == set(sample.columns)
        if model.classes is not None:
            assert set(target) <= set(model.classes)
            assert all(isinstance(label, str) for label in target)
        else:
            assert pd.api.types.is_float_dtype(target)
        assert model.holdout is not None and list(model.holdout.columns) == list(sample.columns)
        assert len(model.holdout) == model.params["test_rows"]


def test_sample_rows_come_from_the_dataset_with_their_own_targets(trained) -> None:
    _, models, _ = trained
    features, target = demo_dataset("iris")
    model = models["iris"]
    rows = features.merge(target, left_index=True, right_index=True)
    joined = model.sample.assign(species=model.target_sample)
    # Every (features, label) pair of the sample is a real pair of the dataset.
    assert len(joined.merge(rows.drop_duplicates(), how="inner")) == len(joined)


def test_params_are_json_safe(trained) -> None:
    _, models, _ = trained
    for model in models.values():
        assert json.loads(json.dumps(model.params)) == model.params
        assert model.params["seed"] == 0
    assert models["iris"].params["max_iter"] == 1000
    assert models["breast-cancer"].params["n_estimators"] == 100
    assert models["digits"].params["hidden_layer_sizes"] == [64]
    # The network converged before its iteration cap.
    assert models["digits"].params["iterations"] < models["digits"].params["max_iter"]


def test_skops_files_load_with_only_sklearn_or_numpy_untrusted_types(trained) -> None:
    _, models, _ = trained
    for model in models.values():
        if model.flavor != "sklearn":
            continue
        path = model.artifact
        untrusted = skops.io.get_untrusted_types(file=path)
        assert all(name.startswith(("sklearn.", "numpy.")) for name in untrusted), untrusted
        loaded = skops.io.load(path, trusted=untrusted)
        assert (
            loaded.predict(model.holdout).tolist()
            == model.estimator.predict(model.holdout).tolist()
        )
        with zipfile.ZipFile(path) as archive:
            assert "schema.json" in archive.namelist()
    # Linear models need no trust at all; the boosted trees need sklearn's Cython Tree.
    assert skops.io.get_untrusted_types(file=models["iris"].artifact) == []
    assert skops.io.get_untrusted_types(file=models["diabetes"].artifact) == []


def test_iris_predicts_species_names(trained) -> None:
    _, models, _ = trained
    path = models["iris"].artifact
    loaded = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    row = pd.DataFrame(
        [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]
    )
    assert loaded.predict(row).tolist() == ["setosa"]


def test_digits_onnx_matches_the_network_on_held_out_rows(trained) -> None:
    _, models, _ = trained
    model = models["digits"]
    onnx.checker.check_model(onnx.load(model.artifact))
    session = ort.InferenceSession(model.artifact, providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    assert (given.name, given.type, given.shape) == ("input", "tensor(float)", [None, 64])
    # zipmap disabled: plain tensors, not a sequence of maps.
    outputs = {output.name: output.type for output in session.get_outputs()}
    assert outputs == {"label": "tensor(string)", "probabilities": "tensor(float)"}

    holdout = model.holdout
    labels, probabilities = session.run(
        ["label", "probabilities"], {"input": holdout.to_numpy(np.float32)}
    )
    assert len(labels) == len(holdout) == 450
    assert labels.tolist() == model.estimator.predict(holdout).tolist()
    np.testing.assert_allclose(probabilities, model.estimator.predict_proba(holdout), atol=1e-4)


def test_onnx_graph_has_a_fixed_name(trained) -> None:
    # skl2onnx names graphs with a random uuid by default; a fixed name keeps re-runs identical.
    _, models, _ = trained
    assert onnx.load(models["digits"].artifact).graph.name == "digits"


def test_unknown_demo_name_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no demo model named 'wine'"):
        demo_dataset("wine")
