"""The predictor: resolve a model reference to a loaded version, cached per worker.

Each worker process keeps the versions it has loaded. Every ``REGISTRY_POLL_SECONDS`` it
reads one small aggregate of the registry's revisions; when an alias moved, a version was
added or archived, or a schema was edited, it forgets which version each reference means
and resolves again on the next request. Loaded runtimes are kept by version id, so moving
an alias back and forth does not reload files, and a request already running keeps the
object it started with.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from modelport.config import current_settings
from modelport.extensions import db
from modelport.models.registry import ModelAlias, ModelVersion, RegisteredModel, VersionStatus
from modelport.models.types import MAX_INT_ID
from modelport.ops import metrics
from modelport.serving import flavors
from modelport.serving.registry import (
    RegistryError,
    artifact_store,
    mlflow_runtime,
    served_version,
)
from modelport.serving.schema import InputSchema

PLATFORMS = {"onnxruntime": "onnx_onnxv1", "sklearn": "sklearn", "mlflow": "mlflow"}


class ModelNotFound(Exception):
    """No such model or version, or one the caller may not use."""


class ModelNotReady(Exception):
    """The version exists but cannot be loaded right now."""


@dataclass(frozen=True)
class Served:
    """One loaded model version, as a request sees it."""

    name: str
    version: int
    alias: str | None
    task: str
    visibility: str
    schema: InputSchema
    runtime: Any
    classes: list | None
    version_id: int
    model_id: int
    aliases: tuple[str, ...] = ()

    @property
    def platform(self) -> str:
        return PLATFORMS.get(self.runtime.name, self.runtime.name)


@dataclass
class _Cache:
    lock: threading.Lock = field(default_factory=threading.Lock)
    refs: dict[tuple[str, int | None, str | None], Served] = field(default_factory=dict)
    runtimes: dict[tuple[int, str], Any] = field(default_factory=dict)
    revision: tuple[int, int] | None = None
    checked_at: float = 0.0


def _cache() -> _Cache:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cache = app.extensions.get("modelport_predictor")
    if cache is None:
        cache = app.extensions.setdefault("modelport_predictor", _Cache())
    return cache


def _registry_revision() -> tuple[int, int]:
    row = db.session.execute(
        select(func.count(RegisteredModel.id), func.coalesce(func.sum(RegisteredModel.revision), 0))
    ).one()
    return int(row[0]), int(row[1])


def refresh(force: bool = False) -> None:
    """Forget resolved references if the registry changed since the last look."""
    cache = _cache()
    now = time.monotonic()
    interval = current_settings().registry_poll_seconds
    if not force and now - cache.checked_at < interval:
        return
    revision = _registry_revision()
    cache.checked_at = now
    if revision != cache.revision:
        if cache.revision is not None:
            metrics.count_registry_reload()
        with cache.lock:
            cache.refs = {}
            cache.revision = revision


def resolve(name: str, version: int | None = None, alias: str | None = None) -> Served:
    """The served version for ``name`` (``version`` or ``alias``, else champion/newest)."""
    refresh()
    cache = _cache()
    key = (name, version, alias)
    served = cache.refs.get(key)
    if served is not None:
        return served
    model = db.session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
    if model is None:
        raise ModelNotFound(f"There is no model named {name}.")
    row: ModelVersion | None
    if alias is not None:
        link = db.session.scalar(
            select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
        )
        if link is None:
            raise ModelNotFound(f"{name} has no alias {alias}.")
        row = link.version
    elif version is not None:
        row = (
            None
            if not 0 < version <= MAX_INT_ID
            else db.session.scalar(
                select(ModelVersion).where(
                    ModelVersion.model_id == model.id, ModelVersion.number == version
                )
            )
        )
        if row is None:
            raise ModelNotFound(f"{name} has no version {version}.")
    else:
        row = served_version(model)
        if row is None:
            raise ModelNotFound(f"{name} has no version ready to serve.")
        # Say which alias chose the version, so answers and records show "champion".
        if any(a.alias == "champion" and a.version_id == row.id for a in model.aliases):
            alias = "champion"
    if row.status != VersionStatus.READY.value:
        raise ModelNotFound(f"Version {row.number} of {name} is archived.")
    schema = InputSchema.from_dict(row.input_schema)
    classes = (row.output_schema or {}).get("classes")
    runtime = _runtime(row, schema, classes)
    served = Served(
        name=model.name,
        version=row.number,
        alias=alias,
        task=model.task,
        visibility=model.visibility,
        schema=schema,
        runtime=runtime,
        classes=classes,
        version_id=row.id,
        model_id=model.id,
        aliases=tuple(sorted(a.alias for a in model.aliases if a.version_id == row.id)),
    )
    with cache.lock:
        cache.refs[key] = served
    return served


def _runtime(row: ModelVersion, schema: InputSchema, classes: list | None) -> Any:
    cache = _cache()
    # The schema is part of the key: an admin's schema edit changes how inputs are fed.
    key = (row.id, repr(row.input_schema))
    runtime = cache.runtimes.get(key)
    if runtime is not None:
        return runtime
    started = time.perf_counter()
    store = artifact_store()
    allow_pickle = current_settings().allow_pickle
    task = row.model.task
    try:
        if row.compiled_sha256 and row.runtime == "onnxruntime":
            runtime = flavors.onnx_runtime(store.path(row.compiled_sha256), schema, task, classes)
        elif row.flavor == "onnx":
            runtime = flavors.onnx_runtime(store.path(row.artifact_sha256), schema, task, classes)
        elif row.flavor == "mlflow":
            runtime = mlflow_runtime(str(row.artifact_uri), schema, task)
        else:
            runtime = flavors.native_runtime(
                row.flavor,
                store.path(row.artifact_sha256),
                schema,
                task,
                trusted_pickle=allow_pickle,
            )
    except (OSError, flavors.ArtifactError, RegistryError) as exc:
        current_app.logger.error(
            "model_load_failed", extra={"version_id": row.id, "error": str(exc)}
        )
        raise ModelNotReady(f"Version {row.number} cannot be loaded right now.") from None
    metrics.time_model_load(row.model.name, row.number, time.perf_counter() - started)
    with cache.lock:
        cache.runtimes[key] = runtime
    return runtime


def load_served_models() -> list[str]:
    """Load every model's served version into this worker; return the problems found.

    Readiness calls it, so a pod only takes traffic once its models are in memory.
    """
    problems = []
    names = db.session.scalars(select(RegisteredModel.name).order_by(RegisteredModel.name))
    for name in list(names):
        try:
            resolve(name)
        except ModelNotFound:
            continue  # a model with no version yet serves nothing, which is not a fault
        except ModelNotReady as exc:
            problems.append(f"{name}: {exc}")
    return problems
