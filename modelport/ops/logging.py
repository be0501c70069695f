"""Structured logs: one JSON object per line, with the request id, never a secret."""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, has_request_context, request

from modelport.ops import request_log

SECURITY_LOGGER = "modelport.security"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Field names whose values are never written, whatever a caller passes.
_SECRET_FIELDS = {
    "password",
    "password2",
    "token",
    "secret",
    "cookie",
    "authorization",
    "csrf_token",
}


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line; json.dumps escapes newlines, so no log injection."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update({k: v for k, v in fields.items() if k not in _SECRET_FIELDS})
        if has_request_context():
            entry.setdefault("request_id", getattr(g, "request_id", None))
            entry.setdefault("ip", request.remote_addr)
            entry.setdefault("path", request.path)
            entry.setdefault("method", request.method)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            shown = {k: v for k, v in fields.items() if k not in _SECRET_FIELDS}
            base += " " + json.dumps(shown, default=str, ensure_ascii=False)
        return base


def request_id_for(incoming: str) -> str:
    """The caller's X-Request-ID if it is a sane token, else a new random id."""
    return incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex


def configure_logging(app: Flask) -> None:
    """Send the app's logs to stderr in the configured format."""
    settings = app.settings
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "text":
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    app.extensions["modelport_log_handler"] = handler  # ops.request_log writes through it too
    root = logging.getLogger("modelport")
    root.handlers = [handler]
    root.setLevel(settings.log_level.upper())
    # Propagate so that pytest's caplog and a host's own handlers see the records too.
    root.propagate = True
    app.logger.handlers = [handler]
    app.logger.setLevel(settings.log_level.upper())
    # Flask-Limiter says when its storage (Redis) fails and when it recovers; it logs to a
    # NullHandler of its own otherwise (docs/operations.md, "When Redis is down").
    limiter_log = logging.getLogger("flask-limiter")
    limiter_log.handlers = [handler]
    limiter_log.setLevel(settings.log_level.upper())

    @app.before_request
    def assign_request_id() -> None:
        g.request_id = rid = request_id_for(request.headers.get("X-Request-ID", ""))
        # For the request's log line and metrics (ops.request_log), written after Flask.
        environ = request.environ
        environ[request_log.REQUEST_ID] = rid
        rule = request.url_rule
        environ[request_log.ROUTE] = rule.rule if rule is not None else request_log.UNMATCHED

    @app.after_request
    def echo_request_id(response):  # noqa: ANN001, ANN202
        if rid := getattr(g, "request_id", None):
            response.headers["X-Request-ID"] = rid
        return response


def security_event(event: str, *, user_id: int | None = None, **fields: Any) -> None:
    """Log a security event (who, what, when in UTC, from where) as one structured line."""
    fields = {"event": event, "user_id": user_id, **fields}
    if has_request_context():
        fields.setdefault("ip", request.remote_addr)
        fields.setdefault("user_agent", request.user_agent.string[:200])
    logging.getLogger(SECURITY_LOGGER).info(event, extra={"fields": fields})
