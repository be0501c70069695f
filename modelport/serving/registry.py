"""Registry rules: models, versions, aliases. One function per rule, shared by pages, API and CLI."""

from __future__ import annotations

import io
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from flask import current_app
from sqlalchemy import func, or_, select

from modelport.analytics import evaluation as evaluations
from modelport.config import current_settings
from modelport.extensions import db
from modelport.lazy import lazy
from modelport.models.registry import (
    ModelAlias,
    ModelReport,
    ModelVersion,
    RegisteredModel,
    Task,
    VersionStatus,
    Visibility,
)
from modelport.models.types import MAX_INT_ID, utcnow
from modelport.models.users import User
from modelport.serving import flavors
from modelport.serving.artifacts import ArtifactError, ArtifactStore
from modelport.serving.schema import InputSchema, infer_schema

pd = lazy("pandas")

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
# Rows of the training sample kept for schema inference, parity checks and analysis.
SAMPLE_ROWS = 1000
# Name of the target column in a stored training sample.
TARGET_COLUMN = "_target"
# How long an MLflow server's /health may take to answer (it answers in milliseconds).
PROBE_SECONDS = 5
# The aliases that choose a version for requests naming none (``serving.variants``).
CHAMPION, CHALLENGER, SHADOW = "champion", "challenger", "shadow"


class RegistryError(Exception):
    """A registry request that cannot be done as asked (invalid input); ``code`` names the
    rule, ``message`` says it. ``modelport.errors`` gives each kind its status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RegistryConflict(RegistryError):
    """The request is valid but clashes with the registry's state (a name taken, an
    archived version)."""


class RegistryNotFound(RegistryError):
    """The version or alias the request names does not exist."""


class RegistryUnavailable(RegistryError):
    """A server the registry needs (MLflow) does not answer: try again later."""


def artifact_store() -> ArtifactStore:
    """The content-addressed artifact store of this app."""
    return ArtifactStore(current_app.config["ARTIFACTS_DIR"])


def get_model(name: str) -> RegisteredModel | None:
    """The registered model called ``name``, if any."""
    return db.session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))


def create_model(
    name: str,
    *,
    title: str = "",
    description: str = "",
    task: str = Task.CLASSIFICATION.value,
    visibility: str = Visibility.PUBLIC.value,
    owner: User | None = None,
    commit: bool = True,
) -> RegisteredModel:
    """Register a new, empty model under a unique URL-safe name.

    ``commit=False`` leaves it to the caller's commit, so that a model created together with
    its first version (``modelport register``) is not left behind when the version is refused.
    """
    if not NAME_PATTERN.match(name or ""):
        raise RegistryError(
            "invalid_name",
            "A model name is 1–64 lower-case letters, digits, '-' or '_', starting with a "
            "letter or digit.",
        )
    if task not in {t.value for t in Task}:
        raise RegistryError("invalid_task", "task must be classification or regression.")
    if visibility not in {v.value for v in Visibility}:
        raise RegistryError("invalid_visibility", "visibility must be public or private.")
    if get_model(name) is not None:
        raise RegistryConflict("model_exists", f"A model named {name} already exists.")
    model = RegisteredModel(
        name=name,
        title=(title or name)[:200],
        description=description or "",
        task=task,
        visibility=visibility,
        owner_id=owner.id if owner else None,
    )
    db.session.add(model)
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return model


def update_model(
    model: RegisteredModel,
    *,
    title: str | None = None,
    description: str | None = None,
    visibility: str | None = None,
) -> RegisteredModel:
    """Change a model's title, description or visibility."""
    if visibility is not None:
        if visibility not in {v.value for v in Visibility}:
            raise RegistryError("invalid_visibility", "visibility must be public or private.")
        model.visibility = visibility
    if title is not None:
        model.title = title[:200] or model.name
    if description is not None:
        model.description = description
    _touch(model)
    db.session.commit()
    return model


def _touch(model: RegisteredModel) -> None:
    """Mark a change that workers must see: they compare revisions to reload their cache."""
    model.revision = (model.revision or 0) + 1
    model.updated_at = utcnow()


