"""The report page: ``/models/<name>/report`` (a version's evaluation stored at registration,
``?version=N``, and a second version beside it, ``&compare=M``) and each chart's data as
CSV (``/models/<name>/report.csv?chart=...``)."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, request
from flask_babel import gettext as _
from flask_login import login_required

from modelport.analytics import charts, report
from modelport.analytics.web.pages import bp, chart_page, table_csv
from modelport.auth.web.identity import current_caller, token_scope
from modelport.errors import report_status
from modelport.models.predictions import Source
from modelport.models.tokens import Scope
from modelport.models.types import MAX_INT_ID


def _number_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    if not value:
        return None
    # isdigit() alone would pass "²", which int() refuses.
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_INT_ID:
        abort(400, description=_("%(name)s must be a whole number from 1.", name=name))
    return int(value)


def _answer(name: str) -> dict[str, Any]:
    try:
        return report.model_report(
            current_caller(),
            name,
            version=_number_arg("version"),
            compare=_number_arg("compare"),
            channel=Source.PAGE,
        )
    except report.ReportError as exc:
        message = {
            "version_not_found": _("This model has no such version."),
            "same_version": _("Choose another version to compare with."),
        }
        abort(report_status(exc), description=message.get(exc.code, exc.message))


def _names() -> dict[str, str]:
    return {
        "accuracy": _("Accuracy"),
        "precision_macro": _("Precision (macro average)"),
        "recall_macro": _("Recall (macro average)"),
        "f1_macro": _("F1 (macro average)"),
        "roc_auc": _("ROC AUC"),
        "mae": _("Mean absolute error"),
        "rmse": _("Root mean squared error"),
        "r2": _("R²"),
        "mean_residual": _("Mean residual"),
        "fpr": _("False positive rate"),
        "tpr": _("True positive rate"),
        "recall": _("Recall"),
        "precision": _("Precision"),
        "mean_predicted": _("Mean predicted probability"),
        "observed": _("Observed frequency"),
        "actual": _("Actual"),
        "predicted": _("Predicted"),
        "residual": _("Residual (actual − predicted)"),
        "rows": _("Rows"),
        "importance": _("Drop in score when the feature is shuffled"),
    }


def _headers() -> dict[str, str]:
    """Readable column names of the tables (the CSV keeps the plain ones)."""
    return _names() | {
        "version": _("Version"),
        "class": _("Class"),
        "f1": _("F1"),
        "support": _("Rows"),
        "kind": _("Kind"),
        "feature": _("Feature"),
        "mean": _("Mean"),
        "std": _("Std"),
        "from": _("From"),
        "to": _("To"),
    }


@bp.get("/models/<name>/report")
@token_scope(Scope.PREDICT.value)
@login_required
def model_report(name: str) -> Response:
    """A version's metrics, curves and feature importance; two versions side by side."""
    answer = _answer(name)
    names = _names()
    figures: dict[str, Any] = {}
    for entry in answer["reports"]:
        if entry["report"] and entry["report"].get("confusion"):
            figures[f"chart-confusion-{entry['version']}"] = charts.confusion(
                entry["report"],
                _("Confusion matrix, version %(number)d", number=entry["version"]),
                names,
            )
    built = {
        "chart-roc": charts.roc(answer, _("ROC curves (one class against the rest)"), names),
        "chart-pr": charts.precision_recall(answer, _("Precision and recall"), names),
        "chart-calibration": charts.calibration(answer, _("Calibration"), names),
        "chart-predicted": charts.predicted_vs_actual(answer, _("Predicted and actual"), names),
        "chart-residuals": charts.residuals(answer, _("Residuals"), names),
        "chart-importance": charts.importance(answer, _("Permutation feature importance"), names),
    }
    figures |= {key: figure for key, figure in built.items() if figure is not None}
    tables = {
        chart: charts.report_table(answer, chart) for chart in charts.REPORT_CHARTS[answer["task"]]
    }
    reports = [entry["report"] for entry in answer["reports"]]
    return chart_page(
        "analytics/report.html",
        figures,
        answer=answer,
        names=names,
        headers=_headers(),
        tables=tables,
        metrics=[key for key in names if any(r and key in r["metrics"] for r in reports)],
        query={
            "version": answer["reports"][0]["version"],
            "compare": answer["reports"][1]["version"] if len(answer["reports"]) > 1 else None,
        },
    )


@bp.get("/models/<name>/report.csv")
@token_scope(Scope.PREDICT.value)
@login_required
def report_csv(name: str) -> Response:
    """The data behind one chart or table of the report page (``chart``), as CSV."""
    chart = request.args.get("chart", "")
    answer = _answer(name)
    versions = "-".join(f"v{entry['version']}" for entry in answer["reports"])
    return table_csv(charts.report_table(answer, chart), f"{name}-report-{versions}-{chart}.csv")
