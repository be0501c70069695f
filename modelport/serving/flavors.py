"""Model flavors: recognise, load safely and run scikit-learn, ONNX and MLflow models.

numpy and onnx are imported with the module: under gunicorn the master imports the
application before it forks (``preload_app``), so the workers share one copy, and every
worker needs them to load an ONNX model. Sessions and estimators are made in each worker, on
first use (``serving.predictor``). The rest is imported on first use (``modelport.lazy``):
pandas, scikit-learn, skops and skl2onnx, by the worker that loads a scikit-learn model or
compiles one; MLflow, an optional extra; and onnxruntime, which must not be imported before
a fork: it starts a thread at import, and a forked worker, which has its state but not the
thread, then hangs at exit (onnxruntime 1.32, in a static destructor), until gunicorn kills
it.
"""

from __future__ import annotations

import functools
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx
from onnx import TensorProto, helper

from modelport.lazy import lazy
from modelport.serving.artifacts import ArtifactError
from modelport.serving.schema import Batch, InputError, InputSchema, validate_frame

pd = lazy("pandas")
skl2onnx = lazy("skl2onnx")
skl2onnx_types = lazy("skl2onnx.common.data_types")
sio = lazy("skops.io")
sklearn_base = lazy("sklearn.base")

__all__ = [
    "FLAVORS",
    "ArtifactError",
    "MlflowModelInfo",
    "MlflowRuntime",
    "OnnxRuntime",
    "OutputError",
    "Prediction",
    "Runtime",
    "SklearnRuntime",
    "compile_sklearn",
    "describe",
    "detect_flavor",
    "load_estimator",
    "load_mlflow_sklearn",
    "mlflow_model_info",
    "mlflow_runtime",
    "native_runtime",
    "onnx_runtime",
    "safe_skops",
]

FLAVORS = ("sklearn", "onnx", "mlflow")
NUMERIC_TYPES = ("number", "integer", "boolean")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
ACCEPTED = (
    "accepted formats: scikit-learn saved with skops (.skops), ONNX (.onnx), "
    "or an MLflow model registered by URI (models:/name@alias, runs:/..., or a path)"
)
PICKLE_REFUSED = (
    "pickle files can run arbitrary code when they are loaded, so they are refused; "
    "save the model with skops (skops.io.dump(model, 'model.skops')) or export it to ONNX"
)
MLFLOW_MISSING = "the mlflow extra is not installed: pip install modelport[mlflow]"

# Types skops does not trust by default but that are plain fitted state of scikit-learn's own
# estimators (trees, tree-predictors, optimiser state, neighbour indexes). Anything else a file
# asks for is refused and named; we never pass "trust everything". Private names of
# scikit-learn: tests/test_upstream.py checks that each still exists. ``numpy.dtype`` (a
# SimpleImputer's fitted dtype, in every trained pipeline): skops rebuilds it from an empty
# array read with numpy's own format, pickles refused, so it names a dtype and runs nothing.
TRUSTED_TYPES = frozenset(
    {
        "numpy.dtype",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    }
)

# Classifiers whose predict() is the argmax of predict_proba(): for them one call gives both.
# SVC is absent on purpose: its Platt-scaled probabilities can disagree with predict().
ARGMAX_MODULES = (
    "sklearn.linear_model.",
    "sklearn.ensemble.",
    "sklearn.tree.",
    "sklearn.neighbors.",
    "sklearn.neural_network.",
    "sklearn.naive_bayes.",
    "sklearn.discriminant_analysis.",
)

# Parity between a scikit-learn model and its ONNX compilation (float32 inside onnxruntime):
# classification: labels equal on every row and |probability difference| <= PROBA_TOLERANCE;
# regression: |value difference| <= VALUE_RELATIVE_TOLERANCE * max(1, max |native value|).
PROBA_TOLERANCE = 1e-4
VALUE_RELATIVE_TOLERANCE = 1e-4
PARITY_ROWS = 1000

# The array path above feeds columns already put in training order by name, which is the check
# this warning stands for; without the filter every call would print it.
warnings.filterwarnings(
    "ignore", message="X does not have valid feature names", category=UserWarning
)

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


class OutputError(Exception):
    """A model produced outputs that cannot be returned (not finite, wrong shape)."""


@dataclass
class Prediction:
    """What a runtime returns for a batch: labels/probabilities or regression values."""

    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    classes: list | None = None
    values: np.ndarray | None = None


