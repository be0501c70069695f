"""The hot path of ``POST /api/v1/models/<ref>/predict``: a program's ordinary prediction,
answered without Flask's per-request machinery.

A prediction from a program (a Bearer token, a small JSON body, a JSON answer) is the
request Modelport serves most, and the model itself is the smallest part of its cost: a
compiled model answers in about 15 µs, while a request context, the session and
identity hooks, URL matching and the response object cost many times that. This WSGI
middleware answers that one request directly with the same service functions as the view
(token cache, registry cache, body rules, schema validation, prediction budget, inference
and records) and hands everything else to Flask, unchanged:

* any other path, method, query string, cookie, content type, ``Accept``, or a body over
  ``FAST_BODY_LIMIT`` bytes or without a length;
* a token this worker has not checked in the last ``MODELPORT_TOKEN_CACHE_SECONDS`` (Flask
  checks it in the database and remembers it), or a model or version it cannot use;
* every refusal and failure: invalid JSON or inputs, warnings about the inputs, a budget
  that is spent, a model that fails, a database error. Flask then answers it in full, in
  the caller's language, from a copy of the body.

Side effects come last and in the view's order: the budget is counted once the inputs are
valid and the model has answered, then the record is committed, then the answer is sent.
The commit waits until the server asks for the answer's first bytes (``_Answer``), so that
a worker holding several answers commits their records together (``modelport.ops.worker``).
Past the budget nothing falls back except a refusal (Flask counts the refused request once
more, which changes nothing) and a failed record write (Flask starts over without counting
the budget again, and answers the database error or the revoked token as the view does).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Flask, g

from modelport.api.models import inputs_from_body, prediction_json
from modelport.api.parser import parse_json_body
from modelport.auth import token_cache
from modelport.auth.caller import Caller, Credential
from modelport.models.predictions import Source
from modelport.ops.logging import request_id_for
from modelport.serving.access import may_use
from modelport.serving.inference import Result, compute, finish
from modelport.serving.limits import COUNTED, count_prediction
from modelport.serving.predictor import resolve
from modelport.serving.records import flush_pending
from modelport.serving.schema import validate_inputs

# The registry's name and alias patterns; anything else (percent-escapes, a trailing slash)
# is Flask's to route.
_PREDICT_PATH = re.compile(
    r"^/api/v1/models/(?P<name>[a-z0-9][a-z0-9_-]{0,63})(?:@(?P<alias>[a-z][a-z0-9_-]{0,39}))?"
    r"(?:/versions/(?P<version>[1-9][0-9]{0,8}))?/predict$"
)
_JSON_TYPES = {
    "application/json",
    "application/json; charset=utf-8",
    "application/json;charset=utf-8",
}
_JSON_ACCEPTS = {"", "*/*", "application/json"}
# Larger bodies are batches, where the request's fixed cost does not matter.
FAST_BODY_LIMIT = 64 * 1024


def _match(environ: dict[str, Any], body_limit: int) -> re.Match | None:
    if (
        environ.get("REQUEST_METHOD") != "POST"
        or environ.get("QUERY_STRING")
        or "HTTP_COOKIE" in environ
        or environ.get("CONTENT_TYPE", "").lower() not in _JSON_TYPES
        or environ.get("HTTP_ACCEPT", "") not in _JSON_ACCEPTS
        or environ.get("HTTP_AUTHORIZATION", "")[:7].lower() != "bearer "
    ):
        return None
    length = environ.get("CONTENT_LENGTH", "")
    if not length.isdigit() or not 0 < int(length) <= body_limit:
        return None
    return _PREDICT_PATH.match(environ.get("PATH_INFO", ""))


def may_answer(environ: dict[str, Any]) -> bool:
    """Whether the hot path takes this request (it may still hand it to Flask): a request
    whose answer costs a small prediction at most (``modelport.ops.worker``)."""
    return _match(environ, FAST_BODY_LIMIT) is not None


class Fallback(Exception):
    """This request is Flask's to answer."""


