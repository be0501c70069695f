"""The record of every prediction request: who, which model version, what, how long, how it ended."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from modelport.extensions import db
from modelport.models.types import JSONDocument, UTCDateTime, utcnow

# SQLite only autoincrements an INTEGER PRIMARY KEY; elsewhere the table can outgrow 2**31.
BigId = BigInteger().with_variant(Integer(), "sqlite")
LABEL_LENGTH = 100  # a longer class name stays in ``outputs`` only


class Source(enum.StrEnum):
    PAGE = "page"
    API = "api"
    CSV = "csv"
    V2 = "v2"


class Variant(enum.StrEnum):
    """Which of a model's versions answered a request that named none (``serving.variants``)."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"  # the canary share's callers
    SHADOW = "shadow"  # run after the answer was sent, never seen by the caller


class Outcome(enum.StrEnum):
    OK = "ok"
    INVALID = "invalid"  # the input was refused (422/400)
    ERROR = "error"  # the model failed
    INCOMPLETE = "incomplete"  # a streamed response the client did not read to the end


class PredictionRecord(db.Model):
    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_user_created", "user_id", "created_at"),
        Index("ix_predictions_model_created", "model_name", "created_at"),
        Index("ix_predictions_created", "created_at"),
        Index("ix_predictions_version_id", "version_id"),
        Index("ix_predictions_token_id", "token_id"),
        Index("ix_predictions_shadow_of", "shadow_of"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64))
    # Withdrawal sets these to NULL and erases inputs/outputs (docs/accounts.md).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    # Kept by value so that history reads the same after a model changes.
    model_name: Mapped[str] = mapped_column(String(64))
    version_number: Mapped[int | None]
    runtime: Mapped[str | None] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12))
    error_code: Mapped[str | None] = mapped_column(String(40))
    row_count: Mapped[int] = mapped_column(default=0)
    latency_ms: Mapped[float] = mapped_column(default=0.0)
    inputs: Mapped[Any | None] = mapped_column(JSONDocument())
    outputs: Mapped[Any | None] = mapped_column(JSONDocument())
    # The stored inputs/outputs were cut at MODELPORT_RECORD_MAX_BYTES.
    truncated: Mapped[bool] = mapped_column(default=False)
    # A one-row answer's prediction, typed, so that rollups need not parse ``outputs``: the
    # predicted class and its probability, or the predicted value.
    predicted_label: Mapped[str | None] = mapped_column(String(LABEL_LENGTH))
    predicted_value: Mapped[float | None]
    confidence: Mapped[float | None]
    # A ``Variant`` for a request that named no version or alias; None when it named one.
    variant: Mapped[str | None] = mapped_column(String(10))
    # A shadow record: the served request's record it was run for (same inputs, not stored).
    shadow_of: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("predictions.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