def read_sample(
    sample: pd.DataFrame | BinaryIO | bytes | str | Path, *, what: str = "sample"
) -> pd.DataFrame:
    """A training-data sample (or, ``what="evaluation"``, held-out rows) as a frame: from a
    frame, CSV bytes, a file object or a path."""
    if isinstance(sample, pd.DataFrame):
        return sample
    try:
        if isinstance(sample, bytes):
            sample = io.BytesIO(sample)
        frame = pd.read_csv(sample, nrows=100_000)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        problem = f"The {what} is not a readable CSV: {exc}"
    else:
        if not frame.empty and len(frame.columns) > 0:
            return frame
        problem = f"The {what} CSV has no rows."
    if what == "evaluation":
        raise RegistryError("invalid_evaluation", problem)
    raise RegistryError("invalid_sample", problem)


@dataclass
class _Loaded:
    flavor: str
    runtime: Any
    estimator: Any
    info: dict[str, Any]


def _feature_order(estimator: Any, frame: pd.DataFrame) -> list[str]:
    """The columns the model was trained on, in its order (the sample may carry more)."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return list(frame.columns)
    missing = [str(n) for n in names if n not in frame.columns]
    if missing:
        raise RegistryError(
            "sample_mismatch",
            f"The sample lacks columns the model was trained on: {', '.join(missing[:10])}.",
        )
    return [str(n) for n in names]


def register_version(
    model: RegisteredModel,
    artifact: BinaryIO | bytes | Path,
    *,
    filename: str,
    sample: pd.DataFrame | BinaryIO | bytes | Path,
    created_by: User | None = None,
    metrics: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    classes: list | None = None,
    aliases: tuple[str, ...] = (),
    target: pd.Series | None = None,
    descriptions: dict[str, str] | None = None,
    evaluation: pd.DataFrame | BinaryIO | bytes | Path | None = None,
    evaluation_target: str | None = None,
    source_uri: str | None = None,
) -> ModelVersion:
    """Store an artifact, infer its input schema from ``sample``, compile it if it converts
    with matching predictions, and add it as the model's next version.

    ``evaluation``: held-out rows with their true answers in column ``evaluation_target``
    (default ``TARGET_COLUMN``); the version's report is computed on them
    (``analytics.evaluation``). Without them, a ``target`` for the sample gives a report on
    the training sample, marked as such. ``source_uri`` records where the artifact came from
    (the MLflow model it was taken from)."""
    store = artifact_store()
    if isinstance(artifact, Path):
        with artifact.open("rb") as handle:
            sha = store.put(handle)
    else:
        sha = store.put(artifact)
    # Every file this registration stores (the artifact, its compiled form, the sample): a
    # refused or failed one (a full disk on the second file, say) leaves none of them.
    stored = [sha]
    try:
        return _register_stored(
            model,
            store,
            sha,
            stored,
            filename=filename,
            sample=sample,
            created_by=created_by,
            metrics=metrics,
            params=params,
            classes=classes,
            aliases=aliases,
            target=target,
            descriptions=descriptions,
            evaluation=evaluation,
            evaluation_target=evaluation_target,
            source_uri=source_uri,
        )
    except Exception:
        db.session.rollback()
        for digest in stored:
            _discard_unreferenced(store, digest)
        raise


def _discard_unreferenced(store: ArtifactStore, sha: str) -> None:
    """Remove a refused upload's file unless a registered version uses the same content."""
    used = db.session.scalar(
        select(func.count(ModelVersion.id)).where(
            or_(
                ModelVersion.artifact_sha256 == sha,
                ModelVersion.compiled_sha256 == sha,
                ModelVersion.sample_sha256 == sha,
            )
        )
    )
    if not used:
        store.remove(sha)


