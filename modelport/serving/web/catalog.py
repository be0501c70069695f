"""The model catalog, a model's page with its prediction form, and its example CSV."""

from __future__ import annotations

import io
from typing import Any

from flask import (
    Response,
    render_template,
    request,
)

from modelport.auth.web.forms import EmptyForm
from modelport.auth.web.identity import current_caller, token_scope
from modelport.config import current_settings
from modelport.models.predictions import Source
from modelport.models.registry import ModelVersion, Visibility
from modelport.models.tokens import Scope
from modelport.responses import csv_download
from modelport.serving import access, csvcells, prediction, registry
from modelport.serving.inference import PredictionFailed, Result
from modelport.serving.limits import prediction_limit
from modelport.serving.predictor import Served
from modelport.serving.schema import InputError, InputSchema
from modelport.serving.web.blueprint import (
    Unserved,
    bp,
    csrf_checked,
    require_served,
    served_or_why_not,
    visible_model,
)
from modelport.serving.web.calls import after_answer, request_call
from modelport.serving.web.examples import TOKEN_VARIABLE, client_examples
from modelport.serving.web.problems import by_field

# Form fields of the prediction form are named after the features, behind a prefix so that
# a feature called "csrf_token" cannot collide with the form's own fields.
FIELD_PREFIX = "feature:"


EXAMPLE_CSV_ROWS = 3


# The metric a catalog row shows, first found first.
KEY_METRICS = ("accuracy", "r2", "roc_auc", "f1_macro", "mae", "rmse")


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
    model = visible_model(name)
    found = served_or_why_not(model)
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
        served = require_served(found)
        csrf_checked()
        values = _form_inputs(served.schema)
        try:
            result = prediction.predict(
                request_call(model.name, Source.PAGE),
                lambda chosen: _form_inputs(chosen.schema),
                max_rows=current_settings().max_batch_rows,
            )
        except InputError as exc:
            field_errors, general = by_field(served.schema, exc.details)
            status = 422
        except PredictionFailed as exc:
            general = [exc.message]
            status = 422
        else:
            after_answer(result)
            outcome = _outcome(result)
            field_warnings, _unplaced = by_field(served.schema, result.warnings)
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


def _csv_cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


@bp.get("/models/<name>/example.csv")
@token_scope(Scope.PREDICT.value)
def example_csv(name: str) -> Response:
    """A CSV the model accepts: the header in feature order and the example row, repeated."""
    served = require_served(served_or_why_not(visible_model(name)))
    row = served.schema.example_row()
    buffer = io.StringIO()
    writer = csvcells.writer(buffer)
    writer.writerow(served.schema.names)
    for _index in range(EXAMPLE_CSV_ROWS):
        writer.writerow([_csv_cell(row[n]) for n in served.schema.names])
    return csv_download(buffer.getvalue(), f"{served.name}-example.csv")
