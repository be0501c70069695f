"""A dataset from feedback: the rows a model predicted that got their true answer, as the
next version of a dataset, ready for ``modelport train`` (the retraining loop, docs/mlops.md).

One dataset row per predicted row with feedback: the row's inputs as its prediction record
stored them, in the feature order of the model version's input schema (the one named, else
the one the model serves), then the target column with the feedback's answer (a class as
the model names it, or a number). Rows of batch requests and CSV uploads count one by one.

What is kept and what is not:

* A row holds one answer: sending feedback for a row again replaces it
  (``serving.feedback``), so the newest answer is the one used. Nothing else is merged: the
  same inputs predicted twice, each with feedback, are two rows.
* The window (``since``, ``until``) is the prediction's time, not the feedback's.
* Shadow runs are left out (they answered no one, and the served record has the inputs).
* A row whose inputs were not stored (past ``MODELPORT_RECORD_MAX_BYTES``, past a CSV
  upload's first 200 rows, purged after the retention period, or erased with its user's
  account) cannot be a dataset row: it is counted in ``left_out`` and the CLI says so.
* A feature the schema has and a record's row lacks (a record of a version with other
  features) is empty in that row; features the schema does not have are not kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from modelport.analytics import datasets
from modelport.extensions import db
from modelport.lazy import lazy
from modelport.models.datasets import DatasetVersion
from modelport.models.feedback import Feedback
from modelport.models.predictions import PredictionRecord
from modelport.models.registry import ModelReport, ModelVersion, RegisteredModel
from modelport.serving import registry
from modelport.serving.predictor import ModelNotFound
from modelport.serving.schema import InputSchema

pd = lazy("pandas")

DEFAULT_TARGET = "target"
# Records whose inputs are read in one query.
CHUNK = 500


@dataclass(frozen=True)
class FeedbackDataset:
    """What ``from_records`` stored: the dataset version and where its rows came from."""

    version: DatasetVersion
    model: str
    target: str
    rows: int
    records: int
    versions: list[int]
    left_out: int
    since: datetime | None
    until: datetime | None


def default_name(model: str) -> str:
    """The dataset a model's feedback goes to unless another is named."""
    return f"{model}-feedback"


def from_records(
    model_name: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    version: int | None = None,
    name: str | None = None,
    target: str | None = None,
) -> FeedbackDataset:
    """Store the rows of ``model_name``'s prediction records that have feedback (those
    predicted in [since, until), of ``version`` only when given) as the next version of
    dataset ``name`` (default ``<model>-feedback``; created with its first version).

    Raises ``ModelNotFound`` (no such model or version) and ``DatasetError``
    (``no_feedback``: no row to store, ``target_is_a_feature``, or the dataset's own
    refusals); then nothing is written."""
    model = registry.get_model(model_name)
    if model is None:
        raise ModelNotFound(f"There is no model named {model_name}.")
    chosen = _schema_version(model, version)
    names = InputSchema.from_dict(chosen.input_schema).names
    column = target or _trained_target(model, chosen) or DEFAULT_TARGET
    if column in names:
        raise datasets.DatasetRefused(
            "target_is_a_feature",
            f"{column} is one of {model.name}'s features: name the target column with --target.",
        )
    answers = _answers(model.name, since, until, version)
    inputs = _inputs(sorted({record_id for record_id, _, _, _ in answers}))
    rows: list[dict[str, Any]] = []
    targets: list[Any] = []
    used_records: set[int] = set()
    used_versions: set[int] = set()
    for record_id, row_index, actual, number in answers:
        stored = inputs.get(record_id)
        if not isinstance(stored, list) or row_index >= len(stored):
            continue
        row = stored[row_index]
        if not isinstance(row, dict):
            continue
        rows.append(row)
        targets.append(actual)
        used_records.add(record_id)
        if number is not None:
            used_versions.add(number)
    left_out = len(answers) - len(rows)
    if not rows:
        raise datasets.DatasetRefused("no_feedback", _nothing(model.name, answers, since, until))
    frame = pd.DataFrame.from_records(rows, columns=names)
    frame[column] = targets
    stored_version = datasets.register_frame(name or default_name(model.name), frame)
    return FeedbackDataset(
        version=stored_version,
        model=model.name,
        target=column,
        rows=len(frame),
        records=len(used_records),
        versions=sorted(used_versions),
        left_out=left_out,
        since=since,
        until=until,
    )


def _schema_version(model: RegisteredModel, number: int | None) -> ModelVersion:
    """The version whose input schema orders the columns: the one named, else the one the
    model serves, else its newest."""
    if number is not None:
        found = registry.get_version(model, number)
        if found is None:
            raise ModelNotFound(f"{model.name} has no version {number}.")
        return found
    chosen = registry.served_version(model) or (model.versions[-1] if model.versions else None)
    if chosen is None:
        raise ModelNotFound(f"{model.name} has no version yet.")
    return chosen


def _trained_target(model: RegisteredModel, first: ModelVersion) -> str | None:
    """The target's name as a version knows it (``modelport train``'s parameters, else its
    report's evaluation rows): ``first``'s, else the newest version's that knows one."""
    ordered = [first, *(v for v in reversed(model.versions) if v.id != first.id)]
    reports = {
        row.version_id: row.report
        for row in db.session.scalars(
            select(ModelReport).where(ModelReport.version_id.in_([v.id for v in ordered]))
        )
    }
    for candidate in ordered:
        found = (candidate.params or {}).get("target") or (reports.get(candidate.id) or {}).get(
            "target"
        )
        if isinstance(found, str) and found:
            return found
    return None


def _answers(
    model: str, since: datetime | None, until: datetime | None, version: int | None
) -> list[tuple[int, int, Any, int | None]]:
    """(record id, row, actual, version number) of every row with feedback, in the order
    the rows were predicted."""
    query = (
        select(
            Feedback.record_id,
            Feedback.row_index,
            Feedback.actual,
            PredictionRecord.version_number,
        )
        .join(PredictionRecord, PredictionRecord.id == Feedback.record_id)
        .where(PredictionRecord.model_name == model, PredictionRecord.shadow_of.is_(None))
    )
    if since is not None:
        query = query.where(PredictionRecord.created_at >= since)
    if until is not None:
        query = query.where(PredictionRecord.created_at < until)
    if version is not None:
        query = query.where(PredictionRecord.version_number == version)
    query = query.order_by(PredictionRecord.created_at, PredictionRecord.id, Feedback.row_index)
    return [tuple(row) for row in db.session.execute(query)]  # type: ignore[misc]


def _inputs(record_ids: Sequence[int]) -> dict[int, Any]:
    """The stored inputs of these records (each read once, however many rows got feedback)."""
    found: dict[int, Any] = {}
    for part in _chunks(record_ids, CHUNK):
        query = select(PredictionRecord.id, PredictionRecord.inputs).where(
            PredictionRecord.id.in_(part)
        )
        found.update({record_id: inputs for record_id, inputs in db.session.execute(query)})
    return found


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _nothing(
    model: str, answers: Sequence[Any], since: datetime | None, until: datetime | None
) -> str:
    window = ""
    if since is not None:
        window += f" since {since.isoformat()}"
    if until is not None:
        window += f" until {until.isoformat()}"
    if answers:
        return (
            f"{len(answers)} rows of {model} predicted{window} have feedback, but none has its "
            "inputs stored (purged, erased, or past the recording limit): nothing to store."
        )
    return (
        f"No prediction of {model}{window} has feedback: nothing to store. Give the true "
        "answers with POST /api/v1/predictions/<id>/feedback first."
    )
