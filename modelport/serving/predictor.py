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
from dataclasses import dataclass, field, replace
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from modelport.config import current_settings
from modelport.extensions import db
from modelport.models.predictions import Variant
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
    # A ``Variant`` when the request named no version or alias (``route``), else None.
    variant: str | None = None

    @property
    def platform(self) -> str:
        return PLATFORMS.get(self.runtime.name, self.runtime.name)


# A sticky key's hash is compared with a share as a whole number below 2**64.
HASH_SPACE = 1 << 64
CHALLENGER = "challenger"
SHADOW = "shadow"


@dataclass(frozen=True)
class Route:
    """Where a request naming no version goes, worked out once per registry revision: the
    champion, the challenger for callers whose key hashes below ``canary_cut`` (of
    ``HASH_SPACE``), and the shadow that a ``shadow_share`` of requests also runs on."""

    champion: Served
    challenger: Served | None = None
    canary_cut: int = 0
    shadow: Served | None = None
    shadow_share: float = 0.0


@dataclass
class _Cache:
    lock: threading.Lock = field(default_factory=threading.Lock)
    refs: dict[tuple[str, int | None, str | None], Served] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
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
            cache.routes = {}
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


def route(name: str) -> Route:
    """The ``Route`` of requests for ``name`` that name no version or alias.

    A challenger or shadow that cannot be loaded is left out (logged): the champion answers
    everything rather than a share of callers failing."""
    refresh()
    cache = _cache()
    found = cache.routes.get(name)
    if found is not None:
        return found
    champion = replace(resolve(name), variant=Variant.CHAMPION.value)
    shares = db.session.execute(
        select(RegisteredModel.canary_share, RegisteredModel.shadow_share).where(
            RegisteredModel.name == name
        )
    ).one()
    canary_share, shadow_share = (min(max(share or 0.0, 0.0), 1.0) for share in shares)
    challenger = _variant(name, CHALLENGER, Variant.CHALLENGER) if canary_share > 0 else None
    shadow = _variant(name, SHADOW, Variant.SHADOW) if shadow_share > 0 else None
    found = Route(
        champion=champion,
        challenger=challenger,
        canary_cut=int(canary_share * HASH_SPACE) if challenger is not None else 0,
        shadow=shadow,
        shadow_share=shadow_share if shadow is not None else 0.0,
    )
    with cache.lock:
        cache.routes[name] = found
    return found


def _variant(name: str, alias: str, variant: Variant) -> Served | None:
    try:
        return replace(resolve(name, alias=alias), variant=variant.value)
    except (ModelNotFound, ModelNotReady) as exc:
        current_app.logger.warning(
            "variant_unavailable", extra={"model": name, "alias": alias, "error": str(exc)}
        )
        return None


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
            route(name)  # the champion, and the challenger and shadow when they are on
        except ModelNotFound:
            continue  # a model with no version yet serves nothing, which is not a fault
        except ModelNotReady as exc:
            problems.append(f"{name}: {exc}")
    return problems
