"""A model version's evaluation on rows with known answers, computed once at registration.

The rows go through the version's own runtime (the predictor that serves it, ONNX or
native), so the figures are those of what users get. Classifiers: accuracy, per-class
precision, recall and F1, the confusion matrix, ROC and precision–recall curves (one
against the rest for each class; the positive class alone for two), and a calibration
curve (the positive class for two classes, the predicted class's probability for more).
Regressions: MAE, RMSE, R², the residuals and predicted against actual. Both: permutation
feature importance, computed here with the same runtime (shuffle one column, score again,
``REPEATS`` times, on at most ``IMPORTANCE_ROWS`` rows, seed ``SEED``), so that it works for
every flavor alike.

Everything stored is bounded: at most ``CURVE_POINTS`` points per curve and
``SCATTER_POINTS`` predicted/actual pairs, whatever the number of rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modelport.lazy import lazy
from modelport.serving.schema import Batch, InputError, InputSchema, validate_frame

pd = lazy("pandas")
sk_metrics = lazy("sklearn.metrics")

EVALUATION_ROWS = 20_000  # rows evaluated (a random subset, seed SEED, beyond that)
IMPORTANCE_ROWS = 2_000
REPEATS = 5
SEED = 0
CURVE_POINTS = 200
SCATTER_POINTS = 500
CALIBRATION_BINS = 10
RESIDUAL_BINS = 20


class EvaluationError(ValueError):
    """Rows that cannot be evaluated (they do not fit the schema, or their answers do not
    fit the task)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _round(value: float | None, digits: int = 6) -> float | None:
    """A JSON-safe figure: NaN and infinity (an undefined metric) become None."""
    if value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), digits)


def _rounded(values: np.ndarray) -> list[float | None]:
    return [_round(v) for v in np.asarray(values, dtype=float)]


