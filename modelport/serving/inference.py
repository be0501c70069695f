"""A prediction from validated input to recorded answer: ``compute`` runs the model,
``finish`` records the answer, ``run`` does both (a failure recorded too).

``modelport.serving.prediction`` calls them for every channel, after resolving, checking
access and budget, and validating; CSV uploads use the same pieces (``csvstream``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from flask import current_app

from modelport.config import current_settings
from modelport.models.predictions import Outcome
from modelport.ops import metrics
from modelport.serving import flavors, records
from modelport.serving.predictor import Served
from modelport.serving.schema import Batch, InputError

if TYPE_CHECKING:
    from modelport.serving.variants import ShadowJob


class PredictionFailed(Exception):
    """The model ran but gave an answer that cannot be sent (for example NaN)."""

    def __init__(
        self, message: str, details: list[dict] | None = None, *, code: str = "non_finite_output"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.code = code  # the record's error_code


def model_failure(exc: Exception) -> PredictionFailed | None:
    """The client-facing failure for an exception raised while a model predicted, or None
    when the exception is the server's own fault (and should stay a 500)."""
    if isinstance(exc, PredictionFailed):
        return exc
    if isinstance(exc, flavors.OutputError):
        return PredictionFailed(str(exc))
    if isinstance(exc, ValueError):
        # The batch passed the schema but the fitted model refuses it: say, a category an
        # admin added to the schema that the model's encoder never saw. That is the input's
        # problem (a 422), not a server error.
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        # Logged with its traceback: a ValueError from our own code would look the same.
        current_app.logger.warning("model_refused_input", exc_info=exc)
        return PredictionFailed(
            f"The model could not predict this input: {reason}", code="model_error"
        )
    return None


@dataclass
class Result:
    """A finished prediction: rows in the public format, warnings and timing."""

    served: Served
    predictions: list[dict[str, Any]]
    warnings: list[dict[str, Any]] = field(default_factory=list)
    timing_ms: float = 0.0
    record_id: int | None = None
    raw: Any = None  # the flavors.Prediction, for the inference protocol's tensors
    pending: records.PendingRecord | None = None  # finish(group=...): committed with it
    shadow: ShadowJob | None = None  # run once the answer is out (``prediction.after_answer``)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def format_predictions(served: Served, prediction: Any) -> list[dict[str, Any]]:
    """Per-row ``{"label", "probabilities"}`` (classification) or ``{"value"}`` (regression)."""
    if prediction.values is not None:
        return [{"value": v} for v in np.asarray(prediction.values, dtype=float).tolist()]
    labels = np.asarray(prediction.labels).tolist()
    if prediction.probabilities is None:
        return [{"label": label} for label in labels]
    classes = [str(_plain(c)) for c in (prediction.classes or served.classes or [])]
    probabilities = np.asarray(prediction.probabilities, dtype=float).tolist()
    return [
        {"label": label, "probabilities": dict(zip(classes, row, strict=False))}
        for label, row in zip(labels, probabilities, strict=True)
    ]


def check_finite(prediction: Any) -> None:
    """Refuse outputs with NaN or infinity: JSON cannot carry them and they mean nothing."""
    for name in ("values", "probabilities"):
        array = getattr(prediction, name)
        if array is None:
            continue
        array = np.asarray(array, dtype=float)
        if not np.isfinite(array).all():
            bad = np.flatnonzero(~np.isfinite(array).reshape(len(array), -1).all(axis=1))
            raise PredictionFailed(
                "The model produced a value that is not a finite number.",
                [
                    {
                        "row": int(i),
                        "field": None,
                        "code": "non_finite_output",
                        "message": "The model's output for this row is not a finite number.",
                    }
                    for i in bad[:100]
                ],
            )


