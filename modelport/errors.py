"""Errors are data: every error a client can cause is a clear 4xx, never a traceback.

``/api/...`` answers ``{"error": {"code", "message", "details"}}``; ``/v2/...`` keeps the
inference protocol's ``{"error": "message"}``; pages render ``error.html`` with the message.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from werkzeug.exceptions import HTTPException, InternalServerError

from modelport.extensions import db, login_manager

if TYPE_CHECKING:
    from modelport.analytics.datasets import DatasetError
    from modelport.analytics.report import ReportError
    from modelport.serving.registry import RegistryError
    from modelport.serving.schema import InputError

log = logging.getLogger("modelport.errors")


CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
    507: "insufficient_storage",
}


class ApiError(HTTPException):
    """An error raised by API code with a machine-readable code and details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = status
        self.error_code = code
        self.details = details


def _wants_api(path: str) -> bool:
    # /metrics is read by programs (Prometheus): its refusals are JSON like the API's.
    return path.startswith("/api/") or path in ("/api", "/metrics")


def _wants_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


# marshmallow's stock messages, mapped to stable machine-readable detail codes.
_DETAIL_CODES = {
    "Missing data for required field.": "required",
    "Unknown field.": "unknown_field",
    "Field may not be null.": "null",
    "Invalid input type.": "invalid_type",
}

# webargs nests messages by location (json, query, ...); the location is not a field name.
_LOCATIONS = {"json", "query", "querystring", "form", "headers", "files", "view_args", "path"}


def _detail(path: list[str], message: str) -> dict[str, Any]:
    # "_schema" is marshmallow's name for "the object as a whole".
    names = [p for p in path if p != "_schema"]
    return {
        "row": None,
        "field": ".".join(names) or None,
        "code": _DETAIL_CODES.get(message, "invalid"),
        "message": message,
    }


def _details_from_webargs(error: HTTPException) -> list[dict[str, Any]] | None:
    """webargs/marshmallow messages ({location: {field: [msg]}}) as a flat list."""
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if not isinstance(messages, dict):
        return None
    details: list[dict[str, Any]] = []

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, [*path, str(key)])
        elif isinstance(node, list) and all(isinstance(m, str) for m in node):
            details.extend(_detail(path, message) for message in node)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, [*path, str(index)])
        else:
            details.append(_detail(path, str(node)))

    for location, fields in messages.items():
        walk(fields, [] if location in _LOCATIONS else [location])
    return details


def _default_message(status: int) -> str | None:
    """Our wording for errors raised without a message of their own."""
    api = _wants_api(request.path) or _wants_v2(request.path)
    if status == 400:
        return _("The request is not valid.")
    if status == 401:
        if api:
            return _("Sign in or send Authorization: Bearer <token>.")
        return _("Sign in to see this page.")
    if status == 403:
        return _("You are not allowed to do this.")
    if status == 404:
        if api:
            return _("Nothing is at %(path)s.", path=request.path)
        return _("There is no page at this address.")
    if status == 413:
        return _("The request body is too large.")
    if status == 415:
        return _("This type of request body is not accepted here.")
    if status == 422:
        return _("The input is not valid; see details.")
    if status == 500:
        return _("Something went wrong on our side. The error was logged.")
    return None


def _message(error: HTTPException) -> str:
    status = error.code or 500
    if isinstance(error, RateLimitExceeded):
        return _("Too many requests: %(limit)s. Try again later.", limit=error.description)
    if isinstance(error, CSRFError):
        return _(
            "The form expired or came from another site (CSRF check failed). Reload the page and try again."
        )
    if status == 405:
        allowed = [
            m for m in getattr(error, "valid_methods", None) or [] if m not in ("HEAD", "OPTIONS")
        ]
        return _(
            "%(method)s is not allowed here; use %(allowed)s.",
            method=request.method,
            allowed=", ".join(allowed) or "-",
        )
    if status == 413 and isinstance(error, ApiError):
        return str(error.description)  # our own words: which limit the body passed
    if status in (413, 500):
        # Never echo what went wrong inside: the message is fixed.
        return _default_message(status) or ""
    # Werkzeug's stock descriptions ("The browser (or proxy) sent a request that this server
    # could not understand.") say nothing useful; ours do.
    if error.description and error.description != type(error).description:
        return str(error.description)
    webargs_messages = (getattr(error, "data", None) or {}).get("messages")
    if status == 400 and isinstance(webargs_messages, dict) and "json" in webargs_messages:
        return _("The body is not valid JSON.")
    return _default_message(status) or str(error.description or error.name)


