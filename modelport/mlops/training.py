"""Training: a registered dataset, a recipe, a seeded held-out split, an MLflow run, and the
model registered in MLflow's registry and in Modelport's.

``train`` checks everything a user can get wrong (the dataset, the recipe, its parameters,
the target, the model's name and task) before it fits anything, so a refused command
changes nothing anywhere. Modelport serves its own skops copy of the pipeline (compiled to
ONNX when the predictions match); MLflow keeps its copy for its own users, and Modelport
never loads it back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flask import current_app

from modelport.analytics import datasets
from modelport.lazy import lazy
from modelport.mlops.recipes import CLASSIFICATION, Recipe, RecipeError, get_recipe
from modelport.models.datasets import FileFormat
from modelport.models.registry import ModelVersion
from modelport.serving import flavors, registry

pd = lazy("pandas")
sklearn = lazy("sklearn")
sio = lazy("skops.io")
sk_metrics = lazy("sklearn.metrics")
sk_model_selection = lazy("sklearn.model_selection")
sk_pipeline = lazy("sklearn.pipeline")

STEPS = ("read", "split", "fit", "evaluate", "mlflow", "register")
TEST_SIZE = 0.25
SEED = 0
MIN_ROWS = 10
# A classification target with more distinct values than this is almost surely a number.
MAX_CLASSES = 100
EXAMPLE_ROWS = 5
MLFLOW_MISSING = (
    "MLflow is not installed, so the run is not logged to MLflow: pip install modelport[mlflow]"
)

Progress = Callable[[str], None]


class TrainingError(Exception):
    """A training request that cannot be done as asked; ``code`` names the rule."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class TrainingResult:
    """What a training run made: the Modelport version and, when logged, the MLflow run and
    registered model version."""

    version: ModelVersion
    dataset: str
    target: str
    metrics: dict[str, float]
    params: dict[str, Any]
    run_id: str | None = None
    mlflow_version: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class TrainingPlan:
    """A checked training request: the recipe and its settings, the data split into
    features and answers, the columns by kind. Made by ``plan``; nothing is written yet."""

    recipe: Recipe
    name: str
    dataset: str
    target: str
    features: pd.DataFrame
    answers: pd.Series
    numeric: list[str]
    categorical: list[str]
    settings: dict[str, Any]
    notes: list[str]


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``key=value`` texts as a dict; TrainingError for one without ``=`` or a key."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise TrainingError(
                "invalid_param", f"--param {pair!r} is not KEY=VALUE (for example C=0.5)."
            )
        parsed[key.strip()] = value.strip()
    return parsed


def read_dataset(reference: str) -> tuple[pd.DataFrame, str]:
    """The rows of a registered dataset, ``NAME`` (its newest version) or ``NAME@N``, and
    the reference resolved to ``NAME@N``."""
    name, sep, number_text = reference.partition("@")
    number = None
    if sep:
        try:
            number = int(number_text)
        except ValueError:
            raise TrainingError(
                "invalid_dataset", f"{reference}: a dataset version is NAME@N, N a number."
            ) from None
    try:
        version = datasets.get_version(datasets.get_dataset(name), number)
    except datasets.DatasetError as exc:
        raise TrainingError(exc.code, f"{exc.message} (see `modelport dataset add`)") from None
    path = datasets.artifact_store().path(version.file_sha256)
    table = datasets.read_table(path, FileFormat(version.format))
    return table.to_pandas(), f"{name}@{version.number}"


def plan(
    dataset: str,
    *,
    recipe: str,
    name: str,
    target: str | None = None,
    params: Sequence[str] = (),
) -> TrainingPlan:
    """Check a training request and prepare its data; nothing is written."""
    chosen = get_recipe_or_fail(recipe)
    try:
        settings = chosen.parse_params(parse_params(params))
    except RecipeError as exc:
        raise TrainingError(exc.code, exc.message) from None
    if not registry.NAME_PATTERN.match(name or ""):
        raise TrainingError(
            "invalid_name",
            "A model name is 1–64 lower-case letters, digits, '-' or '_', starting with a "
            "letter or digit.",
        )
    existing = registry.get_model(name)
    if existing is not None and existing.task != chosen.task:
        raise TrainingError(
            "task_mismatch",
            f"{name} is a {existing.task} model; the recipe {chosen.name} does {chosen.task}.",
        )
    frame, resolved = read_dataset(dataset)
    notes = []
    if target is None:
        target = str(frame.columns[-1])
        notes.append(f"Target: {target}, the dataset's last column (--target names another).")
    if target not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:20]))
        raise TrainingError(
            "missing_target", f"{resolved} has no column {target!r}; its columns: {shown}."
        )
    answers = frame[target]
    kept = answers.notna()
    features = frame.drop(columns=[target])[kept].reset_index(drop=True)
    answers = answers[kept].reset_index(drop=True)
    if features.shape[1] == 0:
        raise TrainingError("no_features", f"{resolved} has no column besides the target.")
    if len(features) < MIN_ROWS:
        raise TrainingError(
            "too_few_rows",
            f"{resolved} has {len(features)} rows with a {target}; training needs {MIN_ROWS}.",
        )
    _check_target(chosen, target, answers)
    numeric, categorical = _column_kinds(features)
    for column in categorical:
        # One missing marker (NaN) for the imputer, whatever Arrow gave (None, pd.NA).
        values = features[column].astype(object)
        features[column] = values.where(values.notna(), np.nan)
    return TrainingPlan(
        chosen, name, resolved, target, features, answers, numeric, categorical, settings, notes
    )


