"""Prometheus metrics: what is counted, and the text a scrape gets.

Under gunicorn the metrics live in prometheus-client's multiprocess mode: every worker writes
its values to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` (``ops.gunicorn_conf`` sets
a fresh one, and clears a dead worker's live gauges), and a scrape answered by any worker
sums them all. Without that variable (the development server, tests) they are this
process's own.

The functions below are the only way code counts: each takes plain values, keeps the labelled
child it finds (a label lookup costs more than the increment), and does nothing while
metrics are switched off (``MODELPORT_METRICS=false``). Routes are counted by template, never
by raw path, so a scan of random URLs cannot grow the label set.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import event
from sqlalchemy.engine import Engine

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

# The prediction's outcome label: a record's outcome, or a budget spent before any model ran.
OUTCOMES = ("ok", "invalid", "error", "incomplete", "throttled")

HTTP_REQUESTS = Counter(
    "modelport_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ("method", "route", "status"),
)
HTTP_DURATION = Histogram(
    "modelport_http_request_duration_seconds",
    "Time from the request reaching the application to its last byte handed to the server.",
    ("method", "route", "status"),
)
PREDICTIONS = Counter(
    "modelport_predictions",
    "Prediction requests that reached a model version, by outcome (ok; invalid: inputs "
    "refused; error: the model failed; incomplete: the client left a streamed answer; "
    "throttled: the caller's budget was spent).",
    ("model", "version", "runtime", "source", "outcome"),
)
PREDICTION_ROWS = Counter(
    "modelport_prediction_rows",
    "Rows in those prediction requests.",
    ("model", "version", "runtime", "source", "outcome"),
)
INFERENCE_DURATION = Histogram(
    "modelport_inference_duration_seconds",
    "Time the model took to compute one batch (no parsing, validation or recording).",
    ("model", "version"),
)
RECORDS = Counter(
    "modelport_prediction_records",
    "Prediction records committed to the database.",
)
RECORD_GROUP = Histogram(
    "modelport_record_group_size",
    "Records committed in one transaction by the grouping worker (1: a request on its own).",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32),
)
FAST_PATH_FALLBACKS = Counter(
    "modelport_fast_path_fallbacks",
    "Requests the predict hot path took and handed to Flask, by reason.",
    ("reason",),
)
MODEL_LOAD = Histogram(
    "modelport_model_load_seconds",
    "Time a worker took to load a model version into memory.",
    ("model", "version"),
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
REGISTRY_RELOADS = Counter(
    "modelport_registry_reloads",
    "Times a worker found the registry changed (an alias moved, a version added or archived).",
)
POOL_CHECKED_OUT = Gauge(
    "modelport_db_pool_checked_out",
    "Database connections in use, summed over live workers.",
    ("pool",),
    multiprocess_mode="livesum",
)
POOL_OVERFLOW = Gauge(
    "modelport_db_pool_overflow",
    "Connections open beyond the pool size, summed over live workers.",
    ("pool",),
    multiprocess_mode="livesum",
)
LOGIN_FAILURES = Counter(
    "modelport_login_failures",
    "Failed sign-ins and re-authentications (wrong password, unknown account).",
)
LOGIN_THROTTLED = Counter(
    "modelport_login_throttled",
    "Sign-ins refused because too many failed before (429).",
)
DRIFT_SHARE = Gauge(
    "modelport_model_drift_share",
    "Share of a model's features drifted in its latest monitoring rollup (0-1).",
    ("model",),
    multiprocess_mode="mostrecent",
)

_enabled = True
_children: dict[tuple[Any, ...], Any] = {}


def configure(enabled: bool) -> None:
    """Switch counting on or off for this process (``MODELPORT_METRICS``).

    With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus-client must have read it when it was
    first imported, or each worker would count only for itself: refuse to start instead.
    """
    global _enabled
    _enabled = enabled
    if enabled and os.environ.get(MULTIPROCESS_DIR) and not multiprocess_values():
        raise RuntimeError(
            f"{MULTIPROCESS_DIR} was set after prometheus_client was imported; set it before "
            "the server starts (modelport serve and the container do)."
        )


def enabled() -> bool:
    """Whether this process counts."""
    return _enabled


def multiprocess_values() -> bool:
    """Whether metric values live in the shared files (prometheus-client's value class)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def _child(metric: Any, labels: tuple[Any, ...]) -> Any:
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def count_request(method: str, route: str, status: str, seconds: float) -> None:
    """One HTTP request answered (``ops.request_log`` calls it for every request)."""
    if _enabled:
        labels = (method, route, status)
        _child(HTTP_REQUESTS, labels).inc()
        _child(HTTP_DURATION, labels).observe(seconds)


def count_prediction(
    model: str, version: int, runtime: str, source: str, outcome: str, rows: int
) -> None:
    """One prediction request that reached ``model``/``version``, ended with ``outcome``."""
    if _enabled:
        labels = (model, version, runtime, source, outcome)
        _child(PREDICTIONS, labels).inc()
        if rows:
            _child(PREDICTION_ROWS, labels).inc(rows)


def time_inference(model: str, version: int, seconds: float) -> None:
    """One batch computed by a model."""
    if _enabled:
        _child(INFERENCE_DURATION, (model, version)).observe(seconds)


def count_records(count: int, *, grouped: bool) -> None:
    """``count`` records committed in one transaction (``grouped``: by a RecordGroup)."""
    if _enabled and count:
        RECORDS.inc(count)
        if grouped:
            RECORD_GROUP.observe(count)


def count_fallback(reason: str) -> None:
    """The hot path handed a request to Flask, for ``reason``."""
    if _enabled:
        _child(FAST_PATH_FALLBACKS, (reason,)).inc()


def time_model_load(model: str, version: int, seconds: float) -> None:
    """A model version loaded into this worker."""
    if _enabled:
        _child(MODEL_LOAD, (model, version)).observe(seconds)


def count_registry_reload() -> None:
    """This worker saw the registry change and forgot its resolved references."""
    if _enabled:
        REGISTRY_RELOADS.inc()


def count_login_failure(*, throttled: bool) -> None:
    """A sign-in refused: a wrong password (or unknown account), or throttled."""
    if _enabled:
        (LOGIN_THROTTLED if throttled else LOGIN_FAILURES).inc()


def set_drift_share(model: str, share: float) -> None:
    """The share of ``model``'s features found drifted by the latest rollup."""
    if _enabled:
        _child(DRIFT_SHARE, (model,)).set(share)


def watch_pool(engine: Engine, name: str) -> None:
    """Count ``engine``'s checked-out connections and overflow as they change."""
    pool = engine.pool
    counted = getattr(pool, "checkedout", None)
    beyond = getattr(pool, "overflow", None)
    if counted is None or beyond is None:
        return  # a pool without a size (NullPool, StaticPool): nothing to watch
    checked_out = POOL_CHECKED_OUT.labels(name)
    overflow = POOL_OVERFLOW.labels(name)

    def changed(*_args: Any) -> None:
        if _enabled:
            checked_out.set(counted())
            overflow.set(max(beyond(), 0))

    event.listen(engine, "checkout", changed)
    event.listen(engine, "checkin", changed)


def exposition() -> bytes:
    """The Prometheus text of every metric: all workers' when they share the directory."""
    if multiprocess_values() and os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
