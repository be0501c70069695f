"""Flavors with real models: skops/pickle/ONNX loading, runtimes, compiled serving and parity."""

from __future__ import annotations

import io
import json
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
import pandas as pd
import pytest
import skops.io as sio
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import make_column_transformer
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC, LinearSVC

from modelport.serving import flavors
from modelport.serving.flavors import (
    ArtifactError,
    OutputError,
    compile_sklearn,
    describe,
    detect_flavor,
    load_estimator,
    mlflow_runtime,
    native_runtime,
    onnx_runtime,
)
from modelport.serving.schema import Batch, InputSchema, infer_schema, validate_frame

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::FutureWarning", "ignore::DeprecationWarning"
)


class Doubler(BaseEstimator, RegressorMixin):
    """A custom class skops does not know: loading it could run this module's code."""

    def fit(self, X: Any, y: Any = None) -> Doubler:
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=float).sum(axis=1) * 2


# --- data and models -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series, InputSchema]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y, infer_schema(X)


@pytest.fixture(scope="module")
def iris_batch(iris: Any) -> Batch:
    X, _, schema = iris
    return validate_frame(schema, X)


@pytest.fixture(scope="module")
def iris_lr(iris: Any) -> LogisticRegression:
    X, y, _ = iris
    return LogisticRegression(max_iter=1000).fit(X, y)


@pytest.fixture(scope="module")
def iris_rf(iris: Any) -> RandomForestClassifier:
    X, y, _ = iris
    return RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def iris_hgb(iris: Any) -> HistGradientBoostingClassifier:
    X, y, _ = iris
    return HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, pd.Series, InputSchema]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X, y, infer_schema(X)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def skops_file(tmp_path: Path, model: Any, name: str = "model.skops") -> Path:
    path = tmp_path / name
    sio.dump(model, path)
    return path


def head_of(path: Path) -> bytes:
    return path.read_bytes()[:512]


# --- detect_flavor and load_estimator ------------------------------------------------------


def test_skops_round_trip(tmp_path: Path, iris: Any, iris_rf: Any, iris_batch: Batch) -> None:
    X, _, schema = iris
    path = skops_file(tmp_path, iris_rf)
    assert detect_flavor("rf.skops", head_of(path)) == "sklearn"
    loaded = load_estimator(path)
    assert type(loaded) is RandomForestClassifier
    np.testing.assert_array_equal(loaded.predict_proba(X), iris_rf.predict_proba(X))
    runtime = native_runtime("sklearn", path, schema, "classification")
    assert runtime.name == "sklearn"
    prediction = runtime.predict(iris_batch)
    np.testing.assert_array_equal(prediction.labels, iris_rf.predict(X))
    assert prediction.classes == [0, 1, 2]


def test_skops_with_a_custom_class_is_refused_and_names_it(tmp_path: Path) -> None:
    model = Doubler().fit(np.ones((3, 2)))
    path = skops_file(tmp_path, model)
    assert detect_flavor("custom.skops", head_of(path)) == "sklearn"
    with pytest.raises(ArtifactError) as caught:
        load_estimator(path)
    assert "test_flavors.Doubler" in str(caught.value)
    assert "not trusted" in str(caught.value)


def test_skops_inside_a_pipeline_still_refuses_the_custom_step(tmp_path: Path) -> None:
    model = make_pipeline(StandardScaler(), Doubler()).fit(np.arange(6.0).reshape(3, 2))
    with pytest.raises(ArtifactError, match="Doubler"):
        load_estimator(skops_file(tmp_path, model))


