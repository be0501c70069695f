"""Serving pages: the model catalog, a model's page and its prediction form, CSV batches, the
prediction history, and the registry's admin pages.

Views are thin. Who may use a model (``serving.access``), how inputs are validated, how a
prediction is made and recorded, and what the registry allows all live in
``modelport.serving``, called here exactly as the JSON API calls them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.datastructures import FileStorage

from modelport.auth.admin import admin_required
from modelport.auth.forms import EmptyForm
from modelport.auth.identity import current_caller, token_scope
from modelport.extensions import client_address, db
from modelport.models.predictions import Source
from modelport.models.registry import ModelVersion, RegisteredModel, VersionStatus, Visibility
from modelport.models.tokens import Scope
from modelport.serving import access, csvcells, csvstream, prediction, records, registry
from modelport.serving.examples import TOKEN_VARIABLE, client_examples
from modelport.serving.forms import (
    MAX_VERSION,
    AliasForm,
    BatchForm,
    HistoryFilterForm,
    ModelForm,
    UploadForm,
    schema_from_form,
    schema_rows,
)
from modelport.serving.inference import PredictionFailed, Result
from modelport.serving.limits import COUNTED, prediction_limit
from modelport.serving.predictor import ModelNotFound, ModelNotReady, Served
from modelport.serving.schema import FEATURE_TYPES, Feature, InputError, InputSchema

bp = Blueprint("serving", __name__)

# Form fields of the prediction form are named after the features, behind a prefix so that
# a feature called "csrf_token" cannot collide with the form's own fields.
FIELD_PREFIX = "feature:"
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_PAGE = 100_000
MAX_RECORD_ID = 2**63 - 1  # a BIGINT primary key
BATCH_PROBLEMS_SHOWN = 20
EXAMPLE_CSV_ROWS = 3
# Room for the multipart envelope (boundaries, CSRF field) around a CSV of the largest size.
MULTIPART_OVERHEAD = 64 * 1024
# The metric a catalog row shows, first found first.
KEY_METRICS = ("accuracy", "r2", "roc_auc", "f1_macro", "mae", "rmse")
# Registry error codes and the form field each one is about.
REGISTRY_FIELDS = {
    "invalid_name": "name",
    "model_exists": "name",
    "invalid_task": "task",
    "invalid_visibility": "visibility",
    "invalid_artifact": "artifact",
    "unsupported_flavor": "artifact",
    "task_mismatch": "artifact",
    "invalid_sample": "sample",
    "sample_mismatch": "sample",
    "invalid_alias": "alias",
    "version_archived": "alias",
    "version_not_found": "version",
}


# ---- limits ---------------------------------------------------------------------------------
# prediction_limit (modelport.serving.limits) is the API's budget too.


def _setting(name: str) -> Any:
    return current_app.config["MODELPORT"][name]


@bp.url_value_preprocessor
def _upload_body_limits(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    """Raise the body limit of the upload pages before anything parses their form.

    The CSRF check and the NUL-character check read the form in ``before_request``, which
    runs after this: set later (in the view), the limit would come too late.
    """
    if request.method != "POST":
        return
    if endpoint == "serving.batch":
        request.max_content_length = _setting("CSV_MAX_BYTES") + MULTIPART_OVERHEAD
    elif endpoint == "serving.admin_upload" and current_caller().is_admin:
        # Only administrators may send model files; others keep the ordinary limit.
        request.max_content_length = _setting("UPLOAD_MAX_BYTES")


# ---- access -----------------------------------------------------------------------------------


def _visible_model(name: str) -> RegisteredModel:
    """The model called ``name`` if the visitor may use it; 404 otherwise, private or absent."""
    try:
        return access.model_for(current_caller(), name, Source.PAGE)
    except ModelNotFound as exc:
        abort(404, description=str(exc))


@dataclass(frozen=True)
class Unserved:
    """Why a model has no version to predict with, and the status a request for one gets."""

    notice: str
    status: int


def _served(model: RegisteredModel) -> Served | Unserved:
    """The version requests without a version get (champion, else newest), or why none."""
    try:
        return access.served_for(current_caller(), model.name, channel=Source.PAGE)
    except ModelNotFound:
        return Unserved(_("This model has no version ready to serve yet."), 404)
    except ModelNotReady:
        return Unserved(_("This model cannot be loaded right now. Try again shortly."), 503)


def _call(name: str, channel: str) -> prediction.Call:
    """This request's prediction with the model ``name`` (the service checks the rest)."""
    return prediction.Call(
        current_caller(),
        name,
        channel,
        g.request_id,
        address=client_address(),
        counted=bool(request.environ.get(COUNTED)),
    )


