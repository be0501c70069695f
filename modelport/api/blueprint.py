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
        """Document ``statuses`` (and the common ones) with the error schema of DESIGN.md."""

        def decorator(view: Callable) -> Callable:
            for status in sorted({*COMMON_ERRORS, *statuses}):
                # flask-smorest registers one response component per HTTP status, each
                # with Api.ERROR_SCHEMA as its body.
                view = self.alt_response(status, response=HTTPStatus(status).name)(view)
            return view

        return decorator
