"""A model's monitoring: what its prediction records and feedback say over a time window.

``monitor`` answers for one model, and only to a caller who may use it
(``serving.access.model_for``): volume, rows per request, errors and latency percentiles
per time bucket and version; the distribution of what it predicted (classes, or the
quantiles of a regression's values); realized accuracy (or mean absolute error) where
feedback exists, and, for classifiers, an estimate of accuracy without labels: the mean of
the probability of the predicted class (confidence-based, the estimate NannyML calls CBPE),
which falls when the model grows unsure, before labels arrive. Admins also see the callers
who predicted most.

Every figure comes from the window's rollups (``analytics.rollups``: minute rows for
minute buckets, hour rows otherwise) plus the records not rolled up yet; the window's edges
are rounded out to whole minutes or hours accordingly. Latency and regression quantiles
come from sketches, within 1 % of the exact value (``analytics.sketch``). A refusal before a model ran (invalid inputs, a spent budget) leaves no record: those are
counted in the metrics (``modelport_predictions_total``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import aliased

from modelport.analytics import rollups, sketch
from modelport.analytics.partials import HOUR, MINUTE, Key, Partial
from modelport.auth.caller import Caller
from modelport.extensions import db
from modelport.models import ApiToken, PredictionRecord, User
from modelport.models.predictions import Outcome, Source, Variant
from modelport.models.registry import RegisteredModel
from modelport.serving import access, records, registry

# Bucket widths, chosen from the window's length so that a chart has tens to hundreds of
# points: up to 6 hours by the minute, up to 14 days by the hour, else by the day.
BUCKETS = (
    ("minute", 60, timedelta(hours=6)),
    ("hour", 3600, timedelta(days=14)),
    ("day", 86400, None),
)
LONGEST = timedelta(days=400)
DEFAULT_WINDOW = timedelta(hours=24)
TOP = 10
QUANTILES = (0.1, 0.5, 0.9)


class WindowError(ValueError):
    """A time window that cannot be shown (reversed, too long, in the future)."""


@dataclass(frozen=True)
class Window:
    """The records' time range [since, until), its bucket, and an optional version.

    ``since`` and ``until`` are whole minutes (minute buckets) or hours (the others)."""

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
            grain = MINUTE if seconds == MINUTE else HOUR
            return Window(
                rounded(since, grain), rounded(until, grain, up=True), name, seconds, version
            )
    raise AssertionError("unreachable")


# A moment relative to now: ``7d`` (days) or ``24h`` (hours) ago.
_RELATIVE = re.compile(r"^(\d{1,5})([dh])$")


def parse_moment(text: str, *, now: datetime | None = None) -> datetime:
    """A moment written by a person: ``7d`` or ``24h`` (that long before ``now``), an ISO
    date (its midnight, UTC) or an ISO date and time (UTC unless it names a zone).
    WindowError says what is accepted."""
    text = text.strip()
    if found := _RELATIVE.match(text.lower()):
        amount, unit = int(found[1]), found[2]
        return (now or datetime.now(UTC)) - timedelta(
            **{"days" if unit == "d" else "hours": amount}
        )
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise WindowError(
            f"{text!r} is not a time: give a date (2026-11-27), a date and time "
            "(2026-11-27T08:00:00Z) or a time ago (7d, 24h)."
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def rounded(moment: datetime, seconds: int, *, up: bool = False) -> datetime:
    """``moment`` (UTC) rounded down, or up, to a whole number of ``seconds`` since 1970."""
    epoch = moment.timestamp()
    whole = int(epoch // seconds * seconds)
    if up and whole < epoch:
        whole += seconds
    return datetime.fromtimestamp(whole, UTC)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _grain(span: Window) -> int:
    return MINUTE if span.seconds == MINUTE else HOUR


def _percentiles(latency: dict[str, int]) -> dict[str, float | None]:
    p50, p95, p99 = sketch.quantiles(latency, (0.5, 0.95, 0.99))
    return {
        name: None if value is None else round(value, 3)
        for name, value in (("p50", p50), ("p95", p95), ("p99", p99))
    }


def _buckets(
    partials: dict[Key, Partial], span: Window, *, by_version: bool
) -> dict[tuple[int, int | None], Partial]:
    """The partials added up per bucket of ``span`` (and version, when ``by_version``)."""
    merged: dict[tuple[int, int | None], Partial] = {}
    for (_, version, _, start), partial in sorted(partials.items()):
        key = (start // span.seconds * span.seconds, (version or None) if by_version else None)
        if key in merged:
            merged[key].merge(partial)
        else:
            merged[key] = Partial().merge(partial)
    return merged


def _volume(
    by_version: dict[tuple[int, int | None], Partial],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    series = []
    every = Partial()
    for (start, version), part in sorted(by_version.items(), key=lambda i: (i[0][0], i[0][1] or 0)):
        if not part.requests:
            continue
        every.merge(part)
        series.append(
            {
                "start": _iso(start),
                "version": version,
                "requests": part.requests,
                "rows": part.rows,
                "errors": part.errors,
                "incomplete": part.incomplete,
                "error_rate": round(part.errors / part.requests, 4),
                "rows_per_request": round(part.rows / part.requests, 3),
                "latency_ms": _percentiles(part.latency),
            }
        )
    requests = every.requests
    totals = {
        "requests": requests,
        "rows": every.rows,
        "errors": every.errors,
        "incomplete": every.incomplete,
        "error_rate": round(every.errors / requests, 4) if requests else None,
        "rows_per_request": round(every.rows / requests, 3) if requests else None,
        "latency_ms": _percentiles(every.latency),
    }
    return series, totals


def _predicted(buckets: dict[tuple[int, int | None], Partial], task: str) -> list[dict[str, Any]]:
    """The predicted distribution per bucket: class counts, or a regression's quantiles."""
    series = []
    for (start, _), part in sorted(buckets.items()):
        if task == "regression":
            if not part.value_rows:
                continue
            points = sketch.quantiles(part.values, QUANTILES)
            series.append(
                {
                    "start": _iso(start),
                    "rows": part.value_rows,
                    "mean": round(part.value_sum / part.value_rows, 6),
                    **{
                        f"p{round(q * 100)}": None if v is None else round(v, 6)
                        for q, v in zip(QUANTILES, points, strict=True)
                    },
                }
            )
        elif part.labels:
            series.append({"start": _iso(start), "counts": dict(sorted(part.labels.items()))})
    return series


