"""The monitoring pages: ``/monitoring`` (every model the visitor may use, the last 24 hours),
``/models/<name>/monitoring`` (one model over a chosen window, with charts) and
``/models/<name>/drift`` (its recent inputs against its training sample)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, abort, current_app, render_template, request
from flask_babel import gettext as _
from flask_login import login_required

from modelport.analytics import charts, drift, monitoring
from modelport.analytics.web.pages import bp, chart_page, table_csv
from modelport.auth.web.identity import current_caller, token_scope
from modelport.models.predictions import Source
from modelport.models.tokens import Scope
from modelport.serving import access

# The windows the page offers, by the name in its query string.
RANGES = {"6h": timedelta(hours=6), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
RANGES |= {"30d": timedelta(days=30), "90d": timedelta(days=90)}


def _range() -> tuple[str, monitoring.Window]:
    """The time range the page is asked for (``range``, one of ``RANGES``), up to now."""
    chosen = request.args.get("range", "24h")
    if chosen not in RANGES:
        abort(400, description=_("Choose one of the offered time ranges."))
    now = datetime.now(UTC)
    return chosen, monitoring.window(now - RANGES[chosen], now)


def _names() -> dict[str, str]:
    return {
        "requests": _("Requests"),
        "answered": _("Answered"),
        "errors": _("Failed"),
        "realized_accuracy": _("Realized accuracy"),
        "realized_mae": _("Realized MAE"),
        "estimated_accuracy": _("Estimated accuracy (no labels)"),
    }


@bp.get("/monitoring")
@token_scope(Scope.PREDICT.value)
@login_required
def overview() -> str:
    """Every model the visitor may use, with its last 24 hours."""
    caller = current_caller()
    span = monitoring.window(None, None)
    rows = [
        (model, monitoring.monitor(caller, model.name, span, channel=Source.PAGE)["totals"])
        for model in access.visible_models(caller, Source.PAGE)
    ]
    return render_template("analytics/monitoring_overview.html", rows=rows, span=span)


@bp.get("/models/<name>/monitoring")
@token_scope(Scope.PREDICT.value)
@login_required
def model_monitoring(name: str) -> Response:
    """One model's volume, latency, predictions and accuracy over a window, with charts."""
    chosen, span = _range()
    report = monitoring.monitor(current_caller(), name, span, channel=Source.PAGE)
    names = _names()
    built = {
        "chart-volume": charts.volume(report, _("Requests"), names),
        "chart-latency": charts.latency(report, _("Latency of answered requests")),
        "chart-predicted": charts.predicted(report, _("What the model predicted")),
        "chart-quality": charts.quality(report, _("Accuracy"), names),
    }
    figures: dict[str, Any] = {key: figure for key, figure in built.items() if figure is not None}
    return chart_page(
        "analytics/monitoring.html",
        figures,
        report=report,
        names=names,
        ranges=list(RANGES),
        chosen=chosen,
    )


@bp.get("/models/<name>/drift")
@token_scope(Scope.PREDICT.value)
@login_required
def model_drift(name: str) -> Response:
    """Each feature of the served version: the window's inputs against its training sample."""
    chosen, span = _range()
    report: dict[str, Any] | None = None
    problem = None
    try:
        report = drift.drift(current_caller(), name, span, channel=Source.PAGE, over_time=True)
    except drift.DriftError as exc:
        problem = exc.message
    figures: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    if report:
        for key, chart, figure in (
            ("chart-drift", "drift", charts.drift(report, _("Each feature against its threshold"))),
            (
                "chart-drift-time",
                "over_time",
                charts.drift_over_time(
                    report,
                    _("Share of features drifted over time"),
                    current_app.settings.drift_share,
                ),
            ),
        ):
            if figure:
                figures[key] = figure
                tables[chart] = charts.table(report, chart)
    return chart_page(
        "analytics/drift.html",
        figures,
        name=name,
        report=report,
        tables=tables,
        problem=problem,
        ranges=list(RANGES),
        chosen=chosen,
    )


# The charts whose data each page offers as CSV.
CSV_CHARTS = {
    "monitoring": ("volume", "latency", "predicted", "quality"),
    "drift": ("drift", "over_time"),
}


@bp.get("/models/<name>/<page>.csv")
@token_scope(Scope.PREDICT.value)
@login_required
def chart_csv(name: str, page: str) -> Response:
    """The data behind one chart of the monitoring or drift page (``chart``), as CSV."""
    chart = request.args.get("chart", "")
    if chart not in CSV_CHARTS.get(page, ()):
        abort(404, description=_("There is no such chart."))
    chosen, span = _range()
    caller = current_caller()
    try:
        if page == "drift":
            report = drift.drift(caller, name, span, channel=Source.PAGE, over_time=True)
        else:
            report = monitoring.monitor(caller, name, span, channel=Source.PAGE)
    except drift.DriftError as exc:
        abort(422, description=exc.message)
    return table_csv(charts.table(report, chart), f"{name}-{page}-{chart}-{chosen}.csv")