def _register_stored(
    model: RegisteredModel,
    store: ArtifactStore,
    sha: str,
    stored: list[str],
    *,
    filename: str,
    sample: pd.DataFrame | BinaryIO | bytes | Path,
    created_by: User | None,
    metrics: dict[str, Any] | None,
    params: dict[str, Any] | None,
    classes: list | None,
    aliases: tuple[str, ...],
    target: pd.Series | None,
    descriptions: dict[str, str] | None,
    evaluation: pd.DataFrame | BinaryIO | bytes | Path | None,
    evaluation_target: str | None,
    source_uri: str | None,
) -> ModelVersion:
    path = store.path(sha)
    allow_pickle = current_settings().allow_pickle
    frame = read_sample(sample)
    held_out = None if evaluation is None else read_sample(evaluation, what="evaluation")
    with path.open("rb") as handle:
        head = handle.read(512)
    try:
        flavor = flavors.detect_flavor(filename, head, trusted_pickle=allow_pickle)
        estimator = None
        compiled_sha = None
        parity: dict[str, Any] | None = None
        if flavor == "sklearn":
            estimator = flavors.load_estimator(path, trusted_pickle=allow_pickle)
            info = flavors.describe(estimator)
            task = info["task"]
            classes = info.get("classes")
            columns = _feature_order(estimator, frame)
        else:
            task = model.task
            columns = list(frame.columns)
        features = frame[columns].head(SAMPLE_ROWS)
        schema = infer_schema(features)
        for feature in schema.features:
            feature.description = (descriptions or {}).get(feature.name, feature.description)
        if flavor == "sklearn":
            onnx_bytes, parity = flavors.compile_sklearn(estimator, schema, features, task)
            if onnx_bytes is not None:
                compiled_sha = store.put(onnx_bytes)
                stored.append(compiled_sha)
                runtime = flavors.onnx_runtime(store.path(compiled_sha), schema, task, classes)
            else:
                runtime = flavors.native_runtime(
                    flavor, path, schema, task, trusted_pickle=allow_pickle
                )
        elif flavor == "onnx":
            runtime = flavors.onnx_runtime(path, schema, task, classes)
        else:
            raise RegistryError("unsupported_flavor", f"{flavor} artifacts are registered by URI.")
        _smoke_test(runtime, schema, features)
    except (ArtifactError, flavors.OutputError) as exc:
        raise RegistryError("invalid_artifact", str(exc)) from None
    if task != model.task:
        raise RegistryError(
            "task_mismatch",
            f"The model is registered for {model.task} but this artifact does {task}.",
        )
    report = _report(runtime, schema, task, held_out, evaluation_target, features, target)
    # The sample (with its targets, when known) is kept for the analysis pages.
    kept = features
    if target is not None:
        kept = features.assign(**{TARGET_COLUMN: target.head(len(features)).to_numpy()})
    sample_csv = kept.to_csv(index=False).encode("utf-8")
    sample_sha = store.put(sample_csv)
    stored.append(sample_sha)
    version = ModelVersion(
        model=model,
        number=_next_number(model),
        flavor=flavor,
        artifact_sha256=sha,
        artifact_uri=source_uri,
        compiled_sha256=compiled_sha,
        sample_sha256=sample_sha,
        runtime=runtime.name,
        parity=parity,
        input_schema=schema.to_dict(),
        output_schema={"task": task, "classes": _json_classes(classes)},
        metrics=metrics or None,
        params=params or None,
        created_by_id=created_by.id if created_by else None,
    )
    db.session.add(version)
    _touch(model)
    db.session.flush()
    _add_report(version, report)
    for alias in aliases:
        _point_alias(model, alias, version)
    db.session.commit()
    return version


def _report(
    runtime: Any,
    schema: InputSchema,
    task: str,
    held_out: pd.DataFrame | None,
    target_column: str | None,
    sample: pd.DataFrame,
    sample_target: pd.Series | None,
) -> dict[str, Any] | None:
    """The version's evaluation: on the held-out rows, else on the training sample when its
    targets are known (marked ``training_sample``), else none."""
    if held_out is None:
        if sample_target is None:
            return None
        answers = pd.Series(sample_target.head(len(sample)).to_numpy(), name=sample_target.name)
        try:
            return evaluations.evaluate(
                runtime, schema, task, sample, answers, source="training_sample"
            )
        except (evaluations.EvaluationError, flavors.OutputError):
            return None  # no report asked for: the version registers without one
    column = target_column or TARGET_COLUMN
    if column not in held_out.columns:
        raise RegistryError(
            "invalid_evaluation",
            f"The evaluation CSV has no target column {column} (name it, or call it "
            f"{TARGET_COLUMN}).",
        )
    missing = [name for name in schema.names if name not in held_out.columns]
    if missing:
        raise RegistryError(
            "invalid_evaluation",
            f"The evaluation CSV lacks the model's features: {', '.join(missing[:10])}.",
        )
    try:
        return evaluations.evaluate(
            runtime, schema, task, held_out[schema.names], held_out[column], source="holdout"
        )
    except evaluations.EvaluationError as exc:
        raise RegistryError("invalid_evaluation", exc.message) from None
    except flavors.OutputError as exc:
        raise RegistryError("invalid_evaluation", f"The model cannot predict them: {exc}") from None