def _code(error: HTTPException) -> str:
    if isinstance(error, CSRFError):
        return "csrf_failed"
    return getattr(error, "error_code", None) or CODES.get(error.code or 500, "error")


def error_response(error: HTTPException) -> Response | tuple[Any, int]:
    """Render ``error`` in the caller's format with the right status and headers."""
    status = error.code or 500
    if getattr(error, "during_identity", False):
        # Identity failed while resolving the caller: answer as anonymous, without a second
        # try (that would check a Basic password, and count a failure, twice). g._login_user
        # and _load_user() are Flask-Login's private parts; guarded by tests/test_upstream.py.
        g._login_user = login_manager.anonymous_user()
    headers: dict[str, str] = {}
    if status == 401 and (_wants_api(request.path) or request.headers.get("Authorization")):
        headers["WWW-Authenticate"] = 'Bearer realm="modelport"'
    if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    if retry := getattr(error, "retry_after", None):
        headers["Retry-After"] = str(retry)
    message = _message(error)
    if _wants_v2(request.path):
        response = jsonify({"error": message})
    elif _wants_api(request.path):
        details = getattr(error, "details", None)
        if details is None:
            details = _details_from_webargs(error)
        response = jsonify(
            {"error": {"code": _code(error), "message": message, "details": details}}
        )
    else:
        response = Response(_error_page(status, message), mimetype="text/html")
    response.status_code = status
    response.headers.update(headers)
    return response


def _error_page(status: int, message: str) -> str:
    """The error page; a bare one if the layout itself cannot be rendered (database down)."""
    try:
        if "_login_user" not in g:
            # The layout shows who is signed in; resolve that now, or treat the caller as
            # anonymous if the identity itself is what failed.
            try:
                login_manager._load_user()  # Flask-Login's; tests/test_upstream.py
            except Exception:
                db.session.rollback()
                g._login_user = login_manager.anonymous_user()
        return render_template("error.html", status=status, message=message)
    except Exception:
        db.session.rollback()
        log.exception("error page failed", extra={"fields": {"request_id": g.get("request_id")}})
        return (
            f'<!doctype html><html lang="en"><meta charset="utf-8"><title>Error {status}'
            f"</title><h1>Error {status}</h1><p>{escape(message)}</p></html>"
        )


def handle_http_exception(error: HTTPException) -> Response | tuple[Any, int]:
    db.session.rollback()
    return error_response(error)


def handle_os_error(error: OSError) -> Response | tuple[Any, int]:
    """A full disk (or spent quota) while a request is read or answered: werkzeug keeps a large
    upload in a temporary file, and a full temporary folder is no fault of the request. 507,
    as a full artifact store is (``StoreFull``); any other OSError is unexpected."""
    from modelport.serving.artifacts import DISK_FULL

    if error.errno not in DISK_FULL:
        return handle_unexpected(error)
    with contextlib.suppress(SQLAlchemyError):
        db.session.rollback()
    log.warning("disk_full", extra={"fields": {"request_id": g.get("request_id")}})
    return error_response(
        ApiError(
            507,
            "insufficient_storage",
            _("The server has no room for this request now: nothing was stored. Try again later."),
        )
    )


def handle_unexpected(error: Exception) -> Response | tuple[Any, int]:
    """The last resort: log with the request id, answer a generic 500, commit nothing."""
    with contextlib.suppress(SQLAlchemyError):
        db.session.rollback()
    log.exception("unhandled error", extra={"fields": {"request_id": g.get("request_id")}})
    return error_response(InternalServerError())


class DatabaseUnavailable(HTTPException):
    code = 503
    error_code = "database_unavailable"
    retry_after = 5


@event.listens_for(Engine, "handle_error")
def _connecting_failed_is_a_lost_connection(context: ExceptionContext) -> None:
    """A failure to connect (refused, or a server still recovering) is the database being
    unavailable: no SQL of ours ran. psycopg reports it like any OperationalError, so it is
    marked as a lost connection (``connection_invalidated``), as a dropped one is."""
    if context.connection is None and not context.is_pre_ping:
        context.is_disconnect = True


def _database_answers() -> bool:
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


