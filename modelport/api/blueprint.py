"""The API's Blueprint: strict argument parsing and documented error responses."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from flask_smorest import Blueprint as SmorestBlueprint

from modelport.api.parser import parser

# Any call can be refused for these reasons, whatever the operation does.
COMMON_ERRORS = (400, 401, 403, 429)


class Blueprint(SmorestBlueprint):
    """flask-smorest's Blueprint reading bodies with ``ApiParser``."""

    ARGUMENTS_PARSER = parser

    def errors(self, *statuses: int) -> Callable[[Callable], Callable]:
        """Document ``statuses`` (and the common ones) with the error schema of docs/api.md."""

        def decorator(view: Callable) -> Callable:
            for status in sorted({*COMMON_ERRORS, *statuses}):
                # flask-smorest registers one response component per HTTP status, each
                # with Api.ERROR_SCHEMA as its body.
                view = self.alt_response(status, response=HTTPStatus(status).name)(view)
            return view

        return decorator

    @staticmethod
    def doc_only(*decorators: Callable[[Callable], Callable]) -> Callable[[Callable], Callable]:
        """The OpenAPI documentation of flask-smorest decorators, without their wrappers.

        ``response``, ``alt_response`` (``errors``) and ``doc`` each wrap the view in a layer
        that runs on every call; a view that builds its own ``Response`` needs none of them,
        and a prediction endpoint notices ten. The view is registered as written, carrying the
        documentation that ``decorators`` (outermost first) would have given it.
        """

        def decorator(view: Callable) -> Callable:
            documented = view
            for apply in reversed(decorators):
                documented = apply(documented)
            # flask-smorest's private attribute; guarded by tests/test_upstream.py.
            view._apidoc = documented._apidoc  # type: ignore[attr-defined]
            return view

        return decorator


def csv_200(schema: type) -> dict:
    """A 200 response documented as JSON (``schema``) or the same data as CSV."""
    return {
        "200": {
            "content": {
                "application/json": {"schema": schema},
                "text/csv": {"schema": {"type": "string"}},
            }
        }
    }
