"""Request hygiene that applies to every endpoint before any view runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, abort, current_app, request
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


def body_limit(limit: Callable[[], int | None]) -> Callable[[Callable], Callable]:
    """Mark a view that takes bodies over ``MODELPORT_MAX_CONTENT_LENGTH``: ``limit()`` gives
    this request's own limit (None: the general one). The one place such limits are set is
    ``apply_body_limit``; the nginx config repeats each (tests/ops/test_nginx_config.py)."""

    def mark(view: Callable) -> Callable:
        view.body_limit = limit  # type: ignore[attr-defined]
        return view

    return mark


def apply_body_limit(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    """Give a marked view's request its body limit before anything reads the body.

    URL value preprocessors run before every ``before_request`` hook, and those read bodies
    (the CSRF check and the NUL check parse forms): set in the view, a larger limit would
    come too late, and a model file over 2 MiB would be refused with 413.
    """
    view = current_app.view_functions.get(endpoint or "")
    limit = getattr(view, "body_limit", None)
    if limit is not None and (value := limit()) is not None:
        request.max_content_length = value


def register_inputs(app: Flask) -> None:
    app.url_value_preprocessor(apply_body_limit)
    app.before_request(refuse_nul_characters)