def handle_database_error(error: DBAPIError | SATimeoutError) -> Response | tuple[Any, int]:
    """The database went away (restart, failover, full pool): 503 and retry, not a 500.

    Drivers report a refused connection and a typo in SQL with the same exception classes,
    so the database is asked once more: if it answers, the error was ours (500). Pre-ping
    replaces stale pooled connections at checkout, but a request already talking to the
    database when it dropped fails; its transaction is rolled back, nothing half-written.
    """
    with contextlib.suppress(SQLAlchemyError):
        db.session.rollback()
    locked = "database is locked" in str(getattr(error, "orig", ""))
    # A connection that failed or went away says so itself: no need to ask, and asking could
    # find the database already back (a restart) and blame ourselves.
    lost = isinstance(error, DBAPIError) and error.connection_invalidated
    if isinstance(error, DBAPIError) and not (locked or lost) and _database_answers():
        return handle_unexpected(error)
    log.warning(
        "database unavailable",
        extra={"fields": {"error": type(error).__name__, "request_id": g.get("request_id")}},
    )
    return error_response(
        DatabaseUnavailable(_("The database is unavailable at the moment. Try again shortly."))
    )


# ---- domain errors ------------------------------------------------------------------------
# The services raise errors of their own (a model that is not there, a budget spent, inputs
# that do not fit); this is the one place they become HTTP, in each channel's format.

MAX_LISTED = 10  # input problems a /v2 error message lists (the protocol's error is a string)


def input_error_message(error: InputError) -> str:
    """The problems of a request's inputs in one line."""
    details = error.details
    if len(details) == 1:
        return details[0]["message"]
    if not _wants_v2(request.path):
        first = details[0]["message"] if details else "The input does not match the schema."
        return f"{len(details)} problems in the input; first: {first}"
    parts = [
        (f"row {d['row']}: " if d.get("row") is not None else "") + d["message"].rstrip(".")
        for d in details[:MAX_LISTED]
    ]
    if error.truncated or len(details) > MAX_LISTED:
        parts.append(f"and more (the first {min(len(details), MAX_LISTED)} are listed)")
    count = f"{len(details)}{'+' if error.truncated else ''}"
    return f"{count} problems in the input: {'; '.join(parts)}."


def registry_status(error: RegistryError) -> int:
    """The status of a registry refusal, on the API and the registry's pages alike."""
    from modelport.serving.registry import RegistryConflict, RegistryNotFound, RegistryUnavailable

    if isinstance(error, RegistryNotFound):
        return 404
    if isinstance(error, RegistryUnavailable):
        return 503
    if isinstance(error, RegistryConflict):
        return 409
    return 422


def dataset_status(error: DatasetError) -> int:
    """The status of a dataset refusal, on the API and the pages alike."""
    from modelport.analytics.datasets import (
        DatasetConflict,
        DatasetNotFound,
        DatasetTooLarge,
        UnsupportedFormat,
    )

    if isinstance(error, DatasetNotFound):
        return 404
    if isinstance(error, DatasetConflict):
        return 409
    if isinstance(error, DatasetTooLarge):
        return 413
    if isinstance(error, UnsupportedFormat):
        return 415
    return 422


def report_status(error: ReportError) -> int:
    """The status of a report that cannot be shown, on the API and the page alike."""
    return 404 if error.code == "version_not_found" else 422


