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
    app = Modelport(__name__)

    async def view() -> str:
        return "ok"

    try:
        wrapped = app.ensure_sync(view)
    except RuntimeError as exc:  # Flask without its "async" extra says so
        assert "async" in str(exc)
    else:
        assert wrapped is not view
        assert wrapped() == "ok"


@pytest.mark.parametrize("kind", ["generator", "lambda"])
def test_other_plain_callables_are_unchanged(kind: str) -> None:
    app = Modelport(__name__)

    def generator():  # noqa: ANN202
        yield 1

    func = generator if kind == "generator" else (lambda: 1)
    assert app.ensure_sync(func) is func