def test_pickle_and_joblib_are_refused(tmp_path: Path, iris_lr: Any) -> None:
    joblib_path = tmp_path / "model.joblib"
    joblib.dump(iris_lr, joblib_path)
    pickle_path = write(tmp_path / "model.bin", pickle.dumps(iris_lr))
    for name, path in [("model.joblib", joblib_path), ("model.bin", pickle_path)]:
        with pytest.raises(ArtifactError, match="pickle files can run arbitrary code"):
            detect_flavor(name, head_of(path))
        with pytest.raises(ArtifactError, match="save the model with skops"):
            load_estimator(path)
    # by extension alone, whatever the bytes
    with pytest.raises(ArtifactError, match="pickle"):
        detect_flavor("model.pkl", b"\x00\x01")


def test_trusted_pickle_loads(tmp_path: Path, iris: Any, iris_lr: Any, iris_batch: Batch) -> None:
    X, _, schema = iris
    path = write(tmp_path / "model.pkl", pickle.dumps(iris_lr))
    assert detect_flavor("model.pkl", head_of(path), trusted_pickle=True) == "sklearn"
    loaded = load_estimator(path, trusted_pickle=True)
    np.testing.assert_array_equal(loaded.predict(X), iris_lr.predict(X))
    runtime = native_runtime("sklearn", path, schema, "classification", trusted_pickle=True)
    np.testing.assert_array_equal(runtime.predict(iris_batch).labels, iris_lr.predict(X))


def test_garbage_is_refused_with_the_accepted_formats(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="accepted formats: .*skops.*ONNX"):
        detect_flavor("model.bin", b"just some text, not a model")
    with pytest.raises(ArtifactError, match="not a skops file"):
        detect_flavor("model.skops", b"not a zip at all")
    garbage = write(tmp_path / "garbage", b"\x00garbage" * 100)
    with pytest.raises(ArtifactError):
        load_estimator(garbage)


def test_a_zip_that_is_not_skops_is_refused_cleanly(tmp_path: Path, iris_lr: Any) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    path = write(tmp_path / "model.skops", buffer.getvalue())
    assert detect_flavor("model.skops", head_of(path)) == "sklearn"
    with pytest.raises(ArtifactError, match="not a valid skops file"):
        load_estimator(path)
    whole = skops_file(tmp_path, iris_lr, "whole.skops").read_bytes()
    truncated = write(tmp_path / "cut.skops", whole[: len(whole) // 2])
    with pytest.raises(ArtifactError, match="skops"):
        load_estimator(truncated)


def test_a_skops_file_without_a_model_is_refused(tmp_path: Path) -> None:
    path = skops_file(tmp_path, {"weights": [1, 2, 3]})
    with pytest.raises(ArtifactError, match="not a model with a predict"):
        load_estimator(path)


def test_onnx_detected_by_extension_and_by_content(tmp_path: Path, iris_lr: Any) -> None:
    data = to_onnx(iris_lr, np.zeros((1, 4), np.float32), options={"zipmap": False})
    raw = data.SerializeToString()
    assert detect_flavor("model.onnx", raw[:512]) == "onnx"
    assert detect_flavor("upload", raw[:512]) == "onnx"
    assert detect_flavor("models:/iris@champion", b"") == "mlflow"
    assert detect_flavor("/models/iris/MLmodel", b"artifact_path: model") == "mlflow"


def test_bytes_that_are_not_onnx_are_refused_at_load(tmp_path: Path, iris: Any) -> None:
    _, _, schema = iris
    path = write(tmp_path / "model.onnx", b"\x08\x07\x12\x05hello" + b"\xff" * 50)
    assert detect_flavor("model.onnx", head_of(path)) == "onnx"
    with pytest.raises(ArtifactError, match="not a valid ONNX model"):
        onnx_runtime(path, schema, "classification")


def test_describe_is_json_safe(iris: Any, iris_lr: Any, diabetes: Any) -> None:
    info = describe(iris_lr)
    assert info["task"] == "classification"
    assert info["classes"] == [0, 1, 2]
    assert all(type(c) is int for c in info["classes"])
    assert info["class_name"] == "LogisticRegression"
    assert info["n_features"] == 4
    json.dumps(info)
    X, y, _ = iris
    named = LogisticRegression(max_iter=500).fit(X, np.array(["a", "b", "c"])[y])
    assert describe(named)["classes"] == ["a", "b", "c"]
    Xd, yd, _ = diabetes
    reg = describe(LinearRegression().fit(Xd, yd))
    assert reg["task"] == "regression" and reg["classes"] is None
    json.dumps(reg)


# --- the native runtime --------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        LogisticRegression(max_iter=1000),
        RandomForestClassifier(n_estimators=20, random_state=0),
        GradientBoostingClassifier(n_estimators=20, random_state=0),
        HistGradientBoostingClassifier(max_iter=20, random_state=0),
        MLPClassifier(max_iter=300, random_state=0),
        KNeighborsClassifier(),
        SVC(probability=True, random_state=0),
        make_pipeline(StandardScaler(), LogisticRegression()),
    ],
    ids=lambda m: type(m).__name__,
)
def test_native_labels_equal_predict(iris: Any, iris_batch: Batch, model: Any) -> None:
    X, y, schema = iris
    model.fit(X, y)
    prediction = flavors.SklearnRuntime(model, schema, "classification").predict(iris_batch)
    np.testing.assert_array_equal(prediction.labels, model.predict(X))
    np.testing.assert_allclose(prediction.probabilities, model.predict_proba(X))


