"""The Flask class of ``create_app``: plain functions skip ``inspect``, coroutines do not."""

from __future__ import annotations

import functools

import pytest

from modelport.application import Modelport


def test_plain_functions_are_returned_as_they_are() -> None:
    app = Modelport(__name__)

    def view() -> str:
        return "ok"

    assert app.ensure_sync(view) is view
    bound = functools.partial(view)
    assert app.ensure_sync(bound) is bound  # not a function: asked the usual way


def test_coroutine_functions_still_go_through_flask() -> None:
    """A coroutine reaches Flask's own ``async_to_sync``, whether or not asgiref is installed."""
    app = Modelport(__name__)
    seen: list[object] = []

    def async_to_sync(func: object) -> str:
        seen.append(func)
        return "converted"

    app.async_to_sync = async_to_sync  # type: ignore[method-assign]

    async def view() -> str:
        return "ok"

    assert app.ensure_sync(view) == "converted"
    assert seen == [view]


@pytest.mark.parametrize("kind", ["generator", "lambda"])
def test_other_plain_callables_are_unchanged(kind: str) -> None:
    app = Modelport(__name__)

    def generator():  # noqa: ANN202
        yield 1

    func = generator if kind == "generator" else (lambda: 1)
    assert app.ensure_sync(func) is func