class Runtime(Protocol):
    """Something that turns a validated batch into a prediction."""

    name: str

    def predict(self, batch: Batch) -> Prediction:
        """Predict every row of the batch."""
        ...


# --- recognising and loading files -------------------------------------------------------------


def detect_flavor(filename: str, head: bytes, *, trusted_pickle: bool = False) -> str:
    """The flavor of an uploaded file from its name and first bytes; ArtifactError if refused."""
    name = (filename or "").strip()
    lower = name.lower()
    if lower.startswith(("models:/", "runs:/")) or Path(name).name == "MLmodel":
        return "mlflow"
    suffix = Path(lower).suffix
    is_zip = head.startswith(b"PK\x03\x04")
    if is_zip and suffix not in (".onnx",):
        return "sklearn"  # skops files are zip archives; load_estimator checks their content
    if _is_pickle(head) or suffix in PICKLE_SUFFIXES:
        if trusted_pickle:
            return "sklearn"
        raise ArtifactError(PICKLE_REFUSED)
    if suffix == ".skops":
        raise ArtifactError("this is not a skops file: a skops file is a zip archive")
    if suffix == ".onnx" or _looks_like_onnx(head):
        return "onnx"
    raise ArtifactError(f"unrecognised model file {name or '(unnamed)'!r}; {ACCEPTED}")


def _is_pickle(head: bytes) -> bool:
    # Pickle protocols 2-5 start with PROTO (0x80) and the protocol number.
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _looks_like_onnx(head: bytes) -> bool:
    # A serialised ModelProto starts with field 1 (ir_version, a small varint), then one of the
    # following fields in order: producer_name .. opset_import. The full parse happens at load.
    if len(head) < 3 or head[0] != 0x08 or not 1 <= head[1] <= 20:
        return False
    return head[2] in (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42)


def load_estimator(path: Path, *, trusted_pickle: bool = False) -> Any:
    """Load a scikit-learn model from a skops file (or a pickle when trusted_pickle is on)."""
    path = Path(path)
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PK\x03\x04"):
        estimator = _load_skops(path)
    elif trusted_pickle:
        import joblib

        try:
            # The operator turned trusted pickles on: this runs whatever code the file holds.
            estimator = joblib.load(path)
        except Exception as exc:
            raise ArtifactError(f"the pickle file cannot be loaded: {_short(exc)}") from None
    elif _is_pickle(head):
        raise ArtifactError(PICKLE_REFUSED)
    else:
        raise ArtifactError("this is not a skops file: a skops file is a zip archive")
    if not callable(getattr(estimator, "predict", None)):
        raise ArtifactError(
            f"the file holds a {type(estimator).__name__}, not a model with a predict() method"
        )
    return estimator


def _load_skops(path: Path) -> Any:
    if not zipfile.is_zipfile(path):
        raise ArtifactError("this is not a valid skops file: the zip archive is damaged")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise ArtifactError(f"this is not a valid skops file: {_short(exc)}") from None
    refused = sorted(t for t in untrusted if t not in TRUSTED_TYPES)
    if refused:
        raise ArtifactError(
            "the skops file needs types that are not trusted and could run code when loaded: "
            + ", ".join(refused)
        )
    try:
        return sio.load(path, trusted=sorted(untrusted))
    except Exception as exc:
        raise ArtifactError(f"the skops file cannot be loaded: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def describe(estimator: Any) -> dict:
    """Task guess, classes (JSON-safe) and class name of a scikit-learn model."""
    task = "classification" if sklearn_base.is_classifier(estimator) else "regression"
    classes = getattr(estimator, "classes_", None) if task == "classification" else None
    info: dict[str, Any] = {
        "task": task,
        "classes": _json_list(classes) if classes is not None else None,
        "class_name": type(estimator).__name__,
    }
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is not None:
        info["n_features"] = int(n_features)
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        info["feature_names"] = [str(n) for n in names]
    return info


def _json_list(values: Any) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values).tolist()]


# --- runtimes ----------------------------------------------------------------------------------


def _check_finite(name: str, array: np.ndarray | None) -> None:
    if array is None or array.dtype.kind not in "fc":
        return
    if not np.isfinite(array).all():
        raise OutputError(f"the model returned {name} that are not finite numbers (NaN or inf)")


def _numeric_schema(schema: InputSchema) -> bool:
    return all(f.type in NUMERIC_TYPES for f in schema.features)