def input_rows(batch: Batch, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` rows of a batch as plain objects, for the record."""
    count = min(batch.rows, limit)
    names = list(batch.columns)
    columns = [batch.columns[n][:count].tolist() for n in names]
    return [
        {
            n: (None if isinstance(v, float) and math.isnan(v) else v)
            for n, v in zip(names, row, strict=True)
        }
        for row in zip(*columns, strict=True)
    ]


@dataclass
class Computed:
    """A model's answer to a validated batch, not yet recorded."""

    prediction: Any  # the flavors.Prediction
    rows: list[dict[str, Any]]  # in the public format
    elapsed_ms: float


def compute(served: Served, batch: Batch) -> Computed:
    """Run the model on a validated batch and format its answer; no side effects.

    Raises whatever the model raised (``model_failure`` tells a client's fault from ours) or
    ``PredictionFailed`` for an output that is not finite.
    """
    started = time.perf_counter()
    prediction = served.runtime.predict(batch)
    time_inference(served, time.perf_counter() - started)
    check_finite(prediction)
    rows = format_predictions(served, prediction)
    return Computed(prediction, rows, (time.perf_counter() - started) * 1000)


def finish(
    served: Served,
    batch: Batch,
    computed: Computed,
    *,
    source: str,
    request_id: str,
    caller: tuple[int | None, int | None],
    group: records.RecordGroup | None = None,
) -> Result:
    """Record a computed prediction (committed before it returns) and return the answer.

    ``group``: queue the record in it instead; the caller sends the answer only once the
    group has committed it (``RecordGroup.commit``).
    """
    rows = computed.rows
    record_id = pending = None
    if records.recording_enabled():
        kept = _row_budget(batch.rows)
        fields = {
            "source": source,
            "status": Outcome.OK.value,
            "rows": batch.rows,
            "latency_ms": computed.elapsed_ms,
            "request_id": request_id,
            "inputs": input_rows(batch, kept),
            "outputs": rows[:kept],
            "caller": caller,
        }
        if group is not None:
            pending = group.add(served, **fields)
        else:
            record_id = records.log_prediction(served, **fields)
    return Result(
        served=served,
        predictions=rows,
        warnings=batch.warnings,
        timing_ms=round(computed.elapsed_ms, 3),
        record_id=record_id,
        raw=computed.prediction,
        pending=pending,
    )


def run(
    served: Served,
    batch: Batch,
    *,
    source: str,
    request_id: str,
    caller: tuple[int | None, int | None],
    group: records.RecordGroup | None = None,
) -> Result:
    """Predict a validated batch, record it (a failure too), and return the public answer."""
    started = time.perf_counter()
    try:
        computed = compute(served, batch)
    except Exception as exc:
        failure = model_failure(exc)
        if failure is None:
            raise
        fields = {
            "source": source,
            "status": Outcome.ERROR.value,
            "rows": batch.rows,
            "latency_ms": (time.perf_counter() - started) * 1000,
            "request_id": request_id,
            "inputs": input_rows(batch, 100),
            "error_code": failure.code,
            "caller": caller,
        }
        if group is not None:
            group.add(served, **fields)
        else:
            records.log_prediction(served, **fields)
        raise failure from None
    return finish(
        served, batch, computed, source=source, request_id=request_id, caller=caller, group=group
    )


# The predictions metric's outcomes: a record's (``Outcome``), and a budget spent before the
# model ran, which leaves no record.
THROTTLED = "throttled"


def count_outcome(served: Served, channel: str, outcome: str, rows: int) -> None:
    """Count one prediction request of ``served`` through ``channel`` that ended with
    ``outcome`` (an ``Outcome`` or ``THROTTLED``) after ``rows`` rows."""
    metrics.count_prediction(
        served.name, served.version, served.runtime.name, channel, str(outcome), rows
    )


def time_inference(served: Served, seconds: float) -> None:
    """One batch computed by ``served``'s model in ``seconds``."""
    metrics.time_inference(served.name, served.version, seconds)


def _row_budget(rows: int) -> int:
    # Rows worth turning into objects before the record's byte limit cuts them anyway.
    limit = current_settings().record_max_bytes
    return min(rows, max(limit // 16, 1))


__all__ = [
    "THROTTLED",
    "Computed",
    "InputError",
    "PredictionFailed",
    "Result",
    "compute",
    "count_outcome",
    "finish",
    "model_failure",
    "run",
    "time_inference",
]
