"""One log line and the HTTP metrics for every request, the hot path's included.

``RequestLog`` is WSGI middleware around everything the application answers (the predict hot
path and Flask), inside the proxy fix, so the address it logs is the client's. It times a
request from the call into the application to the last byte handed to the server (a
streamed CSV answer is timed to its end), and then writes one line and counts the request
in ``modelport_http_requests_total`` and ``modelport_http_request_duration_seconds``.

What Flask or the hot path learn while answering reaches it through the environ: the route
template (``ROUTE``; a request no route matched is ``unmatched``), the request id
(``REQUEST_ID``) and the caller's user id once identified (``USER_ID``). The line never
carries a query string, a header or a body, so no token or password can reach it.

With ``MODELPORT_LOG_FORMAT=json`` the line is one JSON object: ``time`` (UTC), ``level``,
``logger``, ``message`` (``request``), ``request_id``, ``user_id``, ``method``, ``route``,
``path``, ``status``, ``latency_ms``, ``bytes``, ``ip``. With ``text`` (development) it is a
short line for people. gunicorn's own access log can then stay off, as it does by default.
The line goes to the stream of the app's log handler (stderr, ``ops.logging``) while the
``modelport.request`` logger is enabled for INFO (``MODELPORT_LOG_LEVEL``). A request only
notes its fields; ``ops.flusher`` renders the lines and writes them, many at once, every
half second (under gunicorn between requests, so a long request delays them to its end; and
when a worker leaves): rendered and written mid-request, a line cost several times more,
and a LogRecord with a formatter more still.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from json.encoder import encode_basestring as _encode  # type: ignore[attr-defined]
from typing import Any, NamedTuple

from flask import Flask

from modelport.ops import flusher, metrics

ROUTE = "modelport.route"
REQUEST_ID = "modelport.request_id"
USER_ID = "modelport.user_id"
UNMATCHED = "unmatched"
LOGGER = "modelport.request"

_log = logging.getLogger(LOGGER)


class RequestLog:
    """WSGI middleware writing one line and counting each request; see the module's docstring."""

    def __init__(
        self,
        wsgi_app: Callable[..., Iterable[bytes]],
        *,
        handler: logging.Handler | None,
        json_lines: bool,
    ) -> None:
        self.wsgi_app = wsgi_app
        # Lines go straight to the stream of the app's log handler, under its lock: a
        # LogRecord and a formatter per request cost more than the rest of the line.
        self.handler = handler
        self.stream = getattr(handler, "stream", None)
        self.render = _json_line if json_lines else _text_line
        # Lines noted by requests, rendered and written by ops.flusher (in the background,
        # many at once): a line rendered and written mid-request cost several times more.
        self.notes: deque[Noted] = deque()
        flusher.register(self.flush)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        status: list[Any] = []  # the status line, then the headers

        def respond(line: str, headers: list, exc_info: Any = None) -> Callable:
            status[:] = line, headers
            return start_response(line, headers, exc_info)

        try:
            result = self.wsgi_app(environ, respond)
        except BaseException:
            self.finish(environ, started, ["500"], 0)
            raise
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None and isinstance(result, wrapper):
            # A file the server sends itself (sendfile): wrapping it would make the server
            # copy it through Python instead. Timed to its first byte.
            self.finish(environ, started, status, _length(status))
            return result
        return _Observed(self, result, environ, started, status)

    def finish(
        self, environ: dict[str, Any], started: float, status: list[Any], size: int | None
    ) -> None:
        """Count and note a request whose answer is done (``size``: bytes sent, if known)."""
        seconds = time.perf_counter() - started
        code = status[0][:3] if status else "000"  # 000: the client left before any answer
        route = environ.get(ROUTE) or UNMATCHED
        method = environ.get("REQUEST_METHOD", "")
        metrics.count_request(method, route, code, seconds)
        if self.stream is not None and _log.isEnabledFor(logging.INFO):
            self.notes.append(
                Noted(
                    time.time(),
                    environ.get(REQUEST_ID),
                    environ.get(USER_ID),
                    method,
                    route,
                    environ.get("PATH_INFO", ""),
                    code,
                    seconds,
                    size,
                    environ.get("REMOTE_ADDR"),
                )
            )
            flusher.ensure_running()

    def flush(self) -> None:
        """Render the lines noted so far and write them at once, under the handler's lock."""
        if not self.notes:
            return
        render = self.render
        text = "".join(render(self.notes.popleft()) for _ in range(len(self.notes)))
        self.handler.acquire()
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or full log stream must not stop the server
        finally:
            self.handler.release()