class SklearnRuntime:
    """A scikit-learn estimator run in process."""

    name = "sklearn"

    def __init__(self, estimator: Any, schema: InputSchema, task: str) -> None:
        """Check the estimator against the schema and prepare how batches are fed to it."""
        self.estimator = estimator
        self.schema = schema
        self.task = task
        fitted_names = getattr(estimator, "feature_names_in_", None)
        self.columns: list[str] | None = None
        self.order: list[int] | None = None
        if fitted_names is not None:
            fitted = [str(n) for n in fitted_names]
            missing = sorted(set(fitted) - set(schema.names))
            if missing:
                raise ArtifactError(
                    "the model was trained on features the schema lacks: " + ", ".join(missing)
                )
            # scikit-learn insists on its training column order.
            self.columns = fitted if fitted != schema.names else None
            # A DataFrame costs ~1 ms per call in scikit-learn's checks, an array ~0.2 ms: numeric
            # models get an array in training order once the first batch shows both agree.
            numeric = _numeric_schema(schema)
            self.mode = "probe" if numeric else "frame"
            if numeric and self.columns is not None:
                self.order = [schema.names.index(n) for n in fitted]
        elif _numeric_schema(schema):
            self.mode = "array"
            n_features = getattr(estimator, "n_features_in_", None)
            if n_features is not None and int(n_features) != len(schema.features):
                raise ArtifactError(
                    f"the model expects {int(n_features)} features but the schema has "
                    f"{len(schema.features)}"
                )
        else:
            self.mode = "values"  # text features for a model fitted without column names
        self.classes = getattr(estimator, "classes_", None)
        self.json_classes = _json_list(self.classes) if self.classes is not None else None
        self.has_proba = task == "classification" and hasattr(estimator, "predict_proba")
        final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        self.argmax_labels = self.has_proba and type(final).__module__.startswith(ARGMAX_MODULES)

    def _array(self, batch: Batch) -> np.ndarray:
        matrix = batch.matrix(np.float64)
        return matrix[:, self.order] if self.order is not None else matrix

    def _frame(self, batch: Batch) -> pd.DataFrame:
        frame = batch.frame()
        return frame[self.columns] if self.columns is not None else frame

    def predict(self, batch: Batch) -> Prediction:
        """Predict with the estimator: probabilities and labels, or values."""
        if self.mode == "array":
            return self._predict(self._array(batch))
        if self.mode == "values":
            return self._predict(self._frame(batch).to_numpy())
        if self.mode == "frame":
            return self._predict(self._frame(batch))
        prediction = self._predict(self._frame(batch))
        try:
            fast = self._predict(self._array(batch))
        except Exception:
            fast = None  # e.g. a ColumnTransformer that picks columns by name
        self.mode = "array" if fast is not None and _same(fast, prediction) else "frame"
        return prediction

    def _predict(self, X: Any) -> Prediction:
        if self.task != "classification":
            values = np.asarray(self.estimator.predict(X))
            if values.ndim == 2 and values.shape[1] == 1:
                values = values.ravel()
            values = values.astype(np.float64, copy=False)
            _check_finite("values", values)
            return Prediction(values=values)
        classes = self.json_classes
        if not self.has_proba:
            labels = np.asarray(self.estimator.predict(X))
            _check_finite("labels", labels)
            return Prediction(labels=labels, classes=classes)
        proba = np.asarray(self.estimator.predict_proba(X), dtype=np.float64)
        _check_finite("probabilities", proba)
        if self.argmax_labels and self.classes is not None:
            labels = np.asarray(self.classes).take(proba.argmax(axis=1))
        else:
            labels = np.asarray(self.estimator.predict(X))
        _check_finite("labels", labels)
        return Prediction(labels=labels, probabilities=proba, classes=classes)


def _same(a: Prediction, b: Prediction) -> bool:
    pairs = [(a.labels, b.labels), (a.probabilities, b.probabilities), (a.values, b.values)]
    return all(
        (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
        for x, y in pairs
    )


@functools.cache
def _ort_max_opset() -> int:
    """The newest default-domain opset the installed onnxruntime loads (probed once)."""
    import onnxruntime as ort  # in the worker only: see the module's docstring

    top = min(onnx.defs.onnx_opset_version(), skl2onnx.__max_supported_opset__)
    for opset in range(top, 12, -1):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8
        )
        try:
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception:  # noqa: S112 - an opset this onnxruntime does not know: try older
            continue
        return opset
    return 13