def domain_http_error(error: Exception) -> HTTPException:
    """A service's error as the HTTP error a client gets (status, code, message, details).

    The inference protocol answers bad input with 400, the JSON API with 422.
    """
    from modelport.analytics.datasets import DatasetError
    from modelport.analytics.drift import DriftError
    from modelport.analytics.monitoring import WindowError
    from modelport.analytics.report import ReportError
    from modelport.auth.throttle import ThrottleUnavailable
    from modelport.mlops.follow import WebhookRefused
    from modelport.serving.artifacts import StoreFull
    from modelport.serving.csvstream import TooLarge
    from modelport.serving.feedback import FeedbackError
    from modelport.serving.inference import PredictionFailed
    from modelport.serving.limits import BudgetSpent
    from modelport.serving.predictor import ModelNotFound, ModelNotReady
    from modelport.serving.records import CallerGone
    from modelport.serving.registry import RegistryError
    from modelport.serving.schema import InputError

    bad_input = 400 if _wants_v2(request.path) else 422
    if isinstance(error, ModelNotFound):
        return ApiError(404, "model_not_found", str(error))
    if isinstance(error, ModelNotReady):
        return ApiError(503, "model_not_ready", str(error))
    if isinstance(error, BudgetSpent):
        limited = ApiError(
            429,
            "rate_limited",
            _("Too many requests: %(limit)s. Try again later.", limit=error.limit),
        )
        limited.retry_after = error.retry_after  # type: ignore[attr-defined]
        return limited
    if isinstance(error, InputError):
        return ApiError(bad_input, "invalid_input", input_error_message(error), error.details)
    if isinstance(error, PredictionFailed):
        return ApiError(bad_input, "prediction_failed", error.message, error.details)
    if isinstance(error, TooLarge):
        return ApiError(413, "payload_too_large", str(error))
    if isinstance(error, RegistryError):
        return ApiError(registry_status(error), error.code, error.message)
    if isinstance(error, DatasetError):
        return ApiError(dataset_status(error), error.code, error.message)
    if isinstance(error, StoreFull):
        # Nothing was stored and nothing recorded (serving.registry): the upload may be sent
        # again once an operator has made room.
        return ApiError(
            507,
            "insufficient_storage",
            _("The model store is full: nothing was stored. Try again once space is freed."),
        )
    if isinstance(error, ThrottleUnavailable):
        # Sign-in fails closed while its counts cannot be kept (docs/operations.md).
        unavailable = ApiError(
            503,
            "sign_in_unavailable",
            _("Sign-in is unavailable at the moment. Try again shortly."),
        )
        unavailable.retry_after = error.retry_after  # type: ignore[attr-defined]
        return unavailable
    if isinstance(error, WindowError):
        return ApiError(422, "invalid_window", str(error))
    if isinstance(error, DriftError):
        return ApiError(422, error.code, error.message)
    if isinstance(error, ReportError):
        return ApiError(report_status(error), error.code, error.message)
    if isinstance(error, FeedbackError):
        return ApiError(404 if error.code == "not_found" else 409, error.code, error.message)
    if isinstance(error, WebhookRefused):
        return ApiError(error.status, error.code, error.message)
    if isinstance(error, CallerGone):
        refused = ApiError(401, "invalid_token", str(error))
        refused.during_identity = True  # type: ignore[attr-defined]
        return refused
    raise TypeError(f"not a domain error: {error!r}")


def close_session(_error: BaseException | None = None) -> None:
    """End the request's session. A database that drops the connection as the request ends
    (a restart: its ROLLBACK fails) must not turn an answer already made into a 500: the
    connection is invalidated by SQLAlchemy, the session closed again without it, and the
    next request gets a fresh connection (or the 503 of a database that is down)."""
    try:
        db.session.remove()
    except SQLAlchemyError as exc:
        log.warning(
            "database connection lost while the request ended",
            extra={"fields": {"error": type(exc).__name__}},
        )
        with contextlib.suppress(SQLAlchemyError):
            db.session.remove()


def handle_domain_error(error: Exception) -> Response | tuple[Any, int]:
    return handle_http_exception(domain_http_error(error))


def register_error_handlers(app: Flask) -> None:
    from modelport.analytics.datasets import DatasetError
    from modelport.analytics.drift import DriftError
    from modelport.analytics.monitoring import WindowError
    from modelport.analytics.report import ReportError
    from modelport.auth.throttle import ThrottleUnavailable
    from modelport.mlops.follow import WebhookRefused
    from modelport.serving.artifacts import StoreFull
    from modelport.serving.csvstream import TooLarge
    from modelport.serving.feedback import FeedbackError
    from modelport.serving.inference import PredictionFailed
    from modelport.serving.limits import BudgetSpent
    from modelport.serving.predictor import ModelNotFound, ModelNotReady
    from modelport.serving.records import CallerGone
    from modelport.serving.registry import RegistryError
    from modelport.serving.schema import InputError

    for domain_error in (
        ModelNotFound,
        ModelNotReady,
        BudgetSpent,
        InputError,
        PredictionFailed,
        TooLarge,
        CallerGone,
        RegistryError,
        DatasetError,
        StoreFull,
        ThrottleUnavailable,
        FeedbackError,
        WindowError,
        DriftError,
        ReportError,
        WebhookRefused,
    ):
        app.register_error_handler(domain_error, handle_domain_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    # Registered after Flask-SQLAlchemy's, so it runs before it (teardowns run last first).
    app.teardown_appcontext(close_session)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(SATimeoutError, handle_database_error)
    app.register_error_handler(OSError, handle_os_error)
    app.register_error_handler(Exception, handle_unexpected)