def test_native_model_fitted_without_names_gets_a_matrix(iris: Any, iris_batch: Batch) -> None:
    X, y, schema = iris
    model = LogisticRegression(max_iter=1000).fit(X.to_numpy(), y.to_numpy())
    prediction = flavors.SklearnRuntime(model, schema, "classification").predict(iris_batch)
    np.testing.assert_array_equal(prediction.labels, model.predict(X.to_numpy()))


def test_native_reorders_columns_to_the_training_order(iris: Any, iris_lr: Any) -> None:
    X, _, _ = iris
    reversed_frame = X[X.columns[::-1]]
    schema = infer_schema(reversed_frame)
    batch = validate_frame(schema, reversed_frame)
    prediction = flavors.SklearnRuntime(iris_lr, schema, "classification").predict(batch)
    np.testing.assert_array_equal(prediction.labels, iris_lr.predict(X))


def test_native_feeds_arrays_when_they_agree_with_frames(iris: Any, iris_lr: Any) -> None:
    X, y, schema = iris
    batch = validate_frame(schema, X)
    plain = flavors.SklearnRuntime(iris_lr, schema, "classification")
    first, second = plain.predict(batch), plain.predict(batch)
    assert plain.mode == "array"
    np.testing.assert_array_equal(first.probabilities, second.probabilities)
    np.testing.assert_array_equal(second.labels, iris_lr.predict(X))
    # a pipeline that picks columns by name needs the DataFrame
    by_name = make_pipeline(
        make_column_transformer((StandardScaler(), list(X.columns[:2])), remainder="drop"),
        LogisticRegression(max_iter=1000),
    ).fit(X, y)
    picky = flavors.SklearnRuntime(by_name, schema, "classification")
    picky.predict(batch)
    assert picky.mode == "frame"
    np.testing.assert_array_equal(picky.predict(batch).labels, by_name.predict(X))


def test_native_refuses_a_schema_missing_trained_features(iris: Any, iris_lr: Any) -> None:
    X, _, _ = iris
    schema = infer_schema(X.iloc[:, :3])
    with pytest.raises(ArtifactError, match="petal width"):
        flavors.SklearnRuntime(iris_lr, schema, "classification")


def test_native_regression_and_non_finite_output(diabetes: Any) -> None:
    X, y, schema = diabetes
    model = LinearRegression().fit(X, y)
    batch = validate_frame(schema, X)
    values = flavors.SklearnRuntime(model, schema, "regression").predict(batch).values
    np.testing.assert_allclose(values, model.predict(X))
    broken = LinearRegression().fit(X, y)
    broken.coef_ = broken.coef_.copy()
    broken.coef_[0] = np.nan
    with pytest.raises(OutputError, match="not finite"):
        flavors.SklearnRuntime(broken, schema, "regression").predict(batch)


