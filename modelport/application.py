"""The Flask class the factory builds: Flask, with its per-call overheads trimmed."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import FunctionType
from typing import Any

from flask import Flask

_ASYNC_FLAGS = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


class Modelport(Flask):
    """Flask, answering ``ensure_sync`` for plain functions without ``inspect``.

    Flask asks ``ensure_sync`` about every hook, view and decorator layer of every request
    (26 times for a prediction), and ``inspect.iscoroutinefunction`` unwraps each one: about
    a twentieth of a prediction's time. A plain ``def`` function shows it is not a coroutine
    in its code flags; anything else (bound methods, partials, ``async def``) goes the usual
    way, so async views still work.
    """

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if type(func) is FunctionType and not func.__code__.co_flags & _ASYNC_FLAGS:
            return func
        return super().ensure_sync(func)
