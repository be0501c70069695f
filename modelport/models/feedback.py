"""The true label or value of a predicted row, given afterwards (feedback)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from modelport.extensions import db
from modelport.models.predictions import BigId
from modelport.models.types import JSONDocument, UTCDateTime, utcnow


class Feedback(db.Model):
    """One row's truth for one prediction record: one per row, replaced on resend."""

    __tablename__ = "prediction_feedback"
    __table_args__ = (
        UniqueConstraint("record_id", "row_index"),
        Index("ix_prediction_feedback_model_created", "model_name", "created_at"),
        Index("ix_prediction_feedback_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    record_id: Mapped[int] = mapped_column(BigId, ForeignKey("predictions.id", ondelete="CASCADE"))
    row_index: Mapped[int]  # 0-based, as in the record's outputs ("row" is reserved in MySQL)
    # Kept by value, like the record's: monitoring reads feedback without the record.
    model_name: Mapped[str] = mapped_column(String(64))
    version_number: Mapped[int | None]
    actual: Mapped[Any] = mapped_column(JSONDocument())
    # The model's answer for the row, when the record stored it (None past its stored rows).
    predicted: Mapped[Any | None] = mapped_column(JSONDocument())
    # Who gave it; withdrawal unlinks, as it does the records.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