def _require_served(served: Served | Unserved) -> Served:
    if isinstance(served, Unserved):
        abort(served.status, description=served.notice)
    return served


def _csrf_checked() -> None:
    if not EmptyForm().validate_on_submit():
        abort(400)


# ---- presentation of problems -------------------------------------------------------------


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def problem_text(detail: dict[str, Any], feature: Feature | None) -> str:
    """A validation problem in the reader's language (the service's message if none fits)."""
    code = detail.get("code")
    kind = feature.type if feature is not None else None
    if code == "missing_field":
        return _("This field is required.")
    if code == "not_finite" and kind in ("number", "integer"):
        return _("Enter a finite number.")
    if code in ("wrong_type", "not_integer", "boolean_not_number"):
        if kind == "integer":
            return _("Enter a whole number.")
        if kind == "number":
            return _("Enter a number.")
        if kind == "boolean":
            return _("Enter true or false.")
    if code == "unseen_category":
        return _("Choose one of the categories seen in training.")
    if code == "out_of_range" and feature is not None:
        if feature.minimum is not None and feature.maximum is not None:
            return _(
                "Outside the range seen in training (%(low)s to %(high)s); predicted anyway.",
                low=_number(feature.minimum),
                high=_number(feature.maximum),
            )
        return _("Outside the range seen in training; predicted anyway.")
    return str(detail.get("message", ""))


def _by_field(
    schema: InputSchema, details: list[dict[str, Any]]
) -> tuple[dict[str, list[str]], list[str]]:
    """Problems grouped by feature name, and those about no single feature."""
    features = {f.name: f for f in schema.features}
    fields: dict[str, list[str]] = {}
    general: list[str] = []
    for detail in details:
        feature = features.get(detail.get("field") or "")
        if feature is None:
            general.append(problem_text(detail, None))
        else:
            fields.setdefault(feature.name, []).append(problem_text(detail, feature))
    return fields, general


def _form_inputs(schema: InputSchema) -> dict[str, str]:
    """The form's text as one input row: the schema coerces text as it does a CSV cell."""
    inputs = {}
    for feature in schema.features:
        key = FIELD_PREFIX + feature.name
        if feature.type == "boolean":
            # An unticked box sends nothing: it means false.
            inputs[feature.name] = "true" if request.form.get(key) else "false"
        else:
            inputs[feature.name] = request.form.get(key, "")
    return inputs


def _outcome(result: Result) -> dict[str, Any]:
    """The one predicted row, probabilities largest first."""
    row = result.predictions[0]
    if "value" in row:
        return {"value": row["value"]}
    probabilities = sorted(
        (row.get("probabilities") or {}).items(), key=lambda item: item[1], reverse=True
    )
    return {"label": row.get("label"), "probabilities": probabilities}


def key_metric(version: ModelVersion | None) -> tuple[str, Any] | None:
    """The metric a catalog row shows for ``version``."""
    metrics = (version.metrics if version is not None else None) or {}
    for name in KEY_METRICS:
        if isinstance(metrics.get(name), int | float):
            return name, metrics[name]
    for name, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            return name, value
    return None