# --- compiled serving ----------------------------------------------------------------------


def test_logistic_regression_compiles_with_parity(
    tmp_path: Path, iris: Any, iris_lr: Any, iris_batch: Batch
) -> None:
    X, _, schema = iris
    onnx_bytes, parity = compile_sklearn(iris_lr, schema, X, "classification")
    assert onnx_bytes is not None
    assert parity["passed"] is True
    assert parity["rows"] == 150
    assert parity["labels_equal"] is True
    assert parity["max_abs_diff"] <= parity["tolerance"] == 1e-4
    path = write(tmp_path / "compiled.onnx", onnx_bytes)
    runtime = onnx_runtime(path, schema, "classification", describe(iris_lr)["classes"])
    assert runtime.name == "onnxruntime"
    prediction = runtime.predict(iris_batch)
    np.testing.assert_array_equal(prediction.labels, iris_lr.predict(X))
    np.testing.assert_allclose(prediction.probabilities, iris_lr.predict_proba(X), atol=1e-4)
    assert prediction.classes == [0, 1, 2]


def test_onnx_session_is_single_threaded(tmp_path: Path, iris: Any, iris_lr: Any) -> None:
    X, _, schema = iris
    onnx_bytes, _ = compile_sklearn(iris_lr, schema, X, "classification")
    runtime = onnx_runtime(write(tmp_path / "m.onnx", onnx_bytes), schema, "classification")
    options = runtime.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 1
    assert str(options.execution_mode).endswith("ORT_SEQUENTIAL")


def test_random_forest_100_trees_compiles(iris: Any, iris_rf: Any, iris_batch: Batch) -> None:
    X, _, schema = iris
    onnx_bytes, parity = compile_sklearn(iris_rf, schema, X, "classification")
    assert onnx_bytes is not None, parity
    assert parity["passed"] and parity["labels_equal"]
    runtime = flavors.OnnxRuntime(onnx_bytes, schema, "classification", [0, 1, 2])
    np.testing.assert_array_equal(runtime.predict(iris_batch).labels, iris_rf.predict(X))


def test_gradient_boosting_compiles(iris: Any) -> None:
    X, y, schema = iris
    model = GradientBoostingClassifier(n_estimators=50, random_state=0).fit(X, y)
    onnx_bytes, parity = compile_sklearn(model, schema, X, "classification")
    assert onnx_bytes is not None, parity
    assert parity["passed"] and parity["max_abs_diff"] <= 1e-4


def test_string_classes_compile_and_come_back_as_strings(iris: Any, iris_batch: Batch) -> None:
    X, y, schema = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = LogisticRegression(max_iter=1000).fit(X, names)
    onnx_bytes, parity = compile_sklearn(model, schema, X, "classification")
    assert onnx_bytes is not None and parity["labels_equal"], parity
    classes = describe(model)["classes"]
    prediction = flavors.OnnxRuntime(onnx_bytes, schema, "classification", classes).predict(
        iris_batch
    )
    assert prediction.labels.tolist() == model.predict(X).tolist()
    assert prediction.classes == ["setosa", "versicolor", "virginica"]


def test_linear_regression_compiles_within_relative_tolerance(diabetes: Any) -> None:
    X, y, schema = diabetes
    model = LinearRegression().fit(X, y)
    onnx_bytes, parity = compile_sklearn(model, schema, X, "regression")
    assert onnx_bytes is not None, parity
    scale = max(1.0, float(np.abs(model.predict(X)).max()))
    assert parity["tolerance"] == pytest.approx(1e-4 * scale)
    assert parity["max_abs_diff"] <= parity["tolerance"]
    assert parity["labels_equal"] is None
    batch = validate_frame(schema, X)
    values = flavors.OnnxRuntime(onnx_bytes, schema, "regression").predict(batch).values
    assert values.shape == (len(X),)
    np.testing.assert_allclose(values, model.predict(X), atol=parity["tolerance"])


