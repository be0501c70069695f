"""The hot path of ``POST /api/v1/models/<ref>/predict``: a program's ordinary prediction,
answered without Flask's per-request machinery.

A prediction from a program (a Bearer token, a small JSON body, a JSON answer) is the
request Modelport serves most, and the model itself is the smallest part of its cost: a
compiled model answers in about 15 µs, while a request context, the session and
identity hooks, URL matching and the response object cost many times that. This WSGI
middleware answers that one request directly through the same prediction service as the
view (``modelport.serving.prediction.predict``: resolve → access → budget → validate →
compute → record) and hands everything else to Flask, unchanged:

* any other path, method, query string, cookie, content type, ``Accept``, or a body over
  ``FAST_BODY_LIMIT`` bytes or without a length;
* a token this worker has not checked in the last ``MODELPORT_TOKEN_CACHE_SECONDS`` (Flask
  checks it in the database and remembers it);
* every refusal and failure the service raises: a model the token may not use, a spent
  budget, invalid JSON or inputs, a model that fails, a database error. Flask then answers
  it in full, in the caller's language, from a copy of the body. The budget is counted once
  per request (``COUNTED``), and a record the hot path made is dropped before Flask runs.

The record waits in a ``RecordGroup`` until the server asks for the answer's first bytes
(``_Answer``): a worker holding several answers hands them one group (``GROUP`` in the
environ, ``modelport.ops.worker``) and their records commit together; any other server gets
a group per request. Should the record fail, Flask answers the request from the start (the
database's 503, a revoked token's 401). Why each request went to Flask is counted by reason
(``PredictionFastPath.fallbacks``).
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Flask, g

from modelport.api.parser import JsonBodyError, parse_json_body
from modelport.api.predict import inputs_from_body, prediction_json
from modelport.auth import token_cache
from modelport.auth.caller import Caller, Credential
from modelport.errors import ApiError
from modelport.models.predictions import Source
from modelport.ops import metrics, request_log
from modelport.ops.logging import request_id_for
from modelport.serving import prediction
from modelport.serving.inference import PredictionFailed, Result
from modelport.serving.limits import COUNTED, BudgetSpent
from modelport.serving.predictor import ModelNotFound, ModelNotReady
from modelport.serving.records import RecordGroup
from modelport.serving.schema import InputError

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
# Flask's views for the requests answered here: by reference, and by version number.
PREDICT_ENDPOINTS = ("api_models.predict", "api_models.predict_version")
# The environ key under which a server hands the hot path the RecordGroup its answer joins.
GROUP = "modelport.record_group"

# Why a request the hot path took was answered by Flask after all.
_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (ModelNotFound, "model_not_found"),
    (ModelNotReady, "model_not_ready"),
    (BudgetSpent, "budget_spent"),
    (JsonBodyError, "invalid_json"),
    (ApiError, "invalid_body"),
    (InputError, "invalid_input"),
    (PredictionFailed, "prediction_failed"),
)


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
    """This request is Flask's to answer; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PredictionFastPath:
    """WSGI middleware answering ordinary token predictions; see the module's docstring."""

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.body_limit = min(FAST_BODY_LIMIT, app.config["MAX_CONTENT_LENGTH"] or FAST_BODY_LIMIT)
        self.answered = 0  # requests answered here, for tests and diagnostics
        self.fallbacks: Counter[str] = Counter()  # requests handed to Flask, by reason
        # The route templates of Flask's predict views, for the request log and metrics:
        # [without, with] a version in the path.
        rules = {rule.endpoint: rule.rule for rule in app.url_map.iter_rules()}
        self.routes = (rules[PREDICT_ENDPOINTS[0]], rules[PREDICT_ENDPOINTS[1]])
        app.extensions["modelport_fast_path"] = self

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        match = _match(environ, self.body_limit)
        if match is None:
            return self.wsgi_app(environ, start_response)
        length = int(environ["CONTENT_LENGTH"])
        body = environ["wsgi.input"].read(length)
        group = environ.get(GROUP) or RecordGroup()
        try:
            if len(body) != length:
                raise Fallback("short_body")
            with self.app.app_context():
                call, result = self._predict(environ, match, body, group)
        except Fallback as fallback:
            self.fallback(fallback.reason)
            return self._to_flask(environ, start_response, body)
        return _Answer(self, environ, start_response, body, call, result, group)

    def fallback(self, reason: str) -> None:
        """Count a request handed to Flask, for ``reason``."""
        self.fallbacks[reason] += 1
        metrics.count_fallback(reason)

    def _to_flask(
        self, environ: dict[str, Any], start_response: Callable, body: bytes
    ) -> Iterable[bytes]:
        # Flask reads the same bytes again (a short body stays short, as it arrived).
        environ["wsgi.input"] = io.BytesIO(body)
        return self.wsgi_app(environ, start_response)

    def _predict(
        self, environ: dict[str, Any], match: re.Match, body: bytes, group: RecordGroup
    ) -> tuple[prediction.Call, Result]:
        remembered = token_cache.recall(environ["HTTP_AUTHORIZATION"][7:].strip())
        if remembered is None:
            raise Fallback("token_not_remembered")
        token, user = remembered
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        g.request_id = request_id
        version = match["version"]
        # What Flask's hooks would tell the request log (Flask's own, should it answer).
        environ[request_log.ROUTE] = self.routes[version is not None]
        environ[request_log.REQUEST_ID] = request_id
        environ[request_log.USER_ID] = user.id
        call = prediction.Call(
            Caller(user.id, user.role, Credential.TOKEN, token),
            match["name"],
            Source.API,
            request_id,
            version=int(version) if version else None,
            alias=match["alias"],
            tentative=True,
        )
        queued = len(group.pending)
        try:
            result = prediction.predict(
                call,
                lambda _served: inputs_from_body(parse_json_body(body)),
                max_rows=self.app.settings.max_batch_rows,
                group=group,
            )
        except Exception as exc:
            # Flask answers from the start, recording what it answers itself (the failure
            # of a model, say), not what was queued here.
            del group.pending[queued:]
            reason = next((name for kind, name in _REASONS if isinstance(exc, kind)), "error")
            raise Fallback(reason) from None
        finally:
            # Should Flask answer after all (now, or when the record fails), it does not
            # count the budget again.
            environ[COUNTED] = call.counted
        return call, result