@bp.app_template_filter("figure")
def figure(value: Any) -> str:
    """A measured number with four significant digits; anything else as it is."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# ---- catalog and model page -----------------------------------------------------------------


@bp.get("/models")
@token_scope(Scope.PREDICT.value)
def catalog() -> str:
    """Models the visitor may use, with the version each serves."""
    rows = []
    for model in access.visible_models(current_caller(), Source.PAGE):
        version = registry.served_version(model)
        rows.append({"model": model, "version": version, "metric": key_metric(version)})
    return render_template("serving/catalog.html", rows=rows)


@bp.route("/models/<name>", methods=["GET", "POST"])
@token_scope(Scope.PREDICT.value)
@prediction_limit
def model_page(name: str) -> tuple[str, int]:
    """A model: description, schema, metrics, versions, examples, and a prediction form."""
    model = _visible_model(name)
    found = _served(model)
    served = found if isinstance(found, Served) else None
    notice = found.notice if isinstance(found, Unserved) else None
    values: dict[str, Any] = served.schema.example_row() if served else {}
    field_errors: dict[str, list[str]] = {}
    field_warnings: dict[str, list[str]] = {}
    general: list[str] = []
    outcome = None
    result = None
    status = 200
    if request.method == "POST":
        served = _require_served(found)
        _csrf_checked()
        values = _form_inputs(served.schema)
        try:
            result = prediction.predict(
                _call(model.name, Source.PAGE),
                lambda chosen: _form_inputs(chosen.schema),
                max_rows=_setting("MAX_BATCH_ROWS"),
            )
        except InputError as exc:
            field_errors, general = _by_field(served.schema, exc.details)
            status = 422
        except PredictionFailed as exc:
            general = [exc.message]
            status = 422
        else:
            outcome = _outcome(result)
            field_warnings, _unplaced = _by_field(served.schema, result.warnings)
    version = registry.get_version(model, served.version) if served else None
    examples = (
        client_examples(
            model.name,
            served.schema,
            request.host_url,
            private=model.visibility == Visibility.PRIVATE.value,
        )
        if served
        else None
    )
    return render_template(
        "serving/model.html",
        model=model,
        served=served,
        version=version,
        notice=notice,
        values=values,
        field_errors=field_errors,
        field_warnings=field_warnings,
        general=general,
        result=result,
        outcome=outcome,
        examples=examples,
        token_variable=TOKEN_VARIABLE,
        form=EmptyForm(),
        prefix=FIELD_PREFIX,
    ), status


# ---- batch ----------------------------------------------------------------------------------


def _csv_cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


@bp.get("/models/<name>/example.csv")
@token_scope(Scope.PREDICT.value)
def example_csv(name: str) -> Response:
    """A CSV the model accepts: the header in feature order and the example row, repeated."""
    served = _require_served(_served(_visible_model(name)))
    row = served.schema.example_row()
    buffer = io.StringIO()
    writer = csvcells.writer(buffer)
    writer.writerow(served.schema.names)
    for _index in range(EXAMPLE_CSV_ROWS):
        writer.writerow([_csv_cell(row[n]) for n in served.schema.names])
    response = Response(buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{served.name}-example.csv"'
    return response


def _too_large() -> str:
    return _(
        "The file is too large: at most %(rows)s rows and %(size)s MB.",
        rows=f"{_setting('CSV_MAX_ROWS'):,}",
        size=f"{_setting('CSV_MAX_BYTES') / 1_000_000:g}",
    )


def _too_wide(exc: csvstream.TooWide) -> str:
    return _(
        "The file has too many columns: at most %(columns)s, the model's %(features)s "
        "features and %(others)s more.",
        columns=f"{exc.features + exc.others:,}",
        features=exc.features,
        others=f"{exc.others:,}",
    )


def _predict_csv(served: Served, upload: FileStorage) -> Response | tuple[list[dict], str, int]:
    """The streamed CSV answer, or the problems that stop it (with their status)."""
    try:
        answer = prediction.predict_csv(
            _call(served.name, Source.CSV), lambda _chosen: upload.stream
        )
    except InputError as exc:
        return exc.details, "", 422
    except csvstream.TooWide as exc:
        return [], _too_wide(exc), 413
    except csvstream.TooLarge:
        return [], _too_large(), 413
    except PredictionFailed as exc:
        return exc.details, exc.message, 422
    response = Response(stream_with_context(answer.chunks), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{served.name}-predictions.csv"'
    )
    response.headers["X-Rows"] = str(answer.rows)
    response.headers["X-Accel-Buffering"] = "no"  # streamed: nginx passes it on as it comes
    return response


def _batch_problems(schema: InputSchema, details: list[dict]) -> list[dict[str, Any]]:
    features = {f.name: f for f in schema.features}
    shown = []
    for detail in details[:BATCH_PROBLEMS_SHOWN]:
        row = detail.get("row")
        shown.append(
            {
                "row": None if row is None else row + 1,
                "line": None if row is None else row + 2,  # the header is line 1
                "field": detail.get("field"),
                "text": problem_text(detail, features.get(detail.get("field") or "")),
                "message": detail.get("message", ""),
            }
        )
    return shown


@bp.route("/models/<name>/batch", methods=["GET", "POST"])
@token_scope(Scope.PREDICT.value)
@prediction_limit
def batch(name: str) -> Response | tuple[str, int]:
    """Upload a CSV, download it back with prediction columns appended."""
    model = _visible_model(name)
    found = _served(model)
    served = found if isinstance(found, Served) else None
    notice = found.notice if isinstance(found, Unserved) else None
    form = BatchForm()
    problems: list[dict[str, Any]] = []
    total_problems = 0
    message = ""
    status = 200
    if request.method == "POST":
        served = _require_served(found)
        if form.validate_on_submit():
            answer = _predict_csv(served, form.file.data)
            if isinstance(answer, Response):
                return answer
            details, message, status = answer
            problems = _batch_problems(served.schema, details)
            total_problems = len(details)
        else:
            status = 400
    return render_template(
        "serving/batch.html",
        model=model,
        served=served,
        notice=notice,
        form=form,
        problems=problems,
        total_problems=total_problems,
        message=message,
    ), status


# ---- history --------------------------------------------------------------------------------


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
    found = records.get_record(current_caller(), record_id) if record_id <= MAX_RECORD_ID else None
    if found is None:
        abort(404, description=_("There is no such prediction record."))
    return render_template(
        "serving/record.html",
        record=found,
        inputs=_table(found.inputs),
        outputs=_table(found.outputs),
        show_user=current_caller().is_admin,
    )


# ---- administration of the registry ---------------------------------------------------------


def registry_message(exc: registry.RegistryError) -> str:
    """A registry refusal in the reader's language where the rule has a fixed wording."""
    messages = {
        "invalid_name": _(
            "A model name is 1–64 lower-case letters, digits, '-' or '_', starting with a "
            "letter or digit."
        ),
        "model_exists": _("A model with this name already exists."),
        "invalid_alias": _(
            "An alias is 1–40 lower-case letters, digits, '-' or '_', starting with a letter."
        ),
        "version_archived": _("An archived version cannot take an alias."),
        "version_not_found": _("This model has no such version."),
    }
    return messages.get(exc.code, exc.message)


