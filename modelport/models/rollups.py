"""Rollups: what the prediction records of one model version add up to, per minute and hour.

The monitoring and drift pages read these instead of the raw records (docs/monitoring.md,
"Where the figures come from"); ``analytics.rollups`` fills them incrementally.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from modelport.extensions import db
from modelport.models.predictions import BigId
from modelport.models.types import JSONDocument, UTCDateTime, utcnow


class PredictionRollup(db.Model):
    """The records of one model version whose time falls in [start, start + seconds).

    ``seconds`` is 60 (minute rows: volume, latency, predictions, quality) or 3600 (hour rows:
    the same, plus feature distributions, a uniform sample of inputs and the top callers).
    Distributions of numbers are sketches: counts per logarithmic bin (``analytics.sketch``).
    """

    __tablename__ = "prediction_rollups"
    __table_args__ = (
        UniqueConstraint("model_name", "version_number", "seconds", "start"),
        Index("ix_prediction_rollups_model_start", "model_name", "seconds", "start"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64))
    version_number: Mapped[int]  # 0: records made before a version was known
    seconds: Mapped[int]
    start: Mapped[datetime] = mapped_column(UTCDateTime())
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    row_count: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    incomplete: Mapped[int] = mapped_column(BigInteger, default=0)
    # Sketch of the answered requests' latency in milliseconds.
    latency: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    # Classifiers: predicted class → rows. Regressions: a sketch of the predicted values.
    labels: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    value_bins: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    value_sum: Mapped[float] = mapped_column(default=0.0)
    value_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    # The probability of the predicted class, summed (the estimate without labels).
    confidence_sum: Mapped[float] = mapped_column(default=0.0)
    confidence_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    # Feedback on the rows of these records: how many, how many right, absolute errors.
    feedback_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    feedback_correct: Mapped[int] = mapped_column(BigInteger, default=0)
    feedback_error: Mapped[float] = mapped_column(default=0.0)
    # Hour rows only.
    features: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    sample: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    callers: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RollupState(db.Model):
    """How far the rollup has read: records up to ``record_id``, feedback up to ``feedback_at``.

    Its one row is also the rollup's lock: a run updates it first, so a second run (another
    worker, the CronJob) waits for the first to commit and then reads where it stopped."""

    __tablename__ = "rollup_state"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    record_id: Mapped[int] = mapped_column(BigInteger, default=0)
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The served versions' drift share from the latest run: model → share (the drift alert).
    drift: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