class _Answer:
    """The hot path's answer, a WSGI iterable: nothing is sent before its record commits.

    The record waits in its group until the server asks for the first bytes. A server that
    calls the application for several waiting connections before sending any answer, with
    one group (``modelport.ops.worker``), so commits their records together; any other
    server commits each on its own, as if it had been written in ``_predict``. Should the
    record fail, Flask answers the request from the start, as for any other failure: a
    database that is down gets its 503, a token deleted meanwhile its 401.
    """

    def __init__(
        self,
        path: PredictionFastPath,
        environ: dict[str, Any],
        start_response: Callable,
        body: bytes,
        call: prediction.Call,
        result: Result,
        group: RecordGroup,
    ) -> None:
        self.path = path
        self.environ = environ
        self.start_response = start_response
        self.body = body
        self.call = call
        self.result = result
        self.group = group
        self.sent = False  # this answer, not Flask's, went out

    def _commit(self) -> None:
        pending = self.result.pending
        if pending is not None and not pending.done:
            with self.path.app.app_context():
                self.group.commit()

    def __iter__(self) -> Iterator[bytes]:
        self._commit()
        pending = self.result.pending
        if pending is not None and (pending.error is not None or not pending.done):
            self.path.fallback("record_failed")
            inner = self.path._to_flask(self.environ, self.start_response, self.body)
            try:
                yield from inner
            finally:
                if hasattr(inner, "close"):
                    inner.close()
            return
        if pending is not None:
            self.result.record_id = pending.record_id
        request_id = self.call.request_id
        payload = prediction_json(self.result, request_id).encode("utf-8")
        self.path.answered += 1
        prediction.count_answer(self.call, self.result)
        self.start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                ("X-Request-ID", request_id),
            ],
        )
        self.sent = True
        yield payload

    def close(self) -> None:
        # Never asked for its bytes (the server gave up on the client): the prediction was
        # made all the same, so it is recorded all the same.
        self._commit()
        if self.sent and self.result.shadow is not None:
            # The server has written the answer: its shadow run, if it has one, may start.
            prediction.after_answer(self.result)
