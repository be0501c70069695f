"""A model's monitoring: what its prediction records and feedback say over a time window.

``monitor`` answers for one model, and only to a caller who may use it
(``serving.access.model_for``): volume, rows per request, errors and latency percentiles
per time bucket and version; the distribution of what it predicted (classes, or the
quantiles of a regression's values); realized accuracy (or mean absolute error) where
feedback exists, and, for classifiers, an estimate of accuracy without labels: the mean of
the probability of the predicted class (confidence-based, the estimate NannyML calls CBPE),
which falls when the model grows unsure, before labels arrive. Admins also see the callers
who predicted most.

Counts, errors and latencies come from every record of the window (grouped in SQL by
``buckets.epoch_bucket``). What needs a record's stored outputs (the predicted classes and
the confidence) reads at most ``OUTPUT_SAMPLE`` records of the window, spread evenly by id.
A refusal before a model ran (invalid inputs, a spent budget) leaves no record: those are
counted in the metrics (``modelport_predictions_total``).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import case, func, select

from modelport.analytics.buckets import epoch_bucket
from modelport.auth.caller import Caller
from modelport.extensions import db
from modelport.models import ApiToken, Feedback, PredictionRecord, User
from modelport.models.predictions import Outcome, Source
from modelport.serving import access

# Bucket widths, chosen from the window's length so that a chart has tens to hundreds of
# points: up to 6 hours by the minute, up to 14 days by the hour, else by the day.
BUCKETS = (
    ("minute", 60, timedelta(hours=6)),
    ("hour", 3600, timedelta(days=14)),
    ("day", 86400, None),
)
LONGEST = timedelta(days=400)
DEFAULT_WINDOW = timedelta(hours=24)
OUTPUT_SAMPLE = 20_000  # records whose outputs are read for the predicted distribution
LATENCY_SAMPLE = 200_000  # latencies read for the percentiles
TOP = 10
QUANTILES = (0.1, 0.5, 0.9)


class WindowError(ValueError):
    """A time window that cannot be shown (reversed, too long, in the future)."""


@dataclass(frozen=True)
class Window:
    """The records' time range [since, until), its bucket, and an optional version."""

    since: datetime
    until: datetime
    bucket: str
    seconds: int
    version: int | None = None


def window(
    since: datetime | None,
    until: datetime | None,
    *,
    version: int | None = None,
    now: datetime | None = None,
) -> Window:
    """The window asked for (default: the last 24 hours) with its bucket width."""
    now = now or datetime.now(UTC)
    until = until or now
    since = since or until - DEFAULT_WINDOW
    if since.tzinfo is None or until.tzinfo is None:
        raise WindowError("since and until need a time zone (for example 2026-12-01T00:00:00Z).")
    if since >= until:
        raise WindowError("since must come before until.")
    if until - since > LONGEST:
        raise WindowError(f"A window is at most {LONGEST.days} days long.")
    for name, seconds, longest in BUCKETS:
        if longest is None or until - since <= longest:
            return Window(since.astimezone(UTC), until.astimezone(UTC), name, seconds, version)
    raise AssertionError("unreachable")


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _in_window(model: str, span: Window) -> list[Any]:
    conditions = [
        PredictionRecord.model_name == model,
        PredictionRecord.created_at >= span.since,
        PredictionRecord.created_at < span.until,
    ]
    if span.version is not None:
        conditions.append(PredictionRecord.version_number == span.version)
    return conditions


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    if not len(values):
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3)}


def _spread(conditions: list[Any], total: int, limit: int) -> list[Any]:
    """Conditions that keep about ``limit`` of ``total`` records, evenly by id."""
    if total <= limit:
        return conditions
    return [*conditions, PredictionRecord.id % math.ceil(total / limit) == 0]


