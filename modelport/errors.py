"""Errors are data: every error a client can cause is a clear 4xx, never a traceback.

``/api/...`` answers ``{"error": {"code", "message", "details"}}``; ``/v2/...`` keeps the
inference protocol's ``{"error": "message"}``; pages render ``error.html`` with the message.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from modelport.extensions import db, login_manager

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
}


class ApiError(HTTPException):
    """An error raised by API code with a machine-readable code and details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = status
        self.error_code = code
        self.details = details


def _wants_api(path: str) -> bool:
    return path.startswith("/api/") or path == "/api"


def _wants_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


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
            for message in node:
                details.append(
                    {
                        "row": None,
                        "field": ".".join(path) or None,
                        "code": "invalid",
                        "message": message,
                    }
                )
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, [*path, str(index)])
        else:
            details.append(
                {
                    "row": None,
                    "field": ".".join(path) or None,
                    "code": "invalid",
                    "message": str(node),
                }
            )

    for location, fields in messages.items():
        # webargs nests by location (json, query, form, headers); the location is not a field.
        walk(
            fields,
            []
            if location in {"json", "query", "form", "headers", "files", "view_args"}
            else [location],
        )
    return details


def _message(error: HTTPException) -> str:
    if isinstance(error, RateLimitExceeded):
        return _("Too many requests: %(limit)s. Try again later.", limit=error.description)
    if isinstance(error, CSRFError):
        return _(
            "The form expired or came from another site (CSRF check failed). Reload the page and try again."
        )
    if error.code == 413:
        return _("The request body is too large.")
    if error.code == 500:
        return _("Something went wrong on our side. The error was logged.")
    return str(error.description or error.name)


def _code(error: HTTPException) -> str:
    if isinstance(error, CSRFError):
        return "csrf_failed"
    return getattr(error, "error_code", None) or CODES.get(error.code or 500, "error")


def error_response(error: HTTPException) -> Response | tuple[Any, int]:
    """Render ``error`` in the caller's format with the right status and headers."""
    status = error.code or 500
    if getattr(error, "error_code", None) in {
        "invalid_token",
        "unauthorized",
        "invalid_credentials",
    }:
        # Identity failed while resolving the caller: show the error page as anonymous.
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
        response = Response(
            render_template("error.html", status=status, message=message), mimetype="text/html"
        )
    response.status_code = status
    response.headers.update(headers)
    return response


def handle_http_exception(error: HTTPException) -> Response | tuple[Any, int]:
    db.session.rollback()
    return error_response(error)


def handle_unexpected(error: Exception) -> Response | tuple[Any, int]:
    """The last resort: log with the request id, answer a generic 500, commit nothing."""
    db.session.rollback()
    log.exception("unhandled error", extra={"fields": {"request_id": g.get("request_id")}})
    return error_response(InternalServerError())


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