def _session(model: Path | bytes) -> Any:
    import onnxruntime as ort  # in the worker only: see the module's docstring

    options = ort.SessionOptions()
    # Gunicorn runs one worker per core: onnxruntime's own thread pools would oversubscribe them.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _check_onnx(model: Path | bytes) -> None:
    try:
        if isinstance(model, Path):
            # The path form lets the checker handle models over 2 GB and external data.
            onnx.checker.check_model(str(model))
        else:
            onnx.checker.check_model(onnx.load_model_from_string(model))
    except Exception as exc:
        raise ArtifactError(f"this is not a valid ONNX model: {_short(exc)}") from None


def _shape(arg: Any) -> list:
    return list(arg.shape) if arg.shape is not None else []


class OnnxRuntime:
    """An ONNX model run by onnxruntime, fed in the schema's feature order."""

    name = "onnxruntime"

    def __init__(
        self, model: Path | bytes, schema: InputSchema, task: str, classes: list | None = None
    ) -> None:
        """Validate the model, open a single-threaded session and plan inputs and outputs."""
        _check_onnx(model)
        try:
            self.session = _session(model)
        except Exception as exc:
            raise ArtifactError(f"onnxruntime cannot load the model: {_short(exc)}") from None
        self.schema = schema
        self.task = task
        self.classes = list(classes) if classes is not None else None
        self._plan_inputs()
        self._plan_outputs()

    def _plan_inputs(self) -> None:
        inputs = self.session.get_inputs()
        names = self.schema.names
        by_name = {arg.name: arg for arg in inputs}
        self.per_feature: list[tuple[str, Any, int]] | None = None
        self.reshape: tuple | None = None
        textual = any(_ORT_DTYPES.get(arg.type) is np.object_ for arg in inputs)
        if set(by_name) == set(names) and (len(inputs) > 1 or textual):
            self.per_feature = []
            for name in names:
                dtype = _ORT_DTYPES.get(by_name[name].type)
                if dtype is None:
                    raise ArtifactError(f"the model's input {name!r} has type {by_name[name].type}")
                self.per_feature.append((name, dtype, len(_shape(by_name[name]))))
            return
        if len(inputs) != 1:
            raise ArtifactError(
                f"the model's inputs ({', '.join(sorted(by_name))}) match neither one tensor "
                "nor the schema's features one by one"
            )
        arg = inputs[0]
        dtype = _ORT_DTYPES.get(arg.type)
        if dtype is None or dtype is np.object_:
            raise ArtifactError(f"the model's input {arg.name!r} has type {arg.type}")
        if not _numeric_schema(self.schema):
            raise ArtifactError(
                "the model takes one numeric tensor, but the schema has text or category features"
            )
        dims = _shape(arg)[1:]
        if dims and all(isinstance(d, int) for d in dims):
            size = int(np.prod(dims))
            if size != len(names):
                raise ArtifactError(
                    f"the model's input {arg.name!r} takes {size} features per row but the "
                    f"schema has {len(names)}"
                )
            if len(dims) > 1:
                self.reshape = tuple(dims)  # e.g. an image network fed [N, C, H, W]
        self.input_name = arg.name
        self.input_dtype = dtype

    def _plan_outputs(self) -> None:
        outputs = self.session.get_outputs()
        self.label_output = None
        self.proba_output = None
        if self.task != "classification":
            floats = [o for o in outputs if o.type in ("tensor(float)", "tensor(double)")]
            if not floats:
                raise ArtifactError("the model has no numeric output to use as regression values")
            self.value_output = floats[0].name
            return
        for out in outputs:
            rank = len(_shape(out))
            if out.type.startswith("seq(map("):
                self.proba_output = out.name  # skl2onnx ZipMap output
            elif out.type in ("tensor(float)", "tensor(double)") and rank == 2:
                self.proba_output = self.proba_output or out.name
            elif out.type in ("tensor(int64)", "tensor(int32)", "tensor(string)") and rank <= 2:
                self.label_output = self.label_output or out.name
        if self.proba_output is None:
            floats = [o for o in outputs if o.type in ("tensor(float)", "tensor(double)")]
            if not floats:
                raise ArtifactError("the model has no numeric output to use as class scores")
            self.proba_output = floats[0].name
        label_type = next((o.type for o in outputs if o.name == self.label_output), "")
        if (
            self.classes is not None
            and label_type.startswith("tensor(int")
            and not all(isinstance(c, int) and not isinstance(c, bool) for c in self.classes)
        ):
            # An integer label output next to named classes is an index (a network's argmax),
            # not a class: map the scores' argmax to the classes instead.
            self.label_output = None
        self.generic = self.label_output is None
        if self.generic:
            width = _shape(next(o for o in outputs if o.name == self.proba_output))[-1:]
            if (
                self.classes is not None
                and width
                and isinstance(width[0], int)
                and width[0] not in (1, len(self.classes))
            ):
                raise ArtifactError(
                    f"the model outputs {width[0]} class scores but {len(self.classes)} classes "
                    "were given"
                )

    def _feed(self, batch: Batch) -> dict[str, np.ndarray]:
        if self.per_feature is None:
            matrix = np.ascontiguousarray(batch.matrix(self.input_dtype), dtype=self.input_dtype)
            if self.reshape is not None:
                matrix = matrix.reshape((batch.rows, *self.reshape))
            return {self.input_name: matrix}
        feed = {}
        for name, dtype, rank in self.per_feature:
            column = np.asarray(batch.columns[name])
            column = column.astype(str).astype(object) if dtype is np.object_ else column
            column = column.astype(dtype, copy=False)
            feed[name] = column.reshape(-1, 1) if rank == 2 else column
        return feed

    def predict(self, batch: Batch) -> Prediction:
        """Run the session and shape its outputs into a prediction."""
        feed = self._feed(batch)
        if self.task != "classification":
            (raw,) = self.session.run([self.value_output], feed)
            values = np.asarray(raw, dtype=np.float64)
            values = values.reshape(batch.rows, -1)
            if values.shape[1] == 1:
                values = values.ravel()
            _check_finite("values", values)
            return Prediction(values=values)
        wanted = [self.proba_output] + ([self.label_output] if self.label_output else [])
        results = self.session.run(wanted, feed)
        raw = results[0]
        classes = self.classes
        if isinstance(raw, list):  # ZipMap: one {class: probability} dict per row
            keys = list(raw[0]) if raw else list(classes or [])
            proba = np.array([[row[k] for k in keys] for row in raw], dtype=np.float64)
            classes = classes if classes is not None else _json_list(keys)
        else:
            proba = np.asarray(raw, dtype=np.float64).reshape(batch.rows, -1)
        _check_finite("probabilities", proba)
        if self.generic:
            proba = _as_probabilities(proba)
        width = proba.shape[1]
        if classes is None:
            classes = list(range(width))
        elif len(classes) != width:
            raise OutputError(
                f"the model returned {width} class probabilities for {len(classes)} classes"
            )
        if self.label_output:
            labels = np.asarray(results[1]).reshape(batch.rows)
        else:
            labels = np.asarray(classes, dtype=object if _has_str(classes) else None).take(
                proba.argmax(axis=1)
            )
        return Prediction(labels=labels, probabilities=proba, classes=_json_list(classes))


