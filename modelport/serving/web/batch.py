"""The batch page: upload a CSV, download it back with the predictions appended."""

from __future__ import annotations

from typing import Any

from flask import (
    Response,
    render_template,
    request,
)
from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage

from modelport.auth.web.identity import token_scope
from modelport.config import current_settings
from modelport.models.predictions import Source
from modelport.models.tokens import Scope
from modelport.ops.inputs import body_limit
from modelport.responses import csv_answer
from modelport.serving import csvstream, prediction
from modelport.serving.inference import PredictionFailed
from modelport.serving.limits import prediction_limit
from modelport.serving.predictor import Served
from modelport.serving.schema import InputError
from modelport.serving.web.blueprint import (
    Unserved,
    batch_limit,
    bp,
    require_served,
    served_or_why_not,
    visible_model,
)
from modelport.serving.web.calls import request_call
from modelport.serving.web.forms import (
    BatchForm,
)
from modelport.serving.web.problems import batch_problems


def _too_large() -> str:
    return _(
        "The file is too large: at most %(rows)s rows and %(size)s MB.",
        rows=f"{current_settings().csv_max_rows:,}",
        size=f"{current_settings().csv_max_bytes / 1_000_000:g}",
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
            request_call(served.name, Source.CSV), lambda _chosen: upload.stream
        )
    except InputError as exc:
        return exc.details, "", 422
    except csvstream.TooWide as exc:
        return [], _too_wide(exc), 413
    except csvstream.TooLarge:
        return [], _too_large(), 413
    except PredictionFailed as exc:
        return exc.details, exc.message, 422
    return csv_answer(answer)


@bp.route("/models/<name>/batch", methods=["GET", "POST"])
@token_scope(Scope.PREDICT.value)
@prediction_limit
@body_limit(batch_limit)
def batch(name: str) -> Response | tuple[str, int]:
    """Upload a CSV, download it back with prediction columns appended."""
    model = visible_model(name)
    found = served_or_why_not(model)
    served = found if isinstance(found, Served) else None
    notice = found.notice if isinstance(found, Unserved) else None
    form = BatchForm()
    problems: list[dict[str, Any]] = []
    total_problems = 0
    message = ""
    status = 200
    if request.method == "POST":
        served = require_served(found)
        if form.validate_on_submit():
            answer = _predict_csv(served, form.file.data)
            if isinstance(answer, Response):
                return answer
            details, message, status = answer
            problems = batch_problems(served.schema, details)
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