def _smoke_test(runtime: Any, schema: InputSchema, features: pd.DataFrame) -> None:
    """Predict a few sample rows so that a model that cannot serve is refused at upload."""
    from modelport.serving.schema import validate_frame

    batch = validate_frame(schema, features.head(5).astype(str), first_row=0)
    runtime.predict(batch)


def _json_classes(classes: list | None) -> list | None:
    if classes is None:
        return None
    return [c.item() if hasattr(c, "item") else c for c in classes]


def _next_number(model: RegisteredModel) -> int:
    current = db.session.scalar(
        select(func.max(ModelVersion.number)).where(ModelVersion.model_id == model.id)
    )
    return (current or 0) + 1


def get_version(model: RegisteredModel, number: int) -> ModelVersion | None:
    """Version ``number`` of ``model`` (None for a number no version can have)."""
    if not 0 < number <= MAX_INT_ID:
        return None
    return db.session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.number == number)
    )


def _point_alias(model: RegisteredModel, alias: str, version: ModelVersion) -> ModelAlias:
    if not ALIAS_PATTERN.match(alias or ""):
        raise RegistryError(
            "invalid_alias",
            "An alias is 1–40 lower-case letters, digits, '-' or '_', starting with a letter.",
        )
    if version.status != VersionStatus.READY.value:
        raise RegistryConflict("version_archived", "An archived version cannot take an alias.")
    row = db.session.scalar(
        select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
    )
    if row is None:
        row = ModelAlias(model_id=model.id, alias=alias, version_id=version.id)
        db.session.add(row)
    else:
        row.version_id = version.id
        row.updated_at = utcnow()
    if alias == CHAMPION:
        model.previous_champion = None  # a promote sets it again, after this
    _touch(model)
    return row


def _not_followed(model: RegisteredModel, aliases: set[str]) -> None:
    """A model following MLflow takes its rollout aliases from there (``mlops.follow``):
    moving one here would be undone by the next sync."""
    taken = sorted(aliases & {CHAMPION, CHALLENGER, SHADOW})
    if model.mlflow_model and taken:
        raise RegistryConflict(
            "follows_mlflow",
            f"{model.name} follows the MLflow model {model.mlflow_model}: move its "
            f"{', '.join(taken)} alias in MLflow, or stop following it first.",
        )


def set_alias(
    model: RegisteredModel, alias: str, number: int, *, from_mlflow: bool = False
) -> ModelAlias:
    """Point ``alias`` at version ``number``; workers serve it within the poll interval.
    ``from_mlflow``: the sync of a following model (``mlops.follow``) moves it."""
    if not from_mlflow:
        _not_followed(model, {alias})
    version = get_version(model, number)
    if version is None:
        raise RegistryNotFound("version_not_found", f"{model.name} has no version {number}.")
    row = _point_alias(model, alias, version)
    db.session.commit()
    return row


def delete_alias(model: RegisteredModel, alias: str, *, from_mlflow: bool = False) -> None:
    """Remove ``alias`` from the model."""
    if not from_mlflow:
        _not_followed(model, {alias})
    row = db.session.scalar(
        select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
    )
    if row is None:
        raise RegistryNotFound("alias_not_found", f"{model.name} has no alias {alias}.")
    db.session.delete(row)
    _end_shares(model, {alias})
    _touch(model)
    db.session.commit()


def archive_version(model: RegisteredModel, number: int) -> ModelVersion:
    """Stop serving a version (its records stay). Aliases pointing at it are removed."""
    version = get_version(model, number)
    if version is None:
        raise RegistryNotFound("version_not_found", f"{model.name} has no version {number}.")
    version.status = VersionStatus.ARCHIVED.value
    for row in list(model.aliases):
        if row.version_id == version.id:
            db.session.delete(row)
            _end_shares(model, {row.alias})
    _touch(model)
    db.session.commit()
    return version


