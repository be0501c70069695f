"""Strict JSON bodies for the API: malformed input is a clear 4xx, never a 500.

Python's ``json.loads`` accepts ``NaN`` and ``Infinity``, lets a repeated key silently win,
and raises ``RecursionError`` on very deep nesting; webargs reads a body sent with another
Content-Type as "no body at all". Each of those is refused here with its own message.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Request
from flask.json.provider import DefaultJSONProvider
from flask_babel import gettext as _
from marshmallow import Schema
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from modelport.errors import ApiError


class JsonBodyError(ValueError):
    """A body that is not acceptable JSON; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise JsonBodyError(_("%(name)s is not a JSON number; send a finite number.", name=name))


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JsonBodyError(
                _("The key %(key)s appears twice in one object.", key=json.dumps(key))
            )
        result[key] = value
    return result


def parse_json_body(data: bytes) -> Any:
    """Decode a request body as strict JSON: UTF-8, finite numbers, unique keys."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonBodyError(_("The body is not valid UTF-8.")) from None
    try:
        return json.loads(
            text, parse_constant=_refuse_constant, object_pairs_hook=_refuse_duplicates
        )
    except json.JSONDecodeError as exc:
        raise JsonBodyError(
            _(
                "The body is not valid JSON: %(reason)s.",
                reason=f"{exc.msg} at line {exc.lineno}, column {exc.colno}",
            )
        ) from None
    except RecursionError:
        raise JsonBodyError(_("The JSON is nested too deeply.")) from None
    except JsonBodyError:
        raise
    except ValueError:
        # Python refuses to convert integers of more than 4,300 digits (a guard against
        # quadratic-time parsing); no feature or field needs such a number.
        raise JsonBodyError(
            _("The body holds a number with too many digits; send at most 4,300.")
        ) from None


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, reading as strictly as ``parse_json_body``.

    ``request.get_json()`` turns a ``ValueError`` into a 400 but lets ``RecursionError``
    through as a 500; here every refusal is a ``ValueError`` with a readable reason.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if isinstance(s, str):
            s = s.encode("utf-8")
        try:
            return parse_json_body(s)
        except JsonBodyError as exc:
            raise ValueError(str(exc)) from None


def _body_error(status: int, code: str, message: str) -> ApiError:
    return ApiError(
        status, code, message, [{"row": None, "field": None, "code": code, "message": message}]
    )


class ApiParser(FlaskParser):
    """webargs' Flask parser with strict JSON bodies and a required JSON Content-Type."""

    # webargs' internal hook of load_json; guarded by tests/test_upstream.py.
    def _raw_load_json(self, req: Request) -> Any:
        data = req.get_data(cache=True)
        # A form body may already have been parsed (the CSRF check reads form fields), which
        # empties the raw data: it is still a body in the wrong format, not a missing one.
        if not is_json_request(req) and (data or req.form or req.files):
            raise _body_error(
                400,
                "invalid_content_type",
                _("Send the body as JSON with Content-Type: application/json."),
            )
        if not data:
            return core.missing
        try:
            return parse_json_body(data)
        except JsonBodyError as exc:
            raise _body_error(400, "invalid_json", str(exc)) from None

    def load_json(self, req: Request, schema: Schema) -> Any:
        data = super().load_json(req, schema)
        if data is not core.missing and not schema.many and not isinstance(data, dict):
            raise _body_error(422, "invalid_type", _("The body must be a JSON object."))
        return data


parser = ApiParser()