def _volume(conditions: list[Any], span: Window) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    bucket = epoch_bucket(PredictionRecord.created_at, span.seconds).label("bucket")
    errors = func.sum(case((PredictionRecord.status == Outcome.ERROR.value, 1), else_=0))
    cut = func.sum(case((PredictionRecord.status == Outcome.INCOMPLETE.value, 1), else_=0))
    rows = db.session.execute(
        select(
            bucket,
            PredictionRecord.version_number,
            func.count(),
            func.coalesce(func.sum(PredictionRecord.row_count), 0),
            errors,
            cut,
        )
        .where(*conditions)
        .group_by(bucket, PredictionRecord.version_number)
        .order_by(bucket, PredictionRecord.version_number)
    ).all()
    total = sum(int(r[2]) for r in rows)
    latency = db.session.execute(
        select(bucket, PredictionRecord.version_number, PredictionRecord.latency_ms).where(
            *_spread(conditions, total, LATENCY_SAMPLE),
            PredictionRecord.status == Outcome.OK.value,
        )
    ).all()
    by_key: dict[tuple[int, int | None], list[float]] = defaultdict(list)
    for start, version, ms in latency:
        by_key[(int(start), version)].append(float(ms))
    series = []
    for start, version, count, row_sum, error_count, incomplete in rows:
        count, row_sum = int(count), int(row_sum)
        series.append(
            {
                "start": _iso(int(start)),
                "version": version,
                "requests": count,
                "rows": row_sum,
                "errors": int(error_count),
                "incomplete": int(incomplete),
                "error_rate": round(int(error_count) / count, 4),
                "rows_per_request": round(row_sum / count, 3),
                "latency_ms": _percentiles(np.asarray(by_key[(int(start), version)])),
            }
        )
    requests = total
    row_total = sum(s["rows"] for s in series)
    error_total = sum(s["errors"] for s in series)
    totals = {
        "requests": requests,
        "rows": row_total,
        "errors": error_total,
        "incomplete": sum(s["incomplete"] for s in series),
        "error_rate": round(error_total / requests, 4) if requests else None,
        "rows_per_request": round(row_total / requests, 3) if requests else None,
        "latency_ms": _percentiles(np.asarray([ms for _, _, ms in latency], dtype=float)),
    }
    return series, totals


def _predicted(
    conditions: list[Any], span: Window, task: str, total: int
) -> tuple[list[dict[str, Any]], dict[int, list[float]]]:
    """The predicted distribution per bucket, and each bucket's confidences (classifiers)."""
    bucket = epoch_bucket(PredictionRecord.created_at, span.seconds).label("bucket")
    found = db.session.execute(
        select(bucket, PredictionRecord.outputs).where(
            *_spread(conditions, total, OUTPUT_SAMPLE),
            PredictionRecord.status == Outcome.OK.value,
            PredictionRecord.outputs.is_not(None),
        )
    ).all()
    labels: dict[int, Counter] = defaultdict(Counter)
    values: dict[int, list[float]] = defaultdict(list)
    confidence: dict[int, list[float]] = defaultdict(list)
    for start, outputs in found:
        for row in outputs if isinstance(outputs, list) else []:
            if not isinstance(row, dict):
                continue
            if task == "regression":
                if isinstance(row.get("value"), int | float):
                    values[int(start)].append(float(row["value"]))
                continue
            if "label" in row:
                labels[int(start)][str(row["label"])] += 1
            probabilities = row.get("probabilities")
            if isinstance(probabilities, dict) and probabilities:
                confidence[int(start)].append(max(float(p) for p in probabilities.values()))
    if task == "regression":
        series = []
        for start in sorted(values):
            points = np.quantile(np.asarray(values[start]), QUANTILES)
            series.append(
                {
                    "start": _iso(start),
                    "rows": len(values[start]),
                    "mean": round(float(np.mean(values[start])), 6),
                    **{
                        f"p{round(q * 100)}": round(float(v), 6)
                        for q, v in zip(QUANTILES, points, strict=True)
                    },
                }
            )
        return series, {}
    series = [
        {"start": _iso(start), "counts": dict(sorted(labels[start].items()))}
        for start in sorted(labels)
    ]
    return series, confidence