class _Observed:
    """The application's answer, passed through; counted and logged once its last byte is
    handed over, or when the server closes it (a client that left early)."""

    __slots__ = ("done", "environ", "inner", "log", "sent", "started", "status")

    def __init__(
        self,
        log: RequestLog,
        inner: Iterable[bytes],
        environ: dict[str, Any],
        started: float,
        status: list[Any],
    ) -> None:
        self.log = log
        self.inner = inner
        self.environ = environ
        self.started = started
        self.status = status
        self.sent: int | None = None
        self.done = False

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self.inner:
            sent += len(chunk)
            yield chunk
        self.sent = sent
        self._done()  # the last byte is out; a server closes it next, a test may not

    def close(self) -> None:
        try:
            if hasattr(self.inner, "close"):
                self.inner.close()
        finally:
            self._done()

    def _done(self) -> None:
        if not self.done:
            self.done = True
            sent = self.sent if self.sent is not None else _length(self.status)
            self.log.finish(self.environ, self.started, self.status, sent)


def _length(status: list[Any]) -> int | None:
    """The answer's Content-Length, if it has one."""
    if len(status) > 1:
        for name, value in status[1]:
            if name.lower() == "content-length":
                return int(value)
    return None


_second: list[Any] = [None, ""]  # the second last formatted, and its text


def _utc(now: float) -> str:
    """A time in UTC, ISO 8601 to the millisecond (the date part made once a second)."""
    second = int(now)
    if _second[0] != second:
        _second[0] = second
        _second[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_second[1]}.{int((now - second) * 1000):03d}+00:00"


class Noted(NamedTuple):
    """What a request's line says, noted when its answer is done."""

    time: float
    request_id: str | None
    user_id: int | None
    method: str
    route: str
    path: str
    status: str
    seconds: float
    size: int | None
    ip: str | None


def _json_line(n: Noted) -> str:
    # Written out by hand, as json.dumps would (a test compares the two): every text that a
    # client can choose goes through the JSON string encoder.
    return (
        f'{{"time": "{_utc(n.time)}", "level": "INFO", "logger": "{LOGGER}", '
        f'"message": "request", "request_id": {_text(n.request_id)}, '
        f'"user_id": {"null" if n.user_id is None else int(n.user_id)}, '
        f'"method": {_text(n.method)}, "route": {_text(n.route)}, "path": {_text(n.path)}, '
        f'"status": {int(n.status)}, "latency_ms": {n.seconds * 1000:.3f}, '
        f'"bytes": {"null" if n.size is None else n.size}, "ip": {_text(n.ip)}}}\n'
    )


def _text(value: str | None) -> str:
    return "null" if value is None else _encode(value)


def _text_line(n: Noted) -> str:
    user = n.user_id if n.user_id is not None else "-"
    size = n.size if n.size is not None else "-"
    return (
        f"{_utc(n.time)} {n.ip} {n.method} {_encode(n.path)[1:-1]} {n.status} {size}B "
        f"{n.seconds * 1000:.1f}ms user={user} id={n.request_id}\n"
    )


def wrap(app: Flask, wsgi_app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """``wsgi_app`` inside a ``RequestLog`` as the settings ask, or unchanged when neither
    the request log nor metrics are wanted."""
    settings = app.settings
    if not settings.request_log and not settings.metrics:
        return wsgi_app
    handler = app.extensions["modelport_log_handler"] if settings.request_log else None
    log = RequestLog(wsgi_app, handler=handler, json_lines=settings.log_format == "json")
    app.extensions["modelport_request_log"] = log
    return log