def _realized(part: Partial, task: str) -> float | None:
    if not part.feedback_rows:
        return None
    if task == "regression":
        return round(part.feedback_error / part.feedback_rows, 6)
    return round(part.feedback_correct / part.feedback_rows, 4)


def _estimated(part: Partial) -> float | None:
    if not part.confidence_rows:
        return None
    return round(part.confidence_sum / part.confidence_rows, 4)


def _quality(
    buckets: dict[tuple[int, int | None], Partial], task: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    realized = "realized_mae" if task == "regression" else "realized_accuracy"
    series = []
    every = Partial()
    for (start, _), part in sorted(buckets.items()):
        every.merge(part)
        if not part.feedback_rows and not part.confidence_rows:
            continue
        point: dict[str, Any] = {
            "start": _iso(start),
            realized: _realized(part, task),
            "feedback_rows": part.feedback_rows,
        }
        if task != "regression":
            point["estimated_accuracy"] = _estimated(part)
        series.append(point)
    totals: dict[str, Any] = {
        realized: _realized(every, task),
        "feedback_rows": every.feedback_rows,
    }
    if task != "regression":
        totals["estimated_accuracy"] = _estimated(every)
    return series, totals


def _top_callers(buckets: dict[tuple[int, int | None], Partial]) -> dict[str, list[dict[str, Any]]]:
    users: Counter = Counter()
    tokens: Counter = Counter()
    for part in buckets.values():
        users.update({int(k): n for k, n in part.callers.get("users", {}).items()})
        tokens.update({int(k): n for k, n in part.callers.get("tokens", {}).items()})
    # Ranked by count, then id; people and tokens deleted since are not shown.
    top_users = sorted(users.items(), key=lambda item: (-item[1], item[0]))
    top_tokens = sorted(tokens.items(), key=lambda item: (-item[1], item[0]))
    emails = dict(
        db.session.execute(
            select(User.id, User.email).where(User.id.in_([i for i, _ in top_users[: TOP * 2]]))
        ).all()
    )
    named = {
        row.id: row
        for row in db.session.execute(
            select(ApiToken.id, ApiToken.name, ApiToken.prefix, ApiToken.user_id).where(
                ApiToken.id.in_([i for i, _ in top_tokens[: TOP * 2]])
            )
        )
    }
    return {
        "top_users": [
            {"id": i, "email": emails[i], "requests": n} for i, n in top_users if i in emails
        ][:TOP],
        "top_tokens": [
            {
                "id": i,
                "name": named[i].name,
                "prefix": named[i].prefix,
                "user_id": named[i].user_id,
                "requests": n,
            }
            for i, n in top_tokens
            if i in named
        ][:TOP],
    }


# Shadow runs compared on the page: the window's newest; disagreements listed at most.
SHADOW_RUNS = 1000
DISAGREEMENTS = 10
# A regression's shadow agrees when its value is within this share of the served one.
VALUE_TOLERANCE = 0.01


def _variants(
    model: RegisteredModel, partials: dict[Key, Partial], task: str
) -> list[dict[str, Any]]:
    """The champion's and the challenger's figures over the window: those of the versions
    their aliases point at now (requests naming that version directly count too)."""
    champion = registry.served_version(model)
    chosen = (
        (Variant.CHAMPION.value, champion.number if champion else None),
        (Variant.CHALLENGER.value, model.alias_map().get(registry.CHALLENGER)),
    )
    realized = "realized_mae" if task == "regression" else "realized_accuracy"
    rows = []
    for variant, number in chosen:
        if number is None:
            continue
        part = Partial()
        for (_, version, _, _), found in partials.items():
            if version == number:
                part.merge(found)
        row: dict[str, Any] = {
            "variant": variant,
            "version": number,
            "requests": part.requests,
            "errors": part.errors,
            "error_rate": round(part.errors / part.requests, 4) if part.requests else None,
            "latency_ms_p95": _percentiles(part.latency)["p95"],
            realized: _realized(part, task),
        }
        if task != "regression":
            row["estimated_accuracy"] = _estimated(part)
        rows.append(row)
    return rows


def _answers(outputs: Any) -> list[Any]:
    """The labels or values of a record's stored outputs (rows in the public format)."""
    if not isinstance(outputs, list):
        return []
    return [records.stored_answer(row) for row in outputs if isinstance(row, dict)]


def _agree(served: list[Any], shadow: list[Any]) -> bool:
    for one, other in zip(served, shadow, strict=False):
        if isinstance(one, int | float) and isinstance(other, int | float):
            if abs(one - other) > VALUE_TOLERANCE * max(abs(one), abs(other)):
                return False
        elif one != other:
            return False
    return True


def _latency(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    p50, p95 = np.percentile(np.asarray(values, dtype=float), [50, 95]).tolist()
    return {"p50": round(p50, 3), "p95": round(p95, 3)}


def _shadow(model: RegisteredModel, span: Window, *, admin: bool) -> dict[str, Any] | None:
    """The shadow's runs in the window against the answers they shadowed: agreement,
    latency of both, failures, and (``admin``) the newest disagreements."""
    version = model.alias_map().get(registry.SHADOW)
    shadow, served = aliased(PredictionRecord), aliased(PredictionRecord)
    runs = db.session.execute(
        select(
            shadow.id,
            shadow.shadow_of,
            shadow.status,
            shadow.latency_ms,
            shadow.outputs,
            shadow.version_number,
            shadow.created_at,
            served.latency_ms,
            served.outputs,
            served.version_number,
        )
        .join(served, served.id == shadow.shadow_of)
        .where(
            # Through the index on shadow_of: the model's other records are not read.
            shadow.shadow_of.is_not(None),
            shadow.model_name == model.name,
            shadow.variant == Variant.SHADOW.value,
            shadow.created_at >= span.since,
            shadow.created_at < span.until,
        )
        .order_by(shadow.id.desc())
        .limit(SHADOW_RUNS)
    ).all()
    if version is None and not runs:
        return None
    failed = compared = agreed = 0
    disagreements: list[dict[str, Any]] = []
    for run in runs:
        if run[2] != Outcome.OK.value:
            failed += 1
            continue
        mine, theirs = _answers(run[4]), _answers(run[8])
        if not mine or not theirs:
            continue  # erased since (retention), or nothing kept
        compared += 1
        if _agree(theirs, mine):
            agreed += 1
        elif len(disagreements) < DISAGREEMENTS:
            disagreements.append(
                {
                    "record_id": run[1],
                    "shadow_record_id": run[0],
                    "created_at": run[6].isoformat().replace("+00:00", "Z"),
                    "served_version": run[9],
                    "shadow_version": run[5],
                    "served": theirs[:3],
                    "shadow": mine[:3],
                }
            )
    answer: dict[str, Any] = {
        "version": version,
        "share": model.shadow_share,
        "runs": len(runs),
        "failed": failed,
        "compared": compared,
        "agreement_rate": round(agreed / compared, 4) if compared else None,
        "latency_ms": {
            "served": _latency([run[7] for run in runs]),
            "shadow": _latency([run[3] for run in runs if run[2] == Outcome.OK.value]),
        },
    }
    if admin:
        answer["disagreements"] = disagreements
    return answer


def monitor(caller: Caller, name: str, span: Window, *, channel: str = Source.API) -> dict:
    """The monitoring of model ``name`` over ``span`` (see the module's docstring).

    Raises ``ModelNotFound`` for a model ``caller`` may not use (as for none at all)."""
    model = access.model_for(caller, name, channel)
    partials = rollups.window_partials(
        model.name, span.since, span.until, _grain(span), version=span.version
    )
    series, totals = _volume(_buckets(partials, span, by_version=True))
    buckets = _buckets(partials, span, by_version=False)
    predicted = _predicted(buckets, model.task)
    quality, quality_totals = _quality(buckets, model.task)
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
        "canary_share": model.canary_share,
        "variants": _variants(model, partials, model.task),
    }
    shadow = _shadow(model, span, admin=caller.is_admin)
    if shadow is not None:
        answer["shadow"] = shadow
    if caller.is_admin:
        answer |= _top_callers(buckets)
    return answer


__all__ = ["Window", "WindowError", "monitor", "window"]
