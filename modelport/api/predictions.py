"""``/api/v1/predictions``: the caller's prediction history (admins: everyone's)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from modelport.api.blueprint import Blueprint, csv_200
from modelport.api.model_schemas import (
    FeedbackResultSchema,
    FeedbackSchema,
    RecordDetailSchema,
    RecordPageSchema,
    RecordQuerySchema,
)
from modelport.auth.web.identity import current_caller, scope_required
from modelport.errors import ApiError
from modelport.models.tokens import Scope
from modelport.responses import csv_download
from modelport.serving import csvcells, feedback, records

blp = Blueprint("api_predictions", __name__, url_prefix="/api/v1", description="Prediction history")
SECURITY = [{"bearer": []}, {"session": []}]


CSV_COLUMNS = (
    "id",
    "created_at",
    "model_name",
    "version_number",
    "runtime",
    "source",
    "status",
    "error_code",
    "row_count",
    "latency_ms",
    "request_id",
)


def _filters(query: dict[str, Any]) -> records.RecordFilter:
    return records.RecordFilter(
        model=query.get("model"),
        since=query.get("since"),
        until=query.get("until"),
        status=query.get("status"),
    )


def export_csv(rows: Iterator[Any]) -> Iterator[str]:
    """Records as CSV lines (no inputs or outputs: those are per record)."""
    buffer = io.StringIO()
    writer = csvcells.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for record in rows:
        writer.writerow(
            [
                record.created_at.isoformat() if name == "created_at" else getattr(record, name)
                for name in CSV_COLUMNS
            ]
        )
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@blp.get("/predictions")
@scope_required(Scope.PREDICT.value)
@blp.arguments(RecordQuerySchema, location="query")
@blp.response(200, RecordPageSchema, description="JSON page, or CSV with format=csv")
@blp.errors(422)
@blp.doc(security=SECURITY, responses=csv_200(RecordPageSchema))
def list_predictions(query: dict[str, Any]) -> Any:
    """Prediction records, newest first; filter by model, time and status; CSV export."""
    filters = _filters(query)
    if query["format"] == "csv":
        rows = records.iter_records(current_caller(), filters)
        return csv_download(export_csv(rows), "predictions.csv")
    items, total = records.list_records(
        current_caller(), filters, page=query["page"], page_size=query["page_size"]
    )
    return {
        "items": items,
        "page": query["page"],
        "page_size": query["page_size"],
        "total": total,
    }


@blp.get("/predictions/<int:record_id>")
@scope_required(Scope.PREDICT.value)
@blp.response(200, RecordDetailSchema)
@blp.errors(404)
@blp.doc(security=SECURITY)
def get_prediction(record_id: int) -> Any:
    """One record with its stored inputs and outputs (yours, or any for admins)."""
    record = records.get_record(current_caller(), record_id)
    if record is None:
        raise ApiError(404, "not_found", "No such prediction record.")
    return record


@blp.post("/predictions/<int:record_id>/feedback")
@scope_required(Scope.PREDICT.value)
@blp.arguments(FeedbackSchema)
@blp.response(200, FeedbackResultSchema)
@blp.errors(404, 409, 422)
@blp.doc(security=SECURITY)
def give_feedback(body: dict[str, Any], record_id: int) -> Any:
    """The true label or value of a prediction's rows (yours, or any for admins): ``actual``
    for a one-row prediction, ``actuals`` with one entry per row (null skips a row). A row's
    feedback sent again replaces it."""
    one = "actual" in body
    actuals = [body["actual"]] if one else body["actuals"]
    given = feedback.give_feedback(current_caller(), record_id, actuals, one=one)
    return {
        "record_id": given.record.id,
        "rows": [
            {"row": row, "actual": actual, "predicted": predicted}
            for row, (actual, predicted) in given.rows.items()
        ],
    }