def _feedback(model: str, span: Window, task: str) -> dict[int, list[tuple[Any, Any]]]:
    bucket = epoch_bucket(PredictionRecord.created_at, span.seconds).label("bucket")
    found = db.session.execute(
        select(bucket, Feedback.actual, Feedback.predicted)
        .join(PredictionRecord, PredictionRecord.id == Feedback.record_id)
        .where(*_in_window(model, span), Feedback.predicted.is_not(None))
    ).all()
    pairs: dict[int, list[tuple[Any, Any]]] = defaultdict(list)
    for start, actual, predicted in found:
        pairs[int(start)].append((actual, predicted))
    return pairs


def _realized(pairs: list[tuple[Any, Any]], task: str) -> float | None:
    if not pairs:
        return None
    if task == "regression":
        errors = [abs(float(a) - float(p)) for a, p in pairs]
        return round(sum(errors) / len(errors), 6)
    return round(sum(str(a) == str(p) for a, p in pairs) / len(pairs), 4)


def _quality(
    pairs: dict[int, list[tuple[Any, Any]]], confidence: dict[int, list[float]], task: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    realized = "realized_mae" if task == "regression" else "realized_accuracy"
    series = []
    for start in sorted(set(pairs) | set(confidence)):
        point: dict[str, Any] = {
            "start": _iso(start),
            realized: _realized(pairs.get(start, []), task),
            "feedback_rows": len(pairs.get(start, [])),
        }
        if task != "regression":
            seen = confidence.get(start, [])
            point["estimated_accuracy"] = round(float(np.mean(seen)), 4) if seen else None
        series.append(point)
    every = [pair for found in pairs.values() for pair in found]
    totals: dict[str, Any] = {realized: _realized(every, task), "feedback_rows": len(every)}
    if task != "regression":
        seen = [c for found in confidence.values() for c in found]
        totals["estimated_accuracy"] = round(float(np.mean(seen)), 4) if seen else None
    return series, totals


def _top_callers(conditions: list[Any]) -> dict[str, list[dict[str, Any]]]:
    users = db.session.execute(
        select(User.id, User.email, func.count().label("n"))
        .join(PredictionRecord, PredictionRecord.user_id == User.id)
        .where(*conditions)
        .group_by(User.id, User.email)
        .order_by(func.count().desc(), User.id)
        .limit(TOP)
    ).all()
    tokens = db.session.execute(
        select(ApiToken.id, ApiToken.name, ApiToken.prefix, ApiToken.user_id, func.count())
        .join(PredictionRecord, PredictionRecord.token_id == ApiToken.id)
        .where(*conditions)
        .group_by(ApiToken.id, ApiToken.name, ApiToken.prefix, ApiToken.user_id)
        .order_by(func.count().desc(), ApiToken.id)
        .limit(TOP)
    ).all()
    return {
        "top_users": [{"id": i, "email": e, "requests": int(n)} for i, e, n in users],
        "top_tokens": [
            {"id": i, "name": name, "prefix": prefix, "user_id": owner, "requests": int(n)}
            for i, name, prefix, owner, n in tokens
        ],
    }


def monitor(caller: Caller, name: str, span: Window, *, channel: str = Source.API) -> dict:
    """The monitoring of model ``name`` over ``span`` (see the module's docstring).

    Raises ``ModelNotFound`` for a model ``caller`` may not use (as for none at all)."""
    model = access.model_for(caller, name, channel)
    conditions = _in_window(model.name, span)
    series, totals = _volume(conditions, span)
    predicted, confidence = _predicted(conditions, span, model.task, totals["requests"])
    quality, quality_totals = _quality(
        _feedback(model.name, span, model.task), confidence, model.task
    )
    answer = {
        "model": model.name,
        "task": model.task,
        "since": span.since.isoformat().replace("+00:00", "Z"),
        "until": span.until.isoformat().replace("+00:00", "Z"),
        "version": span.version,
        "bucket": span.bucket,
        "bucket_seconds": span.seconds,
        "totals": {**totals, **quality_totals},
        "series": series,
        "predicted": predicted,
        "quality": quality,
    }
    if caller.is_admin:
        answer |= _top_callers(conditions)
    return answer


__all__ = ["Window", "WindowError", "monitor", "window"]
