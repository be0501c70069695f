"""The prediction history: the visitor's records (an admin's: everyone's) and one record."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import (
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import login_required

from modelport.auth.web.identity import current_caller, token_scope
from modelport.errors import input_error_message
from modelport.models.predictions import Outcome, Source
from modelport.models.tokens import Scope
from modelport.serving import access, feedback, records
from modelport.serving.schema import InputError
from modelport.serving.web.blueprint import bp
from modelport.serving.web.forms import FeedbackForm, HistoryFilterForm

PAGE_SIZE = 50


MAX_PAGE_SIZE = 500


MAX_PAGE = 100_000


def _start(day: date | None) -> datetime | None:
    return datetime.combine(day, time.min, tzinfo=UTC) if day else None


def _end(day: date | None) -> datetime | None:
    # The "until" day is included: records before the start of the next day.
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC) if day else None


def _bounded(name: str, default: int, high: int) -> int:
    value = request.args.get(name, default, type=int)
    return max(1, min(value, high))


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


@bp.get("/predictions")
@token_scope(Scope.PREDICT.value)
@login_required
def history() -> tuple[str, int]:
    """The visitor's prediction records (an admin's: everyone's), newest first, paged."""
    form = HistoryFilterForm(formdata=request.args)
    form.model.choices = [("", _("All models"))] + [
        (m.name, m.name) for m in access.visible_models(current_caller(), Source.PAGE)
    ]
    page = _bounded("page", 1, MAX_PAGE)
    page_size = _bounded("page_size", PAGE_SIZE, MAX_PAGE_SIZE)
    status = 200
    items: list[Any] = []
    total = 0
    filters = records.RecordFilter()
    if form.validate():
        filters = records.RecordFilter(
            model=form.model.data or None,
            since=_start(form.since.data),
            until=_end(form.until.data),
        )
        items, total = records.list_records(
            current_caller(), filters, page=page, page_size=page_size
        )
    else:
        status = 400
    query = {
        "model": filters.model,
        "since": form.since.data.isoformat() if form.since.data and status == 200 else None,
        "until": form.until.data.isoformat() if form.until.data and status == 200 else None,
    }
    export = url_for(
        "api_predictions.list_predictions",
        format="csv",
        model=filters.model,
        since=_iso(filters.since),
        until=_iso(filters.until),
    )
    return render_template(
        "serving/history.html",
        form=form,
        items=items,
        total=total,
        page=page,
        page_size=page_size,
        pages=max(1, -(-total // page_size)),
        query={k: v for k, v in query.items() if v},
        export=export,
        show_user=current_caller().is_admin,
    ), status


def _table(rows: Any) -> tuple[list[str], list[list[Any]]] | None:
    """Stored rows (a list of objects) as columns and cells; nested objects become columns."""
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return None
    flat = [_flatten(r) for r in rows]
    columns: list[str] = []
    for row in flat:
        columns += [k for k in row if k not in columns]
    return columns, [[row.get(c) for c in columns] for row in flat]


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


@bp.get("/predictions/<int:record_id>")
@token_scope(Scope.PREDICT.value)
@login_required
def record(record_id: int) -> str:
    """One record with its stored inputs and outputs: the visitor's own (admins: any)."""
    return _record_page(record_id, FeedbackForm())


def _record_page(record_id: int, form: FeedbackForm, status: int = 200) -> tuple[str, int]:
    found = records.get_record(current_caller(), record_id)
    if found is None:
        abort(404, description=_("There is no such prediction record."))
    return render_template(
        "serving/record.html",
        record=found,
        inputs=_table(found.inputs),
        outputs=_table(found.outputs),
        show_user=current_caller().is_admin,
        feedback=feedback.feedback_of(found),
        form=form,
        # A one-row answered prediction takes its feedback here; more rows through the API.
        takes_feedback=found.status == Outcome.OK.value and found.row_count == 1,
    ), status


@bp.post("/predictions/<int:record_id>/feedback")
@token_scope(Scope.PREDICT.value)
@login_required
def record_feedback(record_id: int) -> Any:
    """The true label or value of a one-row prediction, from its page."""
    form = FeedbackForm()
    if not form.validate_on_submit():
        return _record_page(record_id, form, 400)
    try:
        feedback.give_feedback(current_caller(), record_id, [form.value()], one=True)
    except InputError as exc:
        form.actual.errors = [input_error_message(exc)]
        return _record_page(record_id, form, 422)
    flash(_("Thank you: the true answer is stored."), "success")
    return redirect(url_for("serving.record", record_id=record_id))
