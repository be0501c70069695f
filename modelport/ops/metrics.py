"""Prometheus metrics: what is counted, and the text a scrape gets.

Under gunicorn the metrics live in prometheus-client's multiprocess mode: every worker writes
its values to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` (``ops.gunicorn_conf`` sets
a fresh one, and clears a dead worker's live gauges), and a scrape answered by any worker
sums them all. Without that variable (the development server, tests) they are this
process's own.

The functions below are the only way code counts. They note plain values in a queue of this
process, which ``ops.flusher``'s thread adds up and writes to prometheus-client's values
twice a second (one write per series), as a scrape does first for its own worker and a
worker leaving for its own: writing every increment to the shared files as it happens (a
lock, a pid check and a pack into the map, seven times for a prediction) cost a tenth of a
hot-path request. So another worker's counts reach ``/metrics`` within about a second. While metrics are switched
off (``MODELPORT_METRICS=false``) they do nothing. Routes are counted by template, never by
raw path, so a scan of random URLs cannot grow the label set.
"""

from __future__ import annotations

import bisect
import os
from collections import deque
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

from modelport.ops import flusher

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

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
SHADOW_PREDICTIONS = Counter(
    "modelport_shadow_predictions",
    "Requests also run on a model's shadow version after their answer was sent, by outcome "
    "(ok, invalid, error; dropped: the worker's shadow queue was full).",
    ("model", "version", "outcome"),
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

# Each histogram's bucket upper bounds, as prometheus-client keeps them (+Inf last).
_BOUNDS = {
    metric: tuple(metric._upper_bounds)  # noqa: SLF001 - tests/test_upstream.py
    for metric in (HTTP_DURATION, INFERENCE_DURATION, RECORD_GROUP, MODEL_LOAD)
}

_enabled = True

# What the request path notes, written out by ops.flusher: (metric, labels, amount) for
# counters (for PREDICTIONS the amount is the request's rows), (metric, labels, value, None)
# for histograms, (gauge child, value) for gauges.
_notes: deque[tuple[Any, ...]] = deque()
_children: dict[tuple[Any, tuple[Any, ...]], Any] = {}


def _note(item: tuple[Any, ...]) -> None:
    _notes.append(item)
    flusher.ensure_running()


def _child(metric: Any, labels: tuple[Any, ...]) -> Any:
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels) if labels else metric
    return child


def flush() -> None:
    """Write what was noted so far to prometheus-client's values: one write per series."""
    counts: dict[tuple[Any, tuple[Any, ...]], float] = {}
    observed: dict[tuple[Any, tuple[Any, ...]], list[float]] = {}
    gauges: dict[Any, float] = {}
    for _ in range(len(_notes)):
        item = _notes.popleft()
        if len(item) == 2:
            gauges[item[0]] = item[1]
        elif len(item) == 3:
            metric, labels, amount = item
            if metric is PREDICTIONS:
                # One note per prediction request: its rows go to the rows counter.
                counts[item[:2]] = counts.get(item[:2], 0) + 1
                metric = PREDICTION_ROWS
            key = (metric, labels)
            counts[key] = counts.get(key, 0) + amount
        else:
            metric, labels, value, _ = item
            bounds = _BOUNDS[metric]
            tally = observed.get((metric, labels))
            if tally is None:
                tally = observed[(metric, labels)] = [0.0] * (len(bounds) + 1)
            tally[bisect.bisect_left(bounds, value)] += 1
            tally[-1] += value
    for (metric, labels), amount in counts.items():
        _child(metric, labels).inc(amount)
    for (metric, labels), tally in observed.items():
        _observe_many(_child(metric, labels), tally)
        if metric is HTTP_DURATION:
            # Every request is one observation of its duration: the counter is their count.
            _child(HTTP_REQUESTS, labels).inc(sum(tally[:-1]))
    for child, value in gauges.items():
        child.set(value)


flusher.register(flush)


def _observe_many(child: Histogram, tally: list[float]) -> None:
    """Add a tally of observations (a count per bucket, then their sum) to a histogram.

    prometheus-client's public ``observe`` takes one observation at a time; its buckets and
    sum are values with ``inc`` (the same objects ``observe`` increments), guarded by
    tests/test_upstream.py."""
    buckets = child._buckets  # noqa: SLF001
    for index, amount in enumerate(tally[:-1]):
        if amount:
            buckets[index].inc(amount)
    child._sum.inc(tally[-1])  # noqa: SLF001


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


def multiprocess_values() -> bool:
    """Whether metric values live in the shared files (prometheus-client's value class)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def count_request(method: str, route: str, status: str, seconds: float) -> None:
    """One HTTP request answered (``ops.request_log`` calls it for every request)."""
    if _enabled:
        # modelport_http_requests_total is written from the same tally (``flush``).
        _note((HTTP_DURATION, (method, route, status), seconds, None))


def count_prediction(
    model: str, version: int, runtime: str, source: str, outcome: str, rows: int
) -> None:
    """One prediction request that reached ``model``/``version``, ended with ``outcome``."""
    if _enabled:
        _note((PREDICTIONS, (model, version, runtime, source, outcome), rows))


def count_shadow(model: str, version: int, outcome: str) -> None:
    """One shadow run of ``model``/``version`` that ended with ``outcome``."""
    if _enabled:
        _note((SHADOW_PREDICTIONS, (model, version, outcome), 1))


def time_inference(model: str, version: int, seconds: float) -> None:
    """One batch computed by a model."""
    if _enabled:
        _note((INFERENCE_DURATION, (model, version), seconds, None))


def count_records(count: int, *, grouped: bool) -> None:
    """``count`` records committed in one transaction (``grouped``: by a RecordGroup)."""
    if _enabled and count:
        _note((RECORDS, (), count))
        if grouped:
            _note((RECORD_GROUP, (), count, None))


def count_fallback(reason: str) -> None:
    """The hot path handed a request to Flask, for ``reason``."""
    if _enabled:
        _note((FAST_PATH_FALLBACKS, (reason,), 1))


def time_model_load(model: str, version: int, seconds: float) -> None:
    """A model version loaded into this worker."""
    if _enabled:
        _note((MODEL_LOAD, (model, version), seconds, None))


def count_registry_reload() -> None:
    """This worker saw the registry change and forgot its resolved references."""
    if _enabled:
        _note((REGISTRY_RELOADS, (), 1))


def count_login_failure(*, throttled: bool) -> None:
    """A sign-in refused: a wrong password (or unknown account), or throttled."""
    if _enabled:
        _note((LOGIN_THROTTLED if throttled else LOGIN_FAILURES, (), 1))


def set_drift_share(model: str, share: float) -> None:
    """The share of ``model``'s features found drifted by the latest rollup."""
    if _enabled:
        DRIFT_SHARE.labels(model).set(share)


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
            _note((checked_out, counted()))
            _note((overflow, max(beyond(), 0)))

    event.listen(engine, "checkout", changed)
    event.listen(engine, "checkin", changed)


def exposition() -> bytes:
    """The Prometheus text of every metric: all workers' when they share the directory
    (this worker's notes written first; the others' within ``flusher.INTERVAL``)."""
    flush()
    if multiprocess_values() and os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
