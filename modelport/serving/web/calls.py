"""This request's prediction, as the prediction service takes it: one place that reads the
caller, the request id, the client's address and whether the hot path already counted the
budget, for every channel Flask answers (the pages, the JSON and CSV API, ``/v2``); and
the one place that runs a prediction's shadow after the response is sent."""

from __future__ import annotations

from flask import Response, after_this_request, g, request

from modelport.auth.web.identity import current_caller
from modelport.extensions import client_address
from modelport.serving import prediction
from modelport.serving.inference import Result
from modelport.serving.limits import COUNTED
from modelport.serving.prediction import Call


def request_call(
    name: str, channel: str, *, version: int | None = None, alias: str | None = None
) -> Call:
    """A prediction of this request with the model ``name`` on ``channel`` (a ``Source``);
    the service checks everything else."""
    return Call(
        current_caller(),
        name,
        channel,
        g.request_id,
        address=client_address(),
        version=version,
        alias=alias,
        counted=bool(request.environ.get(COUNTED)),
    )


def after_answer(result: Result) -> None:
    """Hand ``result``'s shadow run (if any) to the prediction service once this request's
    response has been sent: when the server closes it, so the caller never waits for it."""
    if result.shadow is None:
        return

    @after_this_request
    def _on_close(response: Response) -> Response:
        response.call_on_close(lambda: prediction.after_answer(result))
        return response