def _has_str(values: list) -> bool:
    return any(isinstance(v, str) for v in values)


def _as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Class probabilities from a generic network's output: kept if rows already are
    probabilities, else treated as logits (sigmoid for one column, softmax for several)."""
    if scores.shape[1] == 1:
        column = scores[:, 0]
        if not ((column >= 0) & (column <= 1)).all():
            column = 1.0 / (1.0 + np.exp(-column))
        return np.column_stack([1.0 - column, column])
    if (scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        return scores
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class MlflowRuntime:
    """An MLflow pyfunc model, fed a DataFrame in schema order."""

    name = "mlflow"

    def __init__(self, uri: str, schema: InputSchema, task: str) -> None:
        """Load the pyfunc model from a path or a models:/ or runs:/ URI."""
        try:
            import mlflow.pyfunc
        except ImportError:
            raise ArtifactError(MLFLOW_MISSING) from None
        try:
            self.model = mlflow.pyfunc.load_model(uri)
        except Exception as exc:
            raise ArtifactError(
                f"the MLflow model {uri!r} cannot be loaded: {_short(exc)}"
            ) from None
        self.uri = uri
        self.schema = schema
        self.task = task

    def predict(self, batch: Batch) -> Prediction:
        """Predict through pyfunc; a multi-column output of a classifier is probabilities."""
        output = self.model.predict(batch.frame())
        columns = list(output.columns) if isinstance(output, pd.DataFrame) else None
        array = np.asarray(output)
        if self.task != "classification":
            values = array.astype(np.float64).reshape(batch.rows, -1)
            if values.shape[1] == 1:
                values = values.ravel()
            _check_finite("values", values)
            return Prediction(values=values)
        if array.ndim == 2 and array.shape[1] > 1:
            proba = array.astype(np.float64)
            _check_finite("probabilities", proba)
            classes = columns if columns is not None else list(range(proba.shape[1]))
            labels = np.asarray(classes).take(proba.argmax(axis=1))
            return Prediction(labels=labels, probabilities=proba, classes=_json_list(classes))
        labels = array.reshape(batch.rows)
        _check_finite("labels", labels)
        return Prediction(labels=labels)


@dataclass
class MlflowModelInfo:
    """What an MLflow model says about itself: its flavors, its signature's input columns
    (name, MLflow type) and the input example logged with it."""

    uri: str
    flavors: frozenset[str]
    columns: list[tuple[str, str]] | None
    example: pd.DataFrame | None

    @property
    def native_sklearn(self) -> bool:
        """Whether scikit-learn's own flavor is there (probabilities, ONNX compilation)."""
        return "sklearn" in self.flavors


