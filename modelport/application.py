"""The Flask class the factory builds: Flask, with its per-call overheads trimmed."""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable
from types import FunctionType
from typing import IO, Any

from flask import Flask, Request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property

from modelport.config import Settings

_ASYNC_FLAGS = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


class CappedBody(io.RawIOBase):
    """A request body of unknown length (chunked), refused with 413 once it passes ``limit``.

    Werkzeug stops reading such a body at the limit and hands on what it read, so a JSON
    body over the limit arrived cut and was refused as invalid JSON (400), where a body
    with a ``Content-Length`` over the limit gets 413. A body of exactly ``limit`` bytes
    is read whole.
    """

    def __init__(self, source: IO[bytes], limit: int) -> None:
        super().__init__()
        self.source = source
        self.limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # One byte more than the limit allows is enough to know the body is too large.
        wanted = min(len(buffer), self.limit + 1 - self.count)
        data = self.source.read(wanted) if wanted > 0 else b""
        self.count += len(data)
        if self.count > self.limit:
            raise RequestEntityTooLarge()
        buffer[: len(data)] = data
        return len(data)


class ModelportRequest(Request):
    """Flask's request, with a chunked body over the route's limit refused as 413."""

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        if (
            limit is not None
            and self.content_length is None
            and self.environ.get("wsgi.input_terminated")
        ):
            return io.BufferedReader(CappedBody(self.environ["wsgi.input"], limit))
        return super().stream


class Modelport(Flask):
    """Flask, answering ``ensure_sync`` for plain functions without ``inspect``.

    Flask asks ``ensure_sync`` about every hook, view and decorator layer of every request
    (26 times for a prediction), and ``inspect.iscoroutinefunction`` unwraps each one: about
    a twentieth of a prediction's time. A plain ``def`` function shows it is not a coroutine
    in its code flags; anything else (bound methods, partials, ``async def``) goes the usual
    way, so async views still work.
    """

    request_class = ModelportRequest
    # Every MODELPORT_* setting, typed (``config.current_settings()`` reads it).
    settings: Settings

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if type(func) is FunctionType and not func.__code__.co_flags & _ASYNC_FLAGS:
            return func
        return super().ensure_sync(func)