def update_schema(version: ModelVersion, data: dict[str, Any]) -> ModelVersion:
    """Replace a version's input schema with an admin's edit (same feature names, in order)."""
    try:
        schema = InputSchema.from_dict(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise RegistryError("invalid_schema", str(exc)) from None
    current = InputSchema.from_dict(version.input_schema)
    if schema.names != current.names:
        raise RegistryError(
            "invalid_schema",
            "The features and their order are fixed by the model; edit types, ranges, "
            "categories and descriptions only.",
        )
    version.input_schema = schema.to_dict()
    _touch(version.model)
    db.session.commit()
    return version


def _share(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise RegistryError("invalid_share", f"{name} is a number from 0 to 1 (0.1 is 10 %).")
    return float(value) or None  # 0 is off, as None is


def set_shares(
    model: RegisteredModel,
    *,
    canary: float | None = None,
    shadow: float | None = None,
    clear_canary: bool = False,
    clear_shadow: bool = False,
) -> RegisteredModel:
    """Set the canary share (callers naming no version who get the ``challenger`` alias's
    version) and/or the shadow share (requests also run on the ``shadow`` alias's version),
    each 0–1; 0 turns it off. A share above 0 needs its alias set first."""
    canary_share = _share(canary, "share")
    shadow_share = _share(shadow, "shadow_share")
    aliases = {row.alias for row in model.aliases}
    if canary_share and CHALLENGER not in aliases:
        raise RegistryConflict(
            "no_challenger", f"{model.name} has no {CHALLENGER} alias: set it before a share."
        )
    if shadow_share and SHADOW not in aliases:
        raise RegistryConflict(
            "no_shadow", f"{model.name} has no {SHADOW} alias: set it before a shadow share."
        )
    if canary is not None or clear_canary:
        model.canary_share = canary_share
    if shadow is not None or clear_shadow:
        model.shadow_share = shadow_share
    _touch(model)
    db.session.commit()
    return model


def promote(model: RegisteredModel) -> ModelVersion:
    """Make the challenger the champion: ``champion`` moves to the challenger's version, the
    ``challenger`` alias and the canary share go. Returns the new champion."""
    _not_followed(model, {CHAMPION, CHALLENGER})
    row = _alias_row(model, CHALLENGER)
    if row is None:
        raise RegistryNotFound("alias_not_found", f"{model.name} has no {CHALLENGER} alias.")
    version = row.version
    before = _alias_row(model, CHAMPION)
    previous = before.version.number if before is not None else None
    _point_alias(model, CHAMPION, version)
    model.previous_champion = previous if previous != version.number else None
    db.session.delete(row)
    model.canary_share = None
    db.session.commit()
    return version


def rollback(model: RegisteredModel) -> ModelVersion | None:
    """One step back. During a canary: end it, every caller gets the champion again (share 0,
    ``challenger`` removed). Without one, after a promote: the champion goes back to the
    version it had before, which is returned (once: a second rollback does nothing). Else
    nothing changes."""
    _not_followed(model, {CHALLENGER})
    row = _alias_row(model, CHALLENGER)
    number = model.previous_champion
    if row is not None or number is None:
        if row is not None:
            db.session.delete(row)
        model.canary_share = None
        _touch(model)
        db.session.commit()
        return None
    _not_followed(model, {CHAMPION})
    version = get_version(model, number)
    if version is None or version.status != VersionStatus.READY.value:
        raise RegistryConflict(
            "rollback_unavailable",
            f"Version {number}, the champion before the last promote, is no longer served: "
            "there is nothing to roll back to. Move the champion alias instead.",
        )
    _point_alias(model, CHAMPION, version)
    db.session.commit()
    return version


def _end_shares(model: RegisteredModel, removed: set[str]) -> None:
    """A share ends with its alias: set again later, the alias starts with none. A removed
    champion leaves no promote to roll back."""
    if CHALLENGER in removed:
        model.canary_share = None
    if SHADOW in removed:
        model.shadow_share = None
    if CHAMPION in removed:
        model.previous_champion = None


def _alias_row(model: RegisteredModel, alias: str) -> ModelAlias | None:
    return db.session.scalar(
        select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
    )


def served_version(model: RegisteredModel) -> ModelVersion | None:
    """The version a request without a version gets: ``champion`` if set, else the newest."""
    for row in model.aliases:
        if row.alias == "champion" and row.version.status == VersionStatus.READY.value:
            return row.version
    ready = [v for v in model.versions if v.status == VersionStatus.READY.value]
    return ready[-1] if ready else None


def mlflow_trusted() -> bool:
    """Whether models may be loaded from the MLflow tracking server: MLflow's flavors run
    code when loaded, so only with ``MODELPORT_MLFLOW_TRUSTED`` (or ``MODELPORT_ALLOW_PICKLE``,
    which trusts every pickle) on."""
    settings = current_settings()
    return settings.mlflow_trusted or settings.allow_pickle


def require_mlflow_trust(uri: str) -> None:
    """Refuse to load an MLflow model unless the tracking server is trusted."""
    if not mlflow_trusted():
        raise RegistryError(
            "mlflow_untrusted",
            f"{uri} is not loaded: MLflow models are pickled code, which runs when it is "
            "loaded, and the MLflow server is not trusted. Set MODELPORT_MLFLOW_TRUSTED=true "
            "if you trust every model on it (docs/security.md).",
        )


def configure_mlflow() -> str:
    """Point mlflow at the tracking server and registry (``MODELPORT_MLFLOW_TRACKING_URI``,
    by default ``mlflow.db`` in the instance folder); return its URI."""
    uri = str(current_app.config["MLFLOW_TRACKING_URI"])
    # MLflow reports usage to its makers over the network unless told not to (its
    # MLFLOW_DISABLE_TELEMETRY); Modelport talks to no server it was not configured with.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        import mlflow
    except ImportError:
        raise RegistryError("mlflow_missing", flavors.MLFLOW_MISSING) from None
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def mlflow_unreachable(uri: str) -> str | None:
    """Why the MLflow server at ``uri`` cannot be used right now (it does not answer), or
    None. Asked before talking to it: MLflow's own client retries a refused connection for
    minutes. A file or SQLite store is always there."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_SECONDS):  # noqa: S310 - the configured server
            return None
    except urllib.error.HTTPError:
        return None  # it answers (a proxy's 401 or 404 included); the request says the rest
    except (OSError, ValueError) as exc:
        return f"MLflow at {shown_uri(uri)} does not answer ({getattr(exc, 'reason', exc)})"


def shown_uri(uri: str) -> str:
    """A tracking URI without its password, for messages."""
    head, at, tail = uri.rpartition("@")
    if not at or "://" not in head:
        return uri
    scheme = head.split("://", 1)[0]
    return f"{scheme}://…@{tail}"


def mlflow_runtime(uri: str, schema: InputSchema, task: str) -> flavors.Runtime:
    """An MLflow model served through pyfunc, once the server is trusted (the workers and
    the registration alike)."""
    require_mlflow_trust(uri)
    configure_mlflow()
    return flavors.mlflow_runtime(uri, schema, task)


# MLflow signature types -> how the sample's column is cast, so the inferred schema types
# follow the signature rather than however the sample's file spelled the values.
_MLFLOW_CASTS = {
    "double": "float64",
    "float": "float64",
    "long": "int64",
    "integer": "int64",
    "boolean": "bool",
    "string": "str",
}


def _mlflow_sample(
    info: flavors.MlflowModelInfo, sample: pd.DataFrame | BinaryIO | bytes | Path | None
) -> pd.DataFrame:
    """The rows the version's schema is inferred from: the sample given, else the model's
    logged input example; in the signature's column order and types."""
    if sample is not None:
        frame = read_sample(sample)
    elif info.example is not None and not info.example.empty:
        frame = info.example
    else:
        raise RegistryError(
            "invalid_sample",
            f"{info.uri} was logged without an input example: give a sample CSV (--sample).",
        )
    if info.columns is None:
        return frame
    names = [name for name, _ in info.columns]
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise RegistryError(
            "sample_mismatch",
            f"The sample lacks columns of the model's signature: {', '.join(missing[:10])}.",
        )
    frame = frame[names].copy()
    for name, kind in info.columns:
        cast = _MLFLOW_CASTS.get(kind)
        if cast is None or (cast == "int64" and frame[name].isna().any()):
            continue
        try:
            frame[name] = frame[name].astype(cast)
        except (TypeError, ValueError):
            raise RegistryError(
                "sample_mismatch", f"The sample's column {name} is not of the signature's {kind}."
            ) from None
    return frame


def register_mlflow(
    model: RegisteredModel,
    uri: str,
    *,
    sample: pd.DataFrame | BinaryIO | bytes | Path | None = None,
    created_by: User | None = None,
    metrics: dict[str, Any] | None = None,
    aliases: tuple[str, ...] = (),
    evaluation: pd.DataFrame | BinaryIO | bytes | Path | None = None,
    evaluation_target: str | None = None,
) -> ModelVersion:
    """Add an MLflow model (``models:/name@alias``, ``models:/name/3``, ``runs:/`` or a local
    folder) as a version; refused unless the MLflow server is trusted.

    The input schema follows the model's signature, its ranges and categories the sample
    (the logged input example when no sample is given). A model with MLflow's scikit-learn
    flavor is loaded as the estimator and stored as a skops file, so it is served like an
    uploaded one (probabilities, ONNX compilation when it matches) and never unpickled again;
    any other model stays in MLflow and is served through pyfunc.
    """
    require_mlflow_trust(uri)
    configure_mlflow()
    try:
        info = flavors.mlflow_model_info(uri)
        estimator = flavors.load_mlflow_sklearn(uri) if info.native_sklearn else None
    except ArtifactError as exc:
        raise RegistryError("invalid_artifact", str(exc)) from None
    frame = _mlflow_sample(info, sample)
    data = flavors.safe_skops(estimator) if estimator is not None else None
    if data is not None:
        return register_version(
            model,
            data,
            filename="model.skops",
            sample=frame,
            created_by=created_by,
            metrics=metrics,
            aliases=aliases,
            evaluation=evaluation,
            evaluation_target=evaluation_target,
            source_uri=uri,
        )
    return _register_pyfunc(
        model,
        uri,
        frame,
        created_by=created_by,
        metrics=metrics,
        aliases=aliases,
        evaluation=evaluation,
        evaluation_target=evaluation_target,
    )


def _register_pyfunc(
    model: RegisteredModel,
    uri: str,
    frame: pd.DataFrame,
    *,
    created_by: User | None,
    metrics: dict[str, Any] | None,
    aliases: tuple[str, ...],
    evaluation: pd.DataFrame | BinaryIO | bytes | Path | None,
    evaluation_target: str | None,
) -> ModelVersion:
    features = frame.head(SAMPLE_ROWS)
    schema = infer_schema(features)
    held_out = None if evaluation is None else read_sample(evaluation, what="evaluation")
    try:
        runtime = mlflow_runtime(uri, schema, model.task)
        _smoke_test(runtime, schema, features)
    except (ArtifactError, flavors.OutputError) as exc:
        raise RegistryError("invalid_artifact", str(exc)) from None
    report = _report(runtime, schema, model.task, held_out, evaluation_target, features, None)
    version = ModelVersion(
        model=model,
        number=_next_number(model),
        flavor="mlflow",
        artifact_uri=uri,
        sample_sha256=artifact_store().put(features.to_csv(index=False).encode("utf-8")),
        runtime=runtime.name,
        input_schema=schema.to_dict(),
        output_schema={"task": model.task, "classes": None},
        metrics=metrics or None,
        created_by_id=created_by.id if created_by else None,
    )
    db.session.add(version)
    _touch(model)
    db.session.flush()
    _add_report(version, report)
    for alias in aliases:
        _point_alias(model, alias, version)
    db.session.commit()
    return version


def _add_report(version: ModelVersion, report: dict[str, Any] | None) -> None:
    if report is not None:
        db.session.add(
            ModelReport(
                version_id=version.id,
                source=report["source"],
                row_count=report["rows"],
                report=report,
            )
        )


def register_trained(item: Any, *, visibility: str = Visibility.PUBLIC.value) -> ModelVersion:
    """Register a model trained by ``modelport.serving.demo`` as its next version, alias
    ``champion``, creating the model the first time."""
    model = get_model(item.name) or create_model(
        item.name,
        title=item.title,
        description=item.description,
        task=item.task,
        visibility=visibility,
    )
    return register_version(
        model,
        item.artifact,
        filename=item.artifact.name,
        sample=item.sample,
        metrics=item.metrics,
        params=item.params,
        classes=item.classes,
        target=item.target_sample,
        descriptions=item.feature_descriptions,
        aliases=("champion",),
        evaluation=_held_out(item),
        evaluation_target=str(item.target_sample.name),
    )


def _held_out(item: Any) -> pd.DataFrame | None:
    """A demo model's test split with its targets, when it kept them."""
    if getattr(item, "holdout", None) is None or getattr(item, "holdout_target", None) is None:
        return None
    return item.holdout.assign(**{str(item.target_sample.name): item.holdout_target.to_numpy()})


def is_empty() -> bool:
    """Whether no model is registered at all (public or private)."""
    return not db.session.scalar(select(func.count(RegisteredModel.id)))
