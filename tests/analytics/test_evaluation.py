"""A version's evaluation (``analytics.evaluation``): each figure is scikit-learn's on the same
rows, the curves stay bounded, and permutation importance finds the feature that matters,
through a native runtime and an ONNX one alike."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    roc_curve,
)

from modelport.analytics import evaluation
from modelport.serving import flavors
from modelport.serving.schema import infer_schema

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def native(estimator: Any, features: pd.DataFrame, task: str) -> Any:
    return flavors.SklearnRuntime(estimator, infer_schema(features), task)


def compiled(estimator: Any, features: pd.DataFrame, task: str) -> Any:
    schema = infer_schema(features)
    onnx_bytes, parity = flavors.compile_sklearn(estimator, schema, features, task)
    assert onnx_bytes is not None, parity
    classes = estimator.classes_.tolist() if task == "classification" else None
    return flavors.OnnxRuntime(onnx_bytes, schema, task, classes)


def test_classification_figures_are_scikit_learns(demo_models: dict[str, Any]) -> None:
    item = demo_models["iris"]
    x, y = item.holdout, item.holdout_target
    found = evaluation.evaluate(
        native(item.estimator, x, "classification"), infer_schema(x), "classification", x, y,
        source="holdout",
    )  # fmt: skip
    predicted = item.estimator.predict(x)
    proba = item.estimator.predict_proba(x)
    classes = list(item.estimator.classes_)
    assert (found["source"], found["rows"], found["target"]) == ("holdout", len(x), "species")
    assert found["metrics"]["accuracy"] == pytest.approx(accuracy_score(y, predicted), abs=1e-6)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=classes, zero_division=0
    )
    assert [c["class"] for c in found["per_class"]] == classes
    assert [c["precision"] for c in found["per_class"]] == pytest.approx(precision, abs=1e-6)
    assert [c["recall"] for c in found["per_class"]] == pytest.approx(recall, abs=1e-6)
    assert [c["f1"] for c in found["per_class"]] == pytest.approx(f1, abs=1e-6)
    assert [c["support"] for c in found["per_class"]] == list(support)
    assert found["metrics"]["f1_macro"] == pytest.approx(np.mean(f1), abs=1e-6)
    assert found["confusion"] == {
        "labels": classes,
        "matrix": confusion_matrix(y, predicted, labels=classes).tolist(),
    }
    # One curve per class against the rest; the AUCs' mean is scikit-learn's "ovr" macro.
    assert [c["class"] for c in found["roc"]] == classes
    for index, curve in enumerate(found["roc"]):
        fpr, tpr, _ = roc_curve(y == classes[index], proba[:, index])
        assert curve["fpr"] == pytest.approx(fpr, abs=1e-6)
        assert curve["tpr"] == pytest.approx(tpr, abs=1e-6)
        assert curve["auc"] == pytest.approx(roc_auc_score(y == classes[index], proba[:, index]))
    assert found["metrics"]["roc_auc"] == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", average="macro"), abs=1e-6
    )
    assert found["calibration"]["kind"] == "top_label"
    assert sum(found["calibration"]["count"]) == len(x)


def test_two_classes_have_the_positive_class_curves_and_calibration(
    demo_models: dict[str, Any],
) -> None:
    item = demo_models["breast-cancer"]
    x, y = item.holdout, item.holdout_target
    found = evaluation.evaluate(
        compiled(item.estimator, x, "classification"), infer_schema(x), "classification", x, y,
        source="holdout",
    )  # fmt: skip
    positive = item.estimator.classes_[1]
    scores = item.estimator.predict_proba(x)[:, 1]
    (roc,) = found["roc"]
    (pr,) = found["pr"]
    assert roc["class"] == pr["class"] == positive
    # Through onnxruntime: float32 probabilities, so the figures agree to a few decimals.
    assert roc["auc"] == pytest.approx(roc_auc_score(y == positive, scores), abs=1e-3)
    assert found["metrics"]["roc_auc"] == roc["auc"]
    assert pr["average_precision"] == pytest.approx(
        average_precision_score(y == positive, scores), abs=1e-3
    )
    observed, mean_predicted = calibration_curve(y == positive, scores, n_bins=10)
    assert found["calibration"]["kind"] == "positive_class"
    assert found["calibration"]["observed"] == pytest.approx(observed, abs=1e-3)
    assert found["calibration"]["mean_predicted"] == pytest.approx(mean_predicted, abs=1e-3)


def test_regression_figures_are_scikit_learns(demo_models: dict[str, Any]) -> None:
    item = demo_models["diabetes"]
    x, y = item.holdout, item.holdout_target
    found = evaluation.evaluate(
        native(item.estimator, x, "regression"), infer_schema(x), "regression", x, y,
        source="holdout",
    )  # fmt: skip
    predicted = item.estimator.predict(x)
    metrics = found["metrics"]
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y, predicted), abs=1e-5)
    assert metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, predicted)), abs=1e-5)
    assert metrics["r2"] == pytest.approx(r2_score(y, predicted), abs=1e-6)
    assert found["points"]["actual"] == pytest.approx(list(y), abs=1e-6)
    assert found["points"]["predicted"] == pytest.approx(list(predicted), abs=1e-5)
    histogram = found["residual_histogram"]
    assert sum(histogram["counts"]) == len(x)
    assert len(histogram["edges"]) == evaluation.RESIDUAL_BINS + 1
    assert found["importance"]["scoring"] == "r2"


@pytest.mark.parametrize("runtime", [native, compiled])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_permutation_importance_ranks_the_informative_feature_first(
    runtime: Any, task: str
) -> None:
    rng = np.random.default_rng(1)
    x = pd.DataFrame({"noise": rng.normal(size=600), "signal": rng.normal(size=600)})
    if task == "classification":
        y = pd.Series(np.where(x["signal"] > 0, "yes", "no"), name="answer")
        estimator = LogisticRegression().fit(x, y)
    else:
        y = pd.Series(3.0 * x["signal"] + rng.normal(scale=0.1, size=600), name="answer")
        estimator = LinearRegression().fit(x, y)
    found = evaluation.evaluate(
        runtime(estimator, x, task), infer_schema(x), task, x, y, source="holdout"
    )
    importance = found["importance"]
    assert [f["name"] for f in importance["features"]] == ["signal", "noise"]
    signal, noise = importance["features"]
    assert signal["mean"] > 0.3 and abs(noise["mean"]) < 0.05, importance
    assert (importance["repeats"], importance["rows"], importance["seed"]) == (5, 600, 0)
    again = evaluation.evaluate(
        runtime(estimator, x, task), infer_schema(x), task, x, y, source="holdout"
    )
    assert again["importance"] == importance  # a fixed seed: the same figures every time


def test_curves_and_points_stay_bounded_however_many_rows() -> None:
    rng = np.random.default_rng(2)
    rows = 6000
    x = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    y = pd.Series(np.where(x["a"] + rng.normal(size=rows) > 0, "p", "n"))
    estimator = LogisticRegression().fit(x, y)
    found = evaluation.evaluate(
        native(estimator, x, "classification"), infer_schema(x), "classification", x, y,
        source="holdout",
    )  # fmt: skip
    (roc,) = found["roc"]
    (pr,) = found["pr"]
    assert len(roc["fpr"]) <= evaluation.CURVE_POINTS and len(pr["recall"]) <= 200
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0, 0, 1, 1)
    assert found["importance"]["rows"] == evaluation.IMPORTANCE_ROWS
    values = pd.Series(x["a"] * 2.0)
    regression = LinearRegression().fit(x, values)
    found = evaluation.evaluate(
        native(regression, x, "regression"), infer_schema(x), "regression", x, values,
        source="holdout",
    )  # fmt: skip
    assert len(found["points"]["actual"]) == evaluation.SCATTER_POINTS


def test_rows_that_cannot_be_evaluated_are_refused(demo_models: dict[str, Any]) -> None:
    item = demo_models["diabetes"]
    x, y = item.holdout, item.holdout_target
    runtime = native(item.estimator, x, "regression")
    schema = infer_schema(x)
    with pytest.raises(evaluation.EvaluationError, match="finite numbers"):
        evaluation.evaluate(runtime, schema, "regression", x, y.astype(str) + "?", source="holdout")
    with pytest.raises(evaluation.EvaluationError, match="do not fit the model's inputs"):
        evaluation.evaluate(
            runtime, schema, "regression", x.assign(bmi="heavy"), y, source="holdout"
        )
    with pytest.raises(evaluation.EvaluationError, match="no target values"):
        evaluation.evaluate(runtime, schema, "regression", x, y * np.nan, source="holdout")
