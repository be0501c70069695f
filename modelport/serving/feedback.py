"""Feedback: the true label or value of predicted rows, given once the truth is known.

Whoever may see a prediction record may give its feedback (``records.get_record``: its
owner, with a session or any token of theirs, and an admin's session or ``full`` token).
Each row takes one answer, checked against the model version's outputs: one of its classes
for a classifier, a finite number for a regression. Sending feedback for a row again
replaces it. The model's own answer for the row is kept beside it (when the record stored
that row), so realized accuracy and error need no other table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from modelport.auth.caller import Caller
from modelport.extensions import db
from modelport.models.feedback import Feedback
from modelport.models.predictions import Outcome, PredictionRecord
from modelport.models.registry import ModelVersion
from modelport.serving import records
from modelport.serving.schema import InputError


class FeedbackError(Exception):
    """Feedback that cannot be given: ``code`` is ``not_found`` or ``not_answered``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Given:
    """The feedback a record holds after a call: row → (actual, predicted)."""

    record: PredictionRecord
    rows: dict[int, tuple[Any, Any]]


def _problem(row: int | None, code: str, message: str) -> dict[str, Any]:
    return {"row": row, "field": "actual", "code": code, "message": message}


def _outputs_schema(record: PredictionRecord) -> tuple[str, list | None]:
    version = db.session.get(ModelVersion, record.version_id) if record.version_id else None
    if version is None:
        raise FeedbackError(
            "not_answered", "The model version of this prediction no longer exists."
        )
    return version.model.task, (version.output_schema or {}).get("classes")


def _checked(value: Any, row: int, task: str, classes: list | None) -> tuple[Any, dict | None]:
    """The value as it is stored (a class as the model names it, or a float), or a problem."""
    if task == "regression":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, _problem(row, "not_a_number", "The true value must be a number.")
        if not math.isfinite(value):
            return None, _problem(row, "not_finite", "The true value must be a finite number.")
        return float(value), None
    if isinstance(value, bool | dict | list) or value is None:
        return None, _problem(row, "unknown_class", "The true label must be one of the classes.")
    by_text = {str(c): c for c in classes or []}
    if isinstance(value, float) and value.is_integer() and str(value) not in by_text:
        value = int(value)  # 1.0 for the class 1 (a number typed on the page)
    if str(value) not in by_text:
        shown = ", ".join(list(by_text)[:20])
        return None, _problem(
            row, "unknown_class", f"The true label must be one of the model's classes: {shown}."
        )
    return by_text[str(value)], None


def _predicted(record: PredictionRecord, row: int) -> Any:
    outputs = record.outputs if isinstance(record.outputs, list) else []
    if row >= len(outputs) or not isinstance(outputs[row], dict):
        return None  # not stored: past the recording limit, purged or erased
    return records.stored_answer(outputs[row])


def give_feedback(viewer: Caller, record_id: int, actuals: list[Any], *, one: bool) -> Given:
    """Store ``actuals`` (one entry per row of the record, None to skip a row) as the record's
    feedback, replacing what its rows had; ``one``: the caller sent a single ``actual``.

    Raises ``FeedbackError`` (no such record for ``viewer``, or a record that was not
    answered) or ``InputError`` (values that do not fit); then nothing changes."""
    record = records.get_record(viewer, record_id)
    if record is None:
        raise FeedbackError("not_found", "No such prediction record.")
    if record.status != Outcome.OK.value:
        raise FeedbackError(
            "not_answered", "Only a prediction that was answered can take feedback."
        )
    if len(actuals) != record.row_count:
        if one:
            message = (
                f'This prediction has {record.row_count} rows: send "actuals" with one '
                "value per row (null skips a row)."
            )
        else:
            message = f"Send one value per row: this prediction has {record.row_count} rows."
        raise InputError([_problem(None, "row_count", message)])
    task, classes = _outputs_schema(record)
    values: dict[int, Any] = {}
    problems = []
    for row, value in enumerate(actuals):
        if value is None:
            continue
        checked, problem = _checked(value, row, task, classes)
        if problem is not None:
            problems.append(problem)
        else:
            values[row] = checked
    if problems:
        raise InputError(problems[:100], truncated=len(problems) > 100)
    if not values:
        raise InputError([_problem(None, "empty", "Every value was null: nothing to store.")])
    db.session.execute(
        delete(Feedback).where(Feedback.record_id == record.id, Feedback.row_index.in_(values))
    )
    for row, value in values.items():
        db.session.add(
            Feedback(
                record_id=record.id,
                row_index=row,
                model_name=record.model_name,
                version_number=record.version_number,
                actual=value,
                predicted=_predicted(record, row),
                user_id=viewer.user_id,
            )
        )
    db.session.commit()
    return Given(record, feedback_of(record))


def feedback_of(record: PredictionRecord) -> dict[int, tuple[Any, Any]]:
    """The feedback a record holds: row → (actual, predicted)."""
    found = db.session.scalars(
        select(Feedback).where(Feedback.record_id == record.id).order_by(Feedback.row_index)
    )
    return {item.row_index: (item.actual, item.predicted) for item in found}