def test_hist_gradient_boosting_does_not_compile_but_serves_natively(
    tmp_path: Path, iris: Any, iris_hgb: Any, iris_batch: Batch
) -> None:
    X, _, schema = iris
    onnx_bytes, parity = compile_sklearn(iris_hgb, schema, X, "classification")
    assert onnx_bytes is None
    assert parity["passed"] is False
    assert "HistGradientBoostingClassifier" in parity["reason"]
    path = skops_file(tmp_path, iris_hgb)
    runtime = native_runtime("sklearn", path, schema, "classification")
    np.testing.assert_array_equal(runtime.predict(iris_batch).labels, iris_hgb.predict(X))


def test_categorical_pipeline_is_not_compiled(iris: Any) -> None:
    X, y, _ = iris
    frame = X.assign(colour=np.where(y > 0, "red", "blue"))
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["colour"]), remainder="passthrough"),
        LogisticRegression(max_iter=1000),
    ).fit(frame, y)
    schema = infer_schema(frame)
    onnx_bytes, parity = compile_sklearn(model, schema, frame, "classification")
    assert onnx_bytes is None
    assert parity["passed"] is False
    assert parity["reason"] == "only numeric schemas compile"
    batch = validate_frame(schema, frame)
    labels = flavors.SklearnRuntime(model, schema, "classification").predict(batch).labels
    np.testing.assert_array_equal(labels, model.predict(frame))


def test_classifier_without_probabilities_is_not_compiled(iris: Any) -> None:
    X, y, schema = iris
    model = LinearSVC().fit(X, y)
    onnx_bytes, parity = compile_sklearn(model, schema, X, "classification")
    assert onnx_bytes is None and "predict_proba" in parity["reason"]


# --- ONNX models: exported networks and hand-built graphs ----------------------------------


def test_mlp_on_digits_exported_to_onnx(tmp_path: Path) -> None:
    X, y = load_digits(return_X_y=True, as_frame=True)
    model = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(X, y)
    exported = to_onnx(
        model,
        initial_types=[("pixels", flavors_float_type(64))],
        options={"zipmap": False},
    )
    path = write(tmp_path / "digits.onnx", exported.SerializeToString())
    assert detect_flavor("digits.onnx", head_of(path)) == "onnx"
    schema = infer_schema(X)
    batch = validate_frame(schema, X)
    prediction = onnx_runtime(path, schema, "classification", list(range(10))).predict(batch)
    np.testing.assert_array_equal(prediction.labels, model.predict(X))
    np.testing.assert_allclose(prediction.probabilities, model.predict_proba(X), atol=1e-4)
    assert prediction.classes == list(range(10))


def test_skl2onnx_default_zipmap_output_is_understood(
    tmp_path: Path, iris: Any, iris_lr: Any, iris_batch: Batch
) -> None:
    X, _, schema = iris
    exported = to_onnx(iris_lr, initial_types=[("input", flavors_float_type(4))])
    path = write(tmp_path / "zipmap.onnx", exported.SerializeToString())
    prediction = onnx_runtime(path, schema, "classification").predict(iris_batch)
    assert prediction.classes == [0, 1, 2]
    np.testing.assert_array_equal(prediction.labels, iris_lr.predict(X))
    np.testing.assert_allclose(prediction.probabilities, iris_lr.predict_proba(X), atol=1e-4)


def flavors_float_type(width: int) -> Any:
    from skl2onnx.common.data_types import FloatTensorType

    return FloatTensorType([None, width])