def _label(value: Any) -> str:
    """A class label as text, so that 1, 1.0 and "1" are the same class."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)


def _thin(*arrays: np.ndarray) -> list[np.ndarray]:
    """At most ``CURVE_POINTS`` points of a curve, evenly, its two ends kept."""
    size = len(arrays[0])
    if size <= CURVE_POINTS:
        return list(arrays)
    keep = np.unique(np.linspace(0, size - 1, CURVE_POINTS).round().astype(int))
    return [array[keep] for array in arrays]


def _batch(schema: InputSchema, features: pd.DataFrame) -> Batch:
    try:
        return validate_frame(schema, features, first_row=0)
    except InputError as exc:
        first = exc.details[0] if exc.details else {"message": str(exc)}
        where = f"row {first['row'] + 1}, " if first.get("row") is not None else ""
        field = f"{first['field']}: " if first.get("field") else ""
        raise EvaluationError(
            f"The evaluation rows do not fit the model's inputs ({where}{field}{first['message']})."
        ) from None


def _subset(batch: Batch, rows: np.ndarray) -> Batch:
    return Batch(
        columns={name: column[rows] for name, column in batch.columns.items()},
        rows=len(rows),
        warnings=[],
        types=batch.types,
    )


def evaluate(
    runtime: Any,
    schema: InputSchema,
    task: str,
    features: pd.DataFrame,
    target: pd.Series,
    *,
    source: str,
) -> dict[str, Any]:
    """The report of ``runtime`` on ``features`` against the true ``target`` (module doc)."""
    if len(features) != len(target):
        raise EvaluationError("The evaluation rows and their targets differ in number.")
    known = target.notna().to_numpy()
    features, target = features[known], target[known]
    if len(target) == 0:
        raise EvaluationError("The evaluation rows have no target values.")
    rng = np.random.default_rng(SEED)
    if len(target) > EVALUATION_ROWS:
        keep = np.sort(rng.choice(len(target), EVALUATION_ROWS, replace=False))
        features, target = features.iloc[keep], target.iloc[keep]
    batch = _batch(schema, features.reset_index(drop=True))
    prediction = runtime.predict(batch)
    found: dict[str, Any] = {
        "source": source,
        "rows": int(batch.rows),
        "target": str(target.name) if target.name is not None else None,
        "task": task,
    }
    if task == "regression":
        actual = _numeric_target(target)
        found |= _regression(actual, np.asarray(prediction.values, dtype=float), rng)
        score = _r2_score
        truth: np.ndarray = actual
    else:
        labels = np.array([_label(v) for v in target], dtype=object)
        found |= _classification(labels, prediction)
        score = _accuracy
        truth = labels
    found["importance"] = _importance(runtime, batch, truth, score, task, rng)
    return found


def _numeric_target(target: pd.Series) -> np.ndarray:
    values = pd.to_numeric(target, errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise EvaluationError("A regression's targets must be finite numbers.")
    return values


# ---- classification ------------------------------------------------------------------------


def _accuracy(truth: np.ndarray, prediction: Any) -> float:
    predicted = np.array([_label(v) for v in prediction.labels], dtype=object)
    return float(np.mean(truth == predicted))


def _classification(truth: np.ndarray, prediction: Any) -> dict[str, Any]:
    predicted = np.array([_label(v) for v in prediction.labels], dtype=object)
    classes = (
        [_label(c) for c in prediction.classes]
        if prediction.classes is not None
        else sorted(set(predicted) | set(truth))
    )
    # Answers the model never gives still count: as classes it misses every time.
    labels = classes + sorted(set(truth) - set(classes))
    precision, recall, f1, support = sk_metrics.precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    macro = sk_metrics.precision_recall_fscore_support(
        truth, predicted, labels=labels, average="macro", zero_division=0
    )
    found: dict[str, Any] = {
        "metrics": {
            "accuracy": _round(np.mean(truth == predicted)),
            "precision_macro": _round(macro[0]),
            "recall_macro": _round(macro[1]),
            "f1_macro": _round(macro[2]),
        },
        "classes": classes,
        "per_class": [
            {
                "class": label,
                "precision": _round(precision[i]),
                "recall": _round(recall[i]),
                "f1": _round(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        ],
        "confusion": {
            "labels": labels,
            "matrix": sk_metrics.confusion_matrix(truth, predicted, labels=labels).tolist(),
        },
        "roc": [],
        "pr": [],
        "calibration": None,
    }
    if prediction.probabilities is None:
        return found
    proba = np.asarray(prediction.probabilities, dtype=float)
    # Two classes: the second is the positive one, as scikit-learn has it.
    curves = [1] if len(classes) == 2 else range(len(classes))
    aucs = []
    for i in curves:
        positive = truth == classes[i]
        if positive.all() or not positive.any():
            continue  # a curve needs both kinds of rows
        fpr, tpr, _ = sk_metrics.roc_curve(positive, proba[:, i])
        fpr, tpr = _thin(fpr, tpr)
        auc = sk_metrics.roc_auc_score(positive, proba[:, i])
        aucs.append(auc)
        found["roc"].append(
            {"class": classes[i], "auc": _round(auc), "fpr": _rounded(fpr), "tpr": _rounded(tpr)}
        )
        precision_points, recall_points, _ = sk_metrics.precision_recall_curve(
            positive, proba[:, i]
        )
        precision_points, recall_points = _thin(precision_points, recall_points)
        found["pr"].append(
            {
                "class": classes[i],
                "average_precision": _round(
                    sk_metrics.average_precision_score(positive, proba[:, i])
                ),
                "recall": _rounded(recall_points),
                "precision": _rounded(precision_points),
            }
        )
    # Several classes: the mean of each class against the rest (scikit-learn's "ovr" macro).
    found["metrics"]["roc_auc"] = _round(np.mean(aucs)) if aucs else None
    if len(classes) == 2:
        found["calibration"] = _calibration("positive_class", truth == classes[1], proba[:, 1])
    else:
        top = proba.argmax(axis=1)
        right = truth == np.asarray(classes, dtype=object)[top]
        found["calibration"] = _calibration("top_label", right, proba.max(axis=1))
    return found


def _calibration(kind: str, outcome: np.ndarray, probability: np.ndarray) -> dict[str, Any]:
    """Per bin of predicted probability (uniform, as scikit-learn's calibration_curve): the
    mean probability and how often the event happened."""
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    bins = np.searchsorted(edges[1:-1], probability)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    predicted = np.bincount(bins, weights=probability, minlength=CALIBRATION_BINS)
    observed = np.bincount(bins, weights=outcome.astype(float), minlength=CALIBRATION_BINS)
    used = counts > 0
    return {
        "kind": kind,
        "mean_predicted": _rounded(predicted[used] / counts[used]),
        "observed": _rounded(observed[used] / counts[used]),
        "count": counts[used].astype(int).tolist(),
    }


# ---- regression ----------------------------------------------------------------------------


def _r2(truth: np.ndarray, values: np.ndarray) -> float:
    spread = float(np.sum((truth - truth.mean()) ** 2))
    if spread == 0:
        return float("nan")
    return 1.0 - float(np.sum((truth - values) ** 2)) / spread


def _regression(actual: np.ndarray, predicted: np.ndarray, rng: np.random.Generator) -> dict:
    residuals = actual - predicted
    counts, edges = np.histogram(residuals, bins=RESIDUAL_BINS)
    shown = np.arange(len(actual))
    if len(shown) > SCATTER_POINTS:
        shown = np.sort(rng.choice(len(actual), SCATTER_POINTS, replace=False))
    return {
        "metrics": {
            "mae": _round(np.mean(np.abs(residuals))),
            "rmse": _round(np.sqrt(np.mean(residuals**2))),
            "r2": _round(_r2(actual, predicted)),
            "mean_residual": _round(np.mean(residuals)),
        },
        "points": {"actual": _rounded(actual[shown]), "predicted": _rounded(predicted[shown])},
        "residual_histogram": {"edges": _rounded(edges), "counts": counts.tolist()},
    }


def _r2_score(truth: np.ndarray, prediction: Any) -> float:
    return _r2(truth, np.asarray(prediction.values, dtype=float))


# ---- permutation importance ----------------------------------------------------------------


def _importance(
    runtime: Any,
    batch: Batch,
    truth: np.ndarray,
    score: Any,
    task: str,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """How much the score drops when one feature's values are shuffled among the rows."""
    rows = np.arange(batch.rows)
    if batch.rows > IMPORTANCE_ROWS:
        rows = np.sort(rng.choice(batch.rows, IMPORTANCE_ROWS, replace=False))
    sample, truth = _subset(batch, rows), truth[rows]
    baseline = score(truth, runtime.predict(sample))
    features = []
    if math.isfinite(baseline):
        for name in sample.columns:
            drops = []
            for _ in range(REPEATS):
                shuffled = dict(sample.columns)
                shuffled[name] = sample.columns[name][rng.permutation(sample.rows)]
                permuted = Batch(
                    columns=shuffled, rows=sample.rows, warnings=[], types=sample.types
                )
                drops.append(baseline - score(truth, runtime.predict(permuted)))
            features.append(
                {"name": name, "mean": _round(np.mean(drops)), "std": _round(np.std(drops))}
            )
        features.sort(key=lambda f: -(f["mean"] or 0.0))
    return {
        "scoring": "r2" if task == "regression" else "accuracy",
        "baseline": _round(baseline),
        "repeats": REPEATS,
        "rows": int(sample.rows),
        "seed": SEED,
        "features": features,
    }