def mlflow_model_info(uri: str) -> MlflowModelInfo:
    """Read an MLflow model's MLmodel file and input example. Reading them loads no model
    code: MLmodel is YAML and the example is JSON."""
    try:
        from mlflow.artifacts import download_artifacts
        from mlflow.models import Model
    except ImportError:
        raise ArtifactError(MLFLOW_MISSING) from None
    try:
        local = download_artifacts(artifact_uri=uri)
        described = Model.load(local)
    except Exception as exc:
        raise ArtifactError(f"the MLflow model {uri!r} cannot be found: {_short(exc)}") from None
    columns = None
    signature = described.signature
    if (
        signature is not None
        and signature.inputs is not None
        and signature.inputs.has_input_names()
    ):
        columns = [(str(item["name"]), str(item["type"])) for item in signature.inputs.to_dict()]
    try:
        example = described.load_input_example(local)
    except Exception:
        example = None  # a broken example only costs the fallback sample
    if example is not None and not isinstance(example, pd.DataFrame):
        example = pd.DataFrame(example) if isinstance(example, dict | list) else None
    return MlflowModelInfo(uri, frozenset(described.flavors), columns, example)


def load_mlflow_sklearn(uri: str) -> Any:
    """The scikit-learn estimator of an MLflow model with the sklearn flavor. MLflow
    unpickles it (or loads its skops file trusting what the model lists): the caller has
    checked that the tracking server is trusted."""
    try:
        import mlflow.sklearn
    except ImportError:
        raise ArtifactError(MLFLOW_MISSING) from None
    try:
        estimator = mlflow.sklearn.load_model(uri)
    except Exception as exc:
        raise ArtifactError(f"the MLflow model {uri!r} cannot be loaded: {_short(exc)}") from None
    if not callable(getattr(estimator, "predict", None)):
        raise ArtifactError(f"the MLflow model {uri!r} holds no model with a predict() method")
    return estimator


def safe_skops(estimator: Any) -> bytes | None:
    """The estimator as a skops file that ``load_estimator`` accepts, or None when it holds
    types outside ``TRUSTED_TYPES`` (a custom transformer, say) or skops cannot save it."""
    try:
        data = sio.dumps(estimator, compression=zipfile.ZIP_DEFLATED)
        untrusted = sio.get_untrusted_types(data=data)
    except Exception:
        return None
    return None if any(t not in TRUSTED_TYPES for t in untrusted) else data


def native_runtime(
    flavor: str,
    path: Path,
    schema: InputSchema,
    task: str,
    *,
    trusted_pickle: bool = False,
    classes: list | None = None,
) -> Runtime:
    """The runtime of a stored artifact in its own flavor (no compilation)."""
    if flavor == "sklearn":
        return SklearnRuntime(load_estimator(path, trusted_pickle=trusted_pickle), schema, task)
    if flavor == "onnx":
        return OnnxRuntime(Path(path), schema, task, classes)
    if flavor == "mlflow":
        return MlflowRuntime(str(path), schema, task)
    raise ArtifactError(f"unknown flavor {flavor!r}; known flavors: {', '.join(FLAVORS)}")