def get_recipe_or_fail(name: str) -> Recipe:
    """The recipe, or TrainingError naming the known ones."""
    try:
        return get_recipe(name)
    except RecipeError as exc:
        raise TrainingError(exc.code, exc.message) from None


def _check_target(recipe: Recipe, target: str, answers: pd.Series) -> None:
    numeric = pd.api.types.is_numeric_dtype(answers) and not pd.api.types.is_bool_dtype(answers)
    if recipe.task == CLASSIFICATION:
        distinct = answers.nunique()
        if distinct < 2:
            raise TrainingError(
                "invalid_target", f"{target} has one value only: there is nothing to classify."
            )
        if numeric and distinct > MAX_CLASSES:
            raise TrainingError(
                "invalid_target",
                f"{target} has {distinct} distinct numbers: choose a regression recipe.",
            )
    elif not numeric:
        raise TrainingError(
            "invalid_target",
            f"{target} is not numeric: choose a classification recipe for it.",
        )


def _column_kinds(features: pd.DataFrame) -> tuple[list[str], list[str]]:
    numeric, categorical = [], []
    for column in features.columns:
        values = features[column]
        if pd.api.types.is_bool_dtype(values):
            categorical.append(str(column))
        elif pd.api.types.is_numeric_dtype(values):
            numeric.append(str(column))
        elif pd.api.types.is_string_dtype(values) or isinstance(values.dtype, pd.CategoricalDtype):
            categorical.append(str(column))
        else:
            raise TrainingError(
                "unsupported_column",
                f"The column {column} holds {values.dtype} values; recipes take numbers, text "
                "and booleans (drop it from the dataset or turn it into one of those).",
            )
    return numeric, categorical


def mlflow_available() -> bool:
    """Whether the mlflow extra is installed."""
    try:
        import mlflow  # noqa: F401
        import mlflow.sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def train(
    chosen: TrainingPlan,
    *,
    aliases: Sequence[str] = (),
    use_mlflow: bool = True,
    seed: int = SEED,
    progress: Progress | None = None,
) -> TrainingResult:
    """Train a checked request (``plan``) and register the model as the next version of
    its name: in MLflow (run, model, registry) unless ``use_mlflow`` is off or MLflow is
    missing, and in Modelport, with its report on the held-out rows."""
    report = progress or (lambda _step: None)
    notes = list(chosen.notes)
    if use_mlflow and not mlflow_available():
        notes.append(MLFLOW_MISSING)
        use_mlflow = False
    if use_mlflow:
        _check_reachable(registry.configure_mlflow())
    report("read")
    classifier = chosen.recipe.task == CLASSIFICATION
    stratify = None
    if classifier and chosen.answers.value_counts().min() >= 2:
        stratify = chosen.answers
    x_train, x_test, y_train, y_test = sk_model_selection.train_test_split(
        chosen.features, chosen.answers, test_size=TEST_SIZE, random_state=seed, stratify=stratify
    )
    report("split")
    pipeline = chosen.recipe.build(chosen.numeric, chosen.categorical, chosen.settings, seed)
    pipeline.fit(x_train, y_train)
    report("fit")
    metrics = _metrics(pipeline, x_test, y_test, classifier)
    params_logged = {
        "recipe": chosen.recipe.name,
        **{key: _json_safe(value) for key, value in chosen.settings.items()},
        "dataset": chosen.dataset,
        "target": chosen.target,
        "test_size": TEST_SIZE,
        "seed": seed,
        "train_rows": len(x_train),
        "test_rows": len(x_test),
    }
    artifact = flavors.safe_skops(pipeline)
    if artifact is None:  # the recipes use scikit-learn's own estimators only
        raise TrainingError("unsaveable_model", "The trained pipeline cannot be saved as skops.")
    report("evaluate")
    run_id = mlflow_version = None
    if use_mlflow:
        run_id, mlflow_version = _log_to_mlflow(
            chosen, pipeline, artifact, x_train, metrics, params_logged
        )
        params_logged |= {"mlflow_run_id": run_id, "mlflow_model_version": mlflow_version}
    report("mlflow")
    version = _register(
        chosen,
        artifact,
        x_train,
        y_train,
        x_test,
        y_test,
        metrics,
        params_logged,
        aliases,
        mlflow_version,
    )
    report("register")
    return TrainingResult(
        version=version,
        dataset=chosen.dataset,
        target=chosen.target,
        metrics=metrics,
        params=params_logged,
        run_id=run_id,
        mlflow_version=mlflow_version,
        notes=notes,
    )