def network(weights: np.ndarray, *, softmax: bool, input_shape: list | None = None) -> bytes:
    """A hand-built network: optional Flatten, MatMul by weights, optional Softmax."""
    features, classes = weights.shape
    shape = input_shape or [None, features]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    out = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, classes])
    nodes = []
    current = "x"
    if len(shape) > 2:
        nodes.append(helper.make_node("Flatten", ["x"], ["flat"], axis=1))
        current = "flat"
    nodes.append(helper.make_node("MatMul", [current, "W"], ["logits" if softmax else "scores"]))
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["scores"], axis=1))
    init = [numpy_helper.from_array(weights.astype(np.float32), "W")]
    graph = helper.make_graph(nodes, "net", [x], [out], initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("with_softmax", [True, False], ids=["probabilities", "logits"])
def test_generic_network_single_output(
    tmp_path: Path, iris: Any, iris_batch: Batch, with_softmax: bool
) -> None:
    X, _, schema = iris
    weights = np.random.default_rng(0).normal(size=(4, 3))
    path = write(tmp_path / "net.onnx", network(weights, softmax=with_softmax))
    classes = ["setosa", "versicolor", "virginica"]
    prediction = onnx_runtime(path, schema, "classification", classes).predict(iris_batch)
    expected = softmax(X.to_numpy(np.float32) @ weights.astype(np.float32))
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-5)
    np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert prediction.labels.tolist() == [classes[i] for i in expected.argmax(axis=1)]
    assert prediction.classes == classes
    # without classes the columns are numbered
    numbered = onnx_runtime(path, schema, "classification").predict(iris_batch)
    assert numbered.classes == [0, 1, 2]
    assert numbered.labels.tolist() == expected.argmax(axis=1).tolist()


