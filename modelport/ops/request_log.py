"""One log line and the HTTP metrics for every request, the hot path's included.

``RequestLog`` is WSGI middleware around everything the application answers (the predict hot
path and Flask), inside the proxy fix, so the address it logs is the client's. It times a
request from the call into the application to the last byte handed to the server (a
streamed CSV answer is timed to its end), and then writes one line to the
``modelport.request`` logger and counts the request in ``modelport_http_requests_total`` and
``modelport_http_request_duration_seconds``.

What Flask or the hot path learn while answering reaches it through the environ: the route
template (``ROUTE``; a request no route matched is ``unmatched``), the request id
(``REQUEST_ID``) and the caller's user id once identified (``USER_ID``). The line never
carries a query string, a header or a body, so no token or password can reach it.

With ``MODELPORT_LOG_FORMAT=json`` the line is one JSON object: ``time`` (UTC), ``level``,
``logger``, ``message`` (``request``), ``request_id``, ``user_id``, ``method``, ``route``,
``path``, ``status``, ``latency_ms``, ``bytes``, ``ip``. With ``text`` (development) it is a
short line for people. gunicorn's own access log can then stay off, as it does by default.
The line goes through the ``modelport`` logger's handler like every other (the JSON
formatter passes it on as rendered, ``ops.logging``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Flask

from modelport.ops import metrics

ROUTE = "modelport.route"
REQUEST_ID = "modelport.request_id"
USER_ID = "modelport.user_id"
UNMATCHED = "unmatched"
LOGGER = "modelport.request"

_log = logging.getLogger(LOGGER)


class RequestLog:
    """WSGI middleware writing one line and counting each request; see the module's docstring."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], *, log: bool, json_lines: bool):
        self.wsgi_app = wsgi_app
        self.log = log
        self.render = _json_line if json_lines else _text_line

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        status: list[str] = []

        def respond(line: str, headers: list, exc_info: Any = None) -> Callable:
            status.append(line)
            return start_response(line, headers, exc_info)

        try:
            result = self.wsgi_app(environ, respond)
        except BaseException:
            status.append("500")
            self.finish(environ, started, status, 0)
            raise
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None and isinstance(result, wrapper):
            # A file the server sends itself (sendfile): wrapping it would make the server
            # copy it through Python instead. Timed to its first byte.
            self.finish(environ, started, status, None)
            return result
        return _Observed(self, result, environ, started, status)

    def finish(
        self, environ: dict[str, Any], started: float, status: list[str], size: int | None
    ) -> None:
        """Count and log a request whose answer is done (``size``: bytes sent, if known)."""
        seconds = time.perf_counter() - started
        code = status[-1][:3] if status else "000"  # 000: the client left before any answer
        route = environ.get(ROUTE) or UNMATCHED
        method = environ.get("REQUEST_METHOD", "")
        metrics.count_request(method, route, code, seconds)
        if self.log and _log.isEnabledFor(logging.INFO):
            _log.info(self.render(environ, method, route, code, seconds, size))


class _Observed:
    """The application's answer, passed through, counted and logged when the server closes it."""

    __slots__ = ("closed", "environ", "inner", "log", "sent", "started", "status")

    def __init__(
        self,
        log: RequestLog,
        inner: Iterable[bytes],
        environ: dict[str, Any],
        started: float,
        status: list[str],
    ) -> None:
        self.log = log
        self.inner = inner
        self.environ = environ
        self.started = started
        self.status = status
        self.sent = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if hasattr(self.inner, "close"):
                self.inner.close()
        finally:
            self.log.finish(self.environ, self.started, self.status, self.sent)


def _json_line(
    environ: dict[str, Any], method: str, route: str, status: str, seconds: float, size: int | None
) -> str:
    now = time.time()
    return json.dumps(
        {
            "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            "level": "INFO",
            "logger": LOGGER,
            "message": "request",
            "request_id": environ.get(REQUEST_ID),
            "user_id": environ.get(USER_ID),
            "method": method,
            "route": route,
            "path": environ.get("PATH_INFO", ""),
            "status": int(status),
            "latency_ms": round(seconds * 1000, 3),
            "bytes": size,
            "ip": environ.get("REMOTE_ADDR"),
        },
        ensure_ascii=False,
    )


def _text_line(
    environ: dict[str, Any], method: str, route: str, status: str, seconds: float, size: int | None
) -> str:
    user = environ.get(USER_ID)
    return (
        f"{environ.get('REMOTE_ADDR')} {method} {environ.get('PATH_INFO', '')} {status} "
        f"{size if size is not None else '-'}B {seconds * 1000:.1f}ms "
        f"user={user if user is not None else '-'} id={environ.get(REQUEST_ID)}"
    )


def wrap(app: Flask, wsgi_app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """``wsgi_app`` inside a ``RequestLog`` as the settings ask, or unchanged when neither
    the request log nor metrics are wanted."""
    settings = app.settings
    if not settings.request_log and not settings.metrics:
        return wsgi_app
    return RequestLog(wsgi_app, log=settings.request_log, json_lines=settings.log_format == "json")