def onnx_runtime(
    path: Path, schema: InputSchema, task: str, classes: list | None = None
) -> Runtime:
    """An onnxruntime session over an ONNX file (uploaded or compiled)."""
    return OnnxRuntime(Path(path), schema, task, classes)


def mlflow_runtime(uri: str, schema: InputSchema, task: str) -> Runtime:
    """An MLflow pyfunc model; ArtifactError when the mlflow extra is not installed."""
    return MlflowRuntime(uri, schema, task)


# --- compiled serving --------------------------------------------------------------------------


def compile_sklearn(
    estimator: Any, schema: InputSchema, sample: pd.DataFrame, task: str
) -> tuple[bytes | None, dict]:
    """ONNX bytes for a scikit-learn model when skl2onnx converts it and its predictions match
    the native model's on ``sample``; otherwise None. Never raises for a model that cannot."""
    tolerance = PROBA_TOLERANCE if task == "classification" else VALUE_RELATIVE_TOLERANCE
    parity: dict[str, Any] = {
        "rows": 0,
        "labels_equal": None,
        "max_abs_diff": None,
        "tolerance": tolerance,
        "passed": False,
        "reason": "",
    }
    if not _numeric_schema(schema):
        parity["reason"] = "only numeric schemas compile"
        return None, parity
    if task == "classification" and not hasattr(estimator, "predict_proba"):
        parity["reason"] = "the model has no predict_proba; served natively"
        return None, parity
    try:
        onnx_bytes = _convert(estimator, schema, task)
    except Exception as exc:
        parity["reason"] = (
            f"skl2onnx cannot convert {type(estimator).__name__}: {_short(_root_cause(exc))}"
        )
        return None, parity
    try:
        rows = sample[schema.names].replace([np.inf, -np.inf], np.nan).dropna()
        batch = validate_frame(schema, rows.head(PARITY_ROWS), first_row=0)
    except (InputError, KeyError, ValueError) as exc:
        parity["reason"] = f"the sample cannot be used for the parity check: {_short(exc)}"
        return None, parity
    parity["rows"] = batch.rows
    if batch.rows == 0:
        parity["reason"] = "the sample has no complete rows for the parity check"
        return None, parity
    try:
        native = SklearnRuntime(estimator, schema, task).predict(batch)
        compiled = OnnxRuntime(
            onnx_bytes,
            schema,
            task,
            _json_list(estimator.classes_) if task == "classification" else None,
        ).predict(batch)
    except Exception as exc:
        parity["reason"] = f"the compiled model cannot predict the sample: {_short(exc)}"
        return None, parity
    if task == "classification":
        labels_equal = _same_labels(native.labels, compiled.labels)
        diff = float(np.max(np.abs(native.probabilities - compiled.probabilities)))
        parity["labels_equal"] = labels_equal
        parity["max_abs_diff"] = diff
        passed = labels_equal and diff <= tolerance
        why = [] if labels_equal else ["labels differ"]
        if diff > tolerance:
            why.append(f"probabilities differ by {diff:.3g} > {tolerance:g}")
    else:
        scale = max(1.0, float(np.max(np.abs(native.values))))
        tolerance = VALUE_RELATIVE_TOLERANCE * scale
        diff = float(np.max(np.abs(native.values - compiled.values)))
        parity["tolerance"] = tolerance
        parity["max_abs_diff"] = diff
        passed = diff <= tolerance
        why = [] if passed else [f"values differ by {diff:.3g} > {tolerance:.3g}"]
    parity["passed"] = bool(passed)
    parity["reason"] = (
        f"predictions match on {batch.rows} rows" if passed else "; ".join(why) + " (not compiled)"
    )
    return (onnx_bytes if passed else None), parity


def _convert(estimator: Any, schema: InputSchema, task: str) -> bytes:
    options = {"zipmap": False} if task == "classification" else None
    initial = [("input", skl2onnx_types.FloatTensorType([None, len(schema.features)]))]
    onnx_model = skl2onnx.to_onnx(
        estimator, initial_types=initial, options=options, target_opset=_ort_max_opset()
    )
    return onnx_model.SerializeToString()


def _root_cause(exc: BaseException) -> BaseException:
    # skl2onnx wraps the real failure (say a TypeError) in a long error that dumps the node.
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc


def _same_labels(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        return bool(np.array_equal(a, b))
    return bool(np.array_equal(a.astype(str), b.astype(str)))
