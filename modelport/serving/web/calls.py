"""This request's prediction, as the prediction service takes it: one place that reads the
caller, the request id, the client's address and whether the hot path already counted the
budget, for every channel Flask answers (the pages, the JSON and CSV API, ``/v2``)."""

from __future__ import annotations

from flask import g, request

from modelport.auth.web.identity import current_caller
from modelport.extensions import client_address
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