def _refused(form: Any, exc: registry.RegistryError) -> int:
    """Show a registry refusal on the form's field; nothing was changed. Returns the status."""
    db.session.rollback()
    target = getattr(form, REGISTRY_FIELDS.get(exc.code, ""), None)
    if target is not None:
        target.errors = [*target.errors, registry_message(exc)]
    else:
        flash(registry_message(exc), "error")
    return exc.status


def _admin_model(name: str) -> RegisteredModel:
    model = registry.get_model(name)
    if model is None:
        abort(404, description=_("There is no model named %(name)s.", name=name))
    return model


def _admin_models_page(status: int = 200) -> tuple[str, int]:
    models = access.visible_models(current_caller(), Source.PAGE)
    serving = {m.id: registry.served_version(m) for m in models}
    return render_template(
        "admin/models.html",
        models=models,
        serving=serving,
        alias_form=AliasForm(formdata=None),
        action_form=EmptyForm(),
        ready=VersionStatus.READY.value,
    ), status


@bp.get("/admin/models")
@admin_required
def admin_models() -> tuple[str, int]:
    """Every model with its versions (runtime, parity, status) and aliases."""
    return _admin_models_page()


@bp.route("/admin/models/new", methods=["GET", "POST"])
@admin_required
def admin_new_model() -> Response | tuple[str, int]:
    """Register a new, empty model."""
    form = ModelForm()
    status = 200
    if form.validate_on_submit():
        try:
            model = registry.create_model(
                form.name.data.strip(),
                title=(form.title.data or "").strip(),
                description=form.description.data or "",
                task=form.task.data,
                visibility=form.visibility.data,
                owner=current_user,
            )
        except registry.RegistryError as exc:
            status = _refused(form, exc)
        else:
            flash(
                _("Model %(name)s is registered. Upload its first version.", name=model.name),
                "success",
            )
            return redirect(url_for("serving.admin_upload", name=model.name))
    elif form.is_submitted():
        status = 400
    return render_template("admin/model_new.html", form=form), status


