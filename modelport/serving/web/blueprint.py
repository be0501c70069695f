"""The serving pages' blueprint, and what every one of them needs: the body limits of the
upload pages, the model a visitor may see, the version it serves, and a prediction's call.

Views are thin. Who may use a model (``serving.access``), how inputs are validated, how a
prediction is made and recorded, and what the registry allows all live in
``modelport.serving``, called here exactly as the JSON API calls them.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import (
    Blueprint,
    abort,
)
from flask_babel import gettext as _

from modelport.auth.web.forms import EmptyForm
from modelport.auth.web.identity import current_caller
from modelport.config import current_settings
from modelport.models.predictions import Source
from modelport.models.registry import RegisteredModel
from modelport.serving import access
from modelport.serving.predictor import ModelNotFound, ModelNotReady, Served

bp = Blueprint("serving", __name__)


# Room for the multipart envelope (boundaries, CSRF field) around a CSV of the largest size.
MULTIPART_OVERHEAD = 64 * 1024


def batch_limit() -> int:
    """The batch page's body: a CSV of ``MODELPORT_CSV_MAX_BYTES`` in a multipart form."""
    return current_settings().csv_max_bytes + MULTIPART_OVERHEAD


def upload_limit() -> int | None:
    """The upload page's body: a model file, for administrators (others keep the general
    limit)."""
    return current_settings().upload_max_bytes if current_caller().is_admin else None


def visible_model(name: str) -> RegisteredModel:
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


def served_or_why_not(model: RegisteredModel) -> Served | Unserved:
    """The version requests without a version get (champion, else newest), or why none."""
    try:
        return access.served_for(current_caller(), model.name, channel=Source.PAGE)
    except ModelNotFound:
        return Unserved(_("This model has no version ready to serve yet."), 404)
    except ModelNotReady:
        return Unserved(_("This model cannot be loaded right now. Try again shortly."), 503)


def require_served(served: Served | Unserved) -> Served:
    if isinstance(served, Unserved):
        abort(served.status, description=served.notice)
    return served


def csrf_checked() -> None:
    if not EmptyForm().validate_on_submit():
        abort(400)