def _metrics(
    pipeline: sk_pipeline.Pipeline, x_test: pd.DataFrame, y_test: pd.Series, classifier: bool
) -> dict[str, float]:
    """Held-out figures for the MLflow run and the version's list of metrics."""
    predicted = pipeline.predict(x_test)
    if not classifier:
        return {
            "r2": float(sk_metrics.r2_score(y_test, predicted)),
            "mae": float(sk_metrics.mean_absolute_error(y_test, predicted)),
            "rmse": float(math.sqrt(sk_metrics.mean_squared_error(y_test, predicted))),
        }
    metrics = {
        "accuracy": float(sk_metrics.accuracy_score(y_test, predicted)),
        "f1_macro": float(sk_metrics.f1_score(y_test, predicted, average="macro")),
    }
    classes = pipeline.classes_
    if len(classes) == 2 and y_test.nunique() == 2:
        scores = pipeline.predict_proba(x_test)[:, 1]
        metrics["roc_auc"] = float(sk_metrics.roc_auc_score(y_test == classes[1], scores))
    return metrics


def _json_safe(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri


def _log_to_mlflow(
    chosen: TrainingPlan,
    pipeline: sk_pipeline.Pipeline,
    artifact: bytes,
    x_train: pd.DataFrame,
    metrics: dict[str, float],
    params: dict[str, Any],
) -> tuple[str, str]:
    """Log the run (parameters, metrics, the model with its signature and input example)
    and register the model in MLflow's registry under the same name; (run id, version)."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    uri = registry.configure_mlflow()
    try:
        experiment = mlflow.get_experiment_by_name(chosen.name)
        if experiment is None:
            location = None
            if _local_store(uri):
                location = (Path(current_app.config["MLFLOW_ARTIFACTS_DIR"])).as_uri()
            experiment_id = mlflow.create_experiment(chosen.name, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
        example = x_train.head(EXAMPLE_ROWS)
        signature = infer_signature(example, pipeline.predict(example))
        with mlflow.start_run(experiment_id=experiment_id, run_name=chosen.recipe.name) as run:
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            mlflow.set_tags({"modelport.task": chosen.recipe.task, "modelport.model": chosen.name})
            logged = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                signature=signature,
                input_example=example,
                registered_model_name=chosen.name,
                # Named, so MLflow does not start a Python process to work them out.
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                # MLflow saves skops too and checks its types: the ones Modelport's own copy
                # needs, all of them in flavors.TRUSTED_TYPES (safe_skops checked).
                skops_trusted_types=sorted(sio.get_untrusted_types(data=artifact)),
            )
    except Exception as exc:  # the server's or the store's refusal, in MLflow's words
        raise TrainingError(
            "mlflow_failed",
            f"MLflow at {registry.shown_uri(uri)} refused the run: {type(exc).__name__}: "
            f"{str(exc).strip()[:300]} (--no-mlflow registers in Modelport alone).",
        ) from None
    return run.info.run_id, str(logged.registered_model_version)


def _check_reachable(uri: str) -> None:
    """Fail at once, before fitting, when an MLflow server does not answer."""
    reason = registry.mlflow_unreachable(uri)
    if reason:
        raise TrainingError(
            "mlflow_unreachable",
            f"{reason}: start it, correct MODELPORT_MLFLOW_TRACKING_URI, or give --no-mlflow "
            "to register in Modelport alone.",
        )


def _register(
    chosen: TrainingPlan,
    artifact: bytes,
    x_train: pd.DataFrame,
    y_train: pd.Series,
    x_test: pd.DataFrame,
    y_test: pd.Series,
    metrics: dict[str, float],
    params: dict[str, Any],
    aliases: Sequence[str],
    mlflow_version: str | None,
) -> ModelVersion:
    """Register the skops pipeline in Modelport with the held-out rows as its evaluation."""
    model = registry.get_model(chosen.name) or registry.create_model(
        chosen.name,
        title=chosen.name,
        description=(
            f"{chosen.recipe.summary} Trained by `modelport train` on {chosen.dataset} "
            f"to predict {chosen.target}."
        ),
        task=chosen.recipe.task,
        commit=False,
    )
    held_out = x_test.reset_index(drop=True).assign(
        **{chosen.target: y_test.reset_index(drop=True).to_numpy()}
    )
    return registry.register_version(
        model,
        artifact,
        filename=f"{chosen.name}.skops",
        sample=x_train.reset_index(drop=True),
        target=y_train.reset_index(drop=True).rename(chosen.target),
        metrics=metrics,
        params=params,
        aliases=tuple(aliases),
        evaluation=held_out,
        evaluation_target=chosen.target,
        source_uri=f"models:/{chosen.name}/{mlflow_version}" if mlflow_version else None,
    )
