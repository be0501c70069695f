"""Request hygiene that applies to every endpoint before any view runs."""

from __future__ import annotations

from flask import Flask, abort, request
from flask_babel import gettext as _


def refuse_nul_characters() -> None:
    """Refuse NUL in the query string and form fields.

    PostgreSQL cannot store or even compare a string containing NUL (the driver raises), and no
    legitimate text field needs one; refusing it here keeps every view and query safe at once.
    """
    # The raw query string first: most API calls have none, and parsing it costs.
    values = [*request.args.values(), *request.args.keys()] if request.query_string else []
    # Form fields of pages only: parsing an API body here would consume it before its parser,
    # which checks the content type and refuses NUL in JSON itself.
    is_page = not request.path.startswith(("/api/", "/v2"))
    if (
        is_page
        and request.method not in ("GET", "HEAD")
        and request.mimetype
        in {
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        }
    ):
        values += [*request.form.values(), *request.form.keys()]
    if any("\x00" in value for value in values):
        abort(400, description=_("The input contains a NUL character, which is not allowed."))


def register_inputs(app: Flask) -> None:
    app.before_request(refuse_nul_characters)