def test_network_with_an_argmax_output_gets_named_classes(tmp_path: Path, iris: Any) -> None:
    X, _, schema = iris
    weights = np.random.default_rng(3).normal(size=(4, 3)).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    outputs = [
        helper.make_tensor_value_info("index", TensorProto.INT64, [None]),
        helper.make_tensor_value_info("proba", TensorProto.FLOAT, [None, 3]),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["proba"], axis=1),
        helper.make_node("ArgMax", ["proba"], ["index"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "net", [x], outputs, initializer=[numpy_helper.from_array(weights, "W")]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = write(tmp_path / "argmax.onnx", model.SerializeToString())
    classes = ["setosa", "versicolor", "virginica"]
    batch = validate_frame(schema, X)
    named = onnx_runtime(path, schema, "classification", classes).predict(batch)
    expected = softmax(X.to_numpy(np.float32) @ weights).argmax(axis=1)
    assert named.labels.tolist() == [classes[i] for i in expected]
    numbered = onnx_runtime(path, schema, "classification").predict(batch)
    assert numbered.labels.tolist() == expected.tolist()


def test_generic_network_with_image_shaped_input(tmp_path: Path) -> None:
    frame = pd.DataFrame(np.random.default_rng(1).uniform(size=(20, 4)), columns=list("abcd"))
    schema = infer_schema(frame)
    weights = np.random.default_rng(2).normal(size=(4, 2))
    path = write(tmp_path / "img.onnx", network(weights, softmax=True, input_shape=[None, 1, 2, 2]))
    prediction = onnx_runtime(path, schema, "classification").predict(validate_frame(schema, frame))
    expected = softmax(frame.to_numpy(np.float32) @ weights.astype(np.float32))
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-5)


def test_generic_network_refuses_a_wrong_number_of_classes(tmp_path: Path, iris: Any) -> None:
    _, _, schema = iris
    path = write(tmp_path / "net.onnx", network(np.ones((4, 3)), softmax=True))
    with pytest.raises(ArtifactError, match="3 class scores but 2 classes"):
        onnx_runtime(path, schema, "classification", ["a", "b"])
    wide = write(tmp_path / "wide.onnx", network(np.ones((5, 3)), softmax=True))
    with pytest.raises(ArtifactError, match="takes 5 features per row but the schema has 4"):
        onnx_runtime(wide, schema, "classification")


def test_one_input_per_feature(tmp_path: Path) -> None:
    frame = pd.DataFrame({"height": [1.0, 2.0, 3.0, 0.5], "width": [3.0, 1.0, 0.0, 2.0]})
    schema = infer_schema(frame)
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1])
        for name in ("width", "height")  # declared in another order than the schema
    ]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    nodes = [
        helper.make_node("Sub", ["height", "width"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "diff", inputs, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = write(tmp_path / "diff.onnx", model.SerializeToString())
    values = onnx_runtime(path, schema, "regression").predict(validate_frame(schema, frame)).values
    np.testing.assert_allclose(values, frame["height"] - frame["width"])


def test_non_finite_onnx_output_is_an_error(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 4.0, 9.0]})
    schema = infer_schema(frame)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    graph = helper.make_graph([helper.make_node("Sqrt", ["x"], ["y"])], "sqrt", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    runtime = onnx_runtime(
        write(tmp_path / "sqrt.onnx", model.SerializeToString()), schema, "regression"
    )
    np.testing.assert_allclose(runtime.predict(validate_frame(schema, frame)).values, [1, 2, 3])
    negative = validate_frame(schema, pd.DataFrame({"x": ["4", "-1"]}))  # out of range: a warning
    assert negative.warnings
    with pytest.raises(OutputError, match="not finite"):
        runtime.predict(negative)


# --- MLflow --------------------------------------------------------------------------------


def test_mlflow_missing_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, iris: Any) -> None:
    _, _, schema = iris
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.pyfunc", None)
    with pytest.raises(ArtifactError, match=r"pip install modelport\[mlflow\]"):
        mlflow_runtime("models:/iris@champion", schema, "classification")


# MLflow works out the model's requirements in a Python process of its own (half a minute).
@pytest.mark.slow
def test_mlflow_model_served_from_a_path(tmp_path: Path, iris: Any, iris_lr: Any) -> None:
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    X, _, schema = iris
    target = tmp_path / "iris-model"
    mlflow_sklearn.save_model(iris_lr, str(target), input_example=X.head(3))
    assert detect_flavor(str(target / "MLmodel"), b"") == "mlflow"
    runtime = mlflow_runtime(str(target), schema, "classification")
    assert runtime.name == "mlflow"
    prediction = runtime.predict(validate_frame(schema, X))
    np.testing.assert_array_equal(prediction.labels, iris_lr.predict(X))
    with pytest.raises(ArtifactError, match="cannot be loaded"):
        mlflow_runtime(str(tmp_path / "nowhere"), schema, "classification")


# MLflow works out the model's requirements in a Python process of its own (half a minute).
@pytest.mark.slow
def test_mlflow_model_logged_and_served_by_alias(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, diabetes: Any
) -> None:
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    import mlflow

    # A throwaway tracking server database and artifact root, all inside tmp_path.
    database = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", database)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", database)
    # Set in the process too: an earlier test in this worker may have set it (the app's
    # registry.configure_mlflow does), and mlflow prefers that over the environment.
    mlflow.set_tracking_uri(database)
    mlflow.set_registry_uri(database)
    X, y, schema = diabetes
    model = LinearRegression().fit(X, y)
    experiment = mlflow.create_experiment(
        "modelport-test", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    with mlflow.start_run(experiment_id=experiment):
        mlflow_sklearn.log_model(
            model, name="model", input_example=X.head(2), registered_model_name="diabetes"
        )
    mlflow.MlflowClient().set_registered_model_alias("diabetes", "champion", 1)
    uri = "models:/diabetes@champion"
    assert detect_flavor(uri, b"") == "mlflow"
    runtime = mlflow_runtime(uri, schema, "regression")
    values = runtime.predict(validate_frame(schema, X)).values
    np.testing.assert_allclose(values, model.predict(X))