class PredictionFastPath:
    """WSGI middleware answering ordinary token predictions; see the module's docstring."""

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.body_limit = min(FAST_BODY_LIMIT, app.config["MAX_CONTENT_LENGTH"] or FAST_BODY_LIMIT)
        self.answered = 0  # requests answered here, for tests and diagnostics
        app.extensions["modelport_fast_path"] = self

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        match = self._eligible(environ)
        if match is None:
            return self.wsgi_app(environ, start_response)
        length = int(environ["CONTENT_LENGTH"])
        body = environ["wsgi.input"].read(length)
        answer = None
        if len(body) == length:
            try:
                with self.app.app_context():
                    answer = self._predict(environ, match, body)
            except Fallback:
                pass
        if answer is None:
            return self._to_flask(environ, start_response, body)
        return _Answer(self, environ, start_response, body, *answer)

    def _to_flask(
        self, environ: dict[str, Any], start_response: Callable, body: bytes
    ) -> Iterable[bytes]:
        # Flask reads the same bytes again (a short body stays short, as it arrived).
        environ["wsgi.input"] = io.BytesIO(body)
        return self.wsgi_app(environ, start_response)

    def _eligible(self, environ: dict[str, Any]) -> re.Match | None:
        return _match(environ, self.body_limit)

    def _predict(self, environ: dict[str, Any], match: re.Match, body: bytes) -> tuple[str, Result]:
        remembered = token_cache.recall(environ["HTTP_AUTHORIZATION"][7:].strip())
        if remembered is None:
            raise Fallback
        token, user = remembered
        version = match["version"]
        try:
            served = resolve(
                match["name"], version=int(version) if version else None, alias=match["alias"]
            )
            caller = Caller(user.id, user.role, Credential.TOKEN, token)
            if not may_use(caller, served.visibility, Source.API):
                raise Fallback
            inputs = inputs_from_body(parse_json_body(body))
            settings = self.app.config["MODELPORT"]
            batch = validate_inputs(served.schema, inputs, settings["MAX_BATCH_ROWS"])
            if batch.warnings:
                raise Fallback
            computed = compute(served, batch)
            count_prediction(user.id, None)
            environ[COUNTED] = True  # should the view answer after all, not twice
            request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
            g.request_id = request_id
            result = finish(
                served,
                batch,
                computed,
                source=Source.API.value,
                request_id=request_id,
                caller=(user.id, token.id),
                defer=True,
            )
        except Exception:
            raise Fallback from None
        return request_id, result


class _Answer:
    """The hot path's answer, a WSGI iterable: nothing is sent before its record commits.

    The record waits in ``records``' queue until the server asks for the first bytes. A
    server that calls the application for several waiting connections before sending any
    answer (``modelport.ops.worker``) so commits their records together; any other server
    commits each on its own, as if it had been written in ``_predict``. Should the record
    fail, Flask answers the request from the start, as for any other failure: a database
    that is down gets its 503, a token deleted meanwhile its 401.
    """

    def __init__(
        self,
        path: PredictionFastPath,
        environ: dict[str, Any],
        start_response: Callable,
        body: bytes,
        request_id: str,
        result: Result,
    ) -> None:
        self.path = path
        self.environ = environ
        self.start_response = start_response
        self.body = body
        self.request_id = request_id
        self.result = result

    def _commit(self) -> None:
        pending = self.result.pending
        if pending is not None and not pending.done:
            with self.path.app.app_context():
                flush_pending()

    def __iter__(self) -> Iterator[bytes]:
        self._commit()
        pending = self.result.pending
        if pending is not None and (pending.error is not None or not pending.done):
            inner = self.path._to_flask(self.environ, self.start_response, self.body)
            try:
                yield from inner
            finally:
                if hasattr(inner, "close"):
                    inner.close()
            return
        if pending is not None:
            self.result.record_id = pending.record_id
        payload = prediction_json(self.result, self.request_id).encode("utf-8")
        self.path.answered += 1
        self.start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                ("X-Request-ID", self.request_id),
            ],
        )
        yield payload

    def close(self) -> None:
        # Never asked for its bytes (the server gave up on the client): the prediction was
        # made all the same, so it is recorded all the same.
        self._commit()
