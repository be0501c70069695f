"""Site-wide pages: home and the language switch."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, session
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from modelport.auth.redirects import safe_next

bp = Blueprint("pages", __name__)


@bp.get("/")
def home() -> str:
    return render_template("home.html")


@bp.post("/language")
def set_language() -> Response:
    """Remember the chosen language for this browser session (POST: it changes state)."""
    lang = request.form.get("lang", "")
    if lang not in current_app.config["LANGUAGES"]:
        abort(400, description=_("Unknown language."))
    session["lang"] = lang
    return redirect(safe_next(request.form.get("next"), default="/"))