@bp.route("/admin/models/<name>/upload", methods=["GET", "POST"])
@admin_required
def admin_upload(name: str) -> Response | tuple[str, int]:
    """Add a version from a model file and a sample of its training data."""
    model = _admin_model(name)
    form = UploadForm()
    status = 200
    if form.validate_on_submit():
        alias = (form.alias.data or "").strip()
        try:
            version = registry.register_version(
                model,
                form.artifact.data.stream,
                filename=form.artifact.data.filename or "",
                sample=form.sample.data.stream,
                created_by=current_user,
                aliases=(alias,) if alias else (),
            )
        except registry.RegistryError as exc:
            status = _refused(form, exc)
        else:
            flash(
                _(
                    "Version %(number)d of %(name)s is registered; %(runtime)s serves it.",
                    number=version.number,
                    name=model.name,
                    runtime=version.runtime,
                ),
                "success",
            )
            return redirect(url_for("serving.admin_models"))
    elif form.is_submitted():
        status = 400
    return render_template("admin/upload.html", model=model, form=form), status


@bp.post("/admin/models/<name>/aliases")
@admin_required
def admin_alias(name: str) -> Response | tuple[str, int]:
    """Point an alias at a version; every worker follows within the poll interval."""
    model = _admin_model(name)
    form = AliasForm()
    if not form.validate_on_submit():
        flash(_("Enter an alias and a version number."), "error")
        return _admin_models_page(400)
    alias = form.alias.data.strip()
    try:
        registry.set_alias(model, alias, form.version.data)
    except registry.RegistryError as exc:
        db.session.rollback()
        flash(registry_message(exc), "error")
        return _admin_models_page(exc.status)
    flash(
        _(
            "%(alias)s of %(name)s now points at version %(number)d.",
            alias=alias,
            name=model.name,
            number=form.version.data,
        ),
        "success",
    )
    return redirect(url_for("serving.admin_models"))


@bp.route("/admin/models/<name>/versions/<int:number>/schema", methods=["GET", "POST"])
@admin_required
def admin_schema(name: str, number: int) -> Response | tuple[str, int]:
    """Edit a version's input schema: types, required, ranges, categories, descriptions."""
    model = _admin_model(name)
    version = registry.get_version(model, number) if number <= MAX_VERSION else None
    if version is None:
        abort(404, description=_("This model has no such version."))
    schema = InputSchema.from_dict(version.input_schema)
    rows, problems, status = schema_rows(schema), [], 200
    if request.method == "POST":
        _csrf_checked()
        edited, rows, problems = schema_from_form(schema, request.form)
        if not problems:
            try:
                registry.update_schema(version, edited)
            except registry.RegistryError as exc:
                db.session.rollback()
                problems = [registry_message(exc)]
            else:
                flash(
                    _(
                        "The input schema of version %(number)d of %(name)s is saved; every "
                        "worker uses it within seconds.",
                        number=number,
                        name=model.name,
                    ),
                    "success",
                )
                return redirect(url_for("serving.admin_models"))
        status = 422
    return render_template(
        "admin/schema.html",
        model=model,
        version=version,
        rows=rows,
        problems=problems,
        types=FEATURE_TYPES,
        form=EmptyForm(),
    ), status


@bp.post("/admin/models/<name>/versions/<int:number>/archive")
@admin_required
def admin_archive(name: str, number: int) -> Response:
    """Stop serving a version; its records stay and aliases on it are removed."""
    model = _admin_model(name)
    if number > MAX_VERSION or registry.get_version(model, number) is None:
        abort(404, description=_("This model has no such version."))
    _csrf_checked()
    registry.archive_version(model, number)
    flash(
        _("Version %(number)d of %(name)s is archived.", number=number, name=model.name),
        "success",
    )
    return redirect(url_for("serving.admin_models"))
