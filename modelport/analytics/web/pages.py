"""The dataset pages: the list with the administrators' upload form, and the explorer."""

from __future__ import annotations

import io
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from modelport.analytics import charts, datasets
from modelport.analytics.web.forms import DatasetUploadForm
from modelport.analytics.web.plotly_assets import GLOBAL_STYLE_ID, PLOTLY_JS, injected_styles
from modelport.auth.web.admin import admin_required
from modelport.auth.web.identity import current_caller
from modelport.config import current_settings
from modelport.errors import dataset_status
from modelport.extensions import db
from modelport.ops.headers import CONTENT_SECURITY_POLICY
from modelport.ops.inputs import body_limit
from modelport.responses import csv_download
from modelport.serving import csvcells
from modelport.serving.web.blueprint import MULTIPART_OVERHEAD

bp = Blueprint("analytics", __name__)

PER_PAGE = 50
ROWS_PER_PAGE = 25
# Charts per page: a wide dataset (digits has 64 columns) lists the rest in the table only.
MAX_CHARTS = 24
# plotly.js sets style attributes (its colour bars, its heatmap's image): allowed on the
# chart pages only, and only attributes; <style> elements and scripts stay refused.
CHART_PAGE_POLICY = f"{CONTENT_SECURITY_POLICY}; style-src-attr 'unsafe-inline'"
# Dataset error codes and the form field each one is about.
FIELDS = {"invalid_name": "name", "dataset_conflict": "name"}


def upload_limit() -> int | None:
    """The upload form's body: a dataset file, for administrators."""
    if not current_caller().is_admin:
        return None
    return current_settings().dataset_max_bytes + MULTIPART_OVERHEAD


def _page_arg(name: str, default: int = 1) -> int:
    value = request.args.get(name, "")
    if not value:
        return default
    # isdigit() alone would pass "²", which int() refuses.
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 10_000_000:
        abort(400, description=_("%(name)s must be a whole number from 1.", name=name))
    return int(value)


def _list_page(form: DatasetUploadForm, status: int = 200) -> tuple[str, int]:
    page = _page_arg("page")
    items, total = datasets.list_datasets(page, PER_PAGE)
    pages = max(1, -(-total // PER_PAGE))
    return render_template(
        "analytics/datasets.html", items=items, total=total, page=page, pages=pages, form=form
    ), status


@bp.get("/datasets")
@login_required
def datasets_page() -> tuple[str, int]:
    """Registered datasets; administrators also get the upload form."""
    return _list_page(DatasetUploadForm())


@bp.post("/datasets")
@admin_required
@body_limit(upload_limit)
def upload() -> Response | tuple[str, int]:
    """Add a CSV or Parquet file as a dataset (or its next version)."""
    form = DatasetUploadForm()
    if not form.validate_on_submit():
        return _list_page(form, 400)
    try:
        version = datasets.add_version(
            form.name.data,
            form.file.data.stream,
            filename=form.file.data.filename or "",
            created_by=current_user,
        )
    except datasets.DatasetError as exc:
        db.session.rollback()
        getattr(form, FIELDS.get(exc.code, "file")).errors = [exc.message]
        return _list_page(form, dataset_status(exc))
    flash(
        _(
            "Version %(number)d of %(name)s is stored: %(rows)d rows, %(columns)d columns.",
            number=version.number,
            name=version.dataset.name,
            rows=version.row_count,
            columns=version.column_count,
        ),
        "success",
    )
    return redirect(url_for("analytics.explorer", name=version.dataset.name))


@bp.get("/datasets/<name>")
@login_required
def explorer(name: str) -> Response:
    """A dataset version's profile, charts and rows."""
    try:
        dataset = datasets.get_dataset(name)
        version = datasets.get_version(dataset, _version_arg())
    except datasets.DatasetNotFound as exc:
        abort(404, description=exc.message)
    stored = version.profile
    page_number = _page_arg("page")
    if (page_number - 1) * ROWS_PER_PAGE >= version.row_count:
        abort(404, description=_("There is no page %(page)d of rows.", page=page_number))
    rows = datasets.read_rows(version, page_number, ROWS_PER_PAGE)
    figures: dict[str, Any] = {}
    for position, column in enumerate(stored["columns"][:MAX_CHARTS]):
        figure = (
            charts.histogram(column) if column["kind"] == "numeric" else charts.top_values(column)
        )
        if figure is not None:
            figures[f"chart-column-{position}"] = figure
    heatmap = charts.correlation_heatmap(stored["correlations"], _("Correlations (Pearson)"))
    if heatmap is not None:
        figures["chart-correlations"] = heatmap
    return chart_page(
        "analytics/dataset.html",
        figures,
        dataset=dataset,
        version=version,
        profile=stored,
        rows=rows,
        max_charts=MAX_CHARTS,
    )


def chart_page(template: str, figures: dict[str, Any], **context: Any) -> Response:
    """A page drawing ``figures`` (plotly JSON by element id) with plotly.js: its style
    rules from the stylesheet, and the chart pages' policy when it has charts."""
    page = make_response(
        render_template(
            template,
            figures=figures,
            plotly_style_id=GLOBAL_STYLE_ID,
            plotly_skipped_ids=injected_styles()[0],
            **context,
        )
    )
    if figures:
        page.headers["Content-Security-Policy"] = CHART_PAGE_POLICY
    return page


def table_csv(found: tuple[list[str], list[list[Any]]] | None, filename: str) -> Response:
    """A chart's data (``charts.table``'s header and rows) as a CSV download; 404 for none."""
    if found is None:
        abort(404, description=_("There is no such chart."))
    header, rows = found
    buffer = io.StringIO()
    out = csvcells.writer(buffer)
    out.writerow(header)
    for row in rows:
        out.writerow(row)
    return csv_download(buffer.getvalue(), filename)


def _version_arg() -> int | None:
    value = request.args.get("version", "")
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 2**31 - 1:
        abort(404, description=_("There is no such version."))
    return int(value)


@bp.get("/static/vendor/<filename>")
def vendor(filename: str) -> Response:
    """plotly.js from the installed plotly package (no CDN), and the style rules it would
    otherwise inject, as a stylesheet (see plotly_assets)."""
    if filename == "plotly.min.js":
        return send_file(PLOTLY_JS, mimetype="text/javascript", max_age=86400)
    if filename == "plotly.css":
        response = Response(injected_styles()[1], mimetype="text/css")
        response.cache_control.public = True
        response.cache_control.max_age = 86400
        return response
    abort(404)
