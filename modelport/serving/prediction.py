"""One prediction, whichever way it comes in: the model page's form, the JSON API, a CSV
upload, the inference protocol (``/v2``) or the predict hot path.

``predict`` (and ``predict_csv`` for a whole CSV file) takes the steps in one order:
resolve the model reference → check the caller's access → count the caller's budget →
read and validate the inputs → compute → record. Each step raises a domain error
(``ModelNotFound``, ``ModelNotReady``, ``BudgetSpent``, ``InputError``, ``PredictionFailed``,
``CallerGone``); the channels parse their own input and render the result, or the error, in
their own format (``modelport.errors`` maps errors to HTTP). A request refused at any step
before "compute" runs no model.

``admit`` is where the version a request gets is chosen: the version or alias it names,
else the model's route (``serving.variants``): the champion, or the challenger for the
canary share of callers, sticky per caller; ``predict`` then leaves a shadow run for a share
of those requests in ``Result.shadow``, which the channel hands to ``after_answer`` once the
answer is out (CSV uploads are not shadowed). Every prediction passes ``predict`` or
``predict_csv``, where its outcome is counted (``modelport_predictions_total``, by the
record outcomes and ``inference.THROTTLED``) once the model is known: a request for a model that
does not exist or that the caller may not use is counted by the HTTP metrics only, so that
made-up names cannot grow the label set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from flask import current_app

from modelport.auth.caller import Caller
from modelport.models.predictions import Outcome
from modelport.serving import access, csvstream, variants
from modelport.serving.inference import THROTTLED, PredictionFailed, Result, count_outcome, run
from modelport.serving.limits import BudgetSpent, spend_budget
from modelport.serving.predictor import Served
from modelport.serving.records import RecordGroup
from modelport.serving.records import recording_enabled as records_enabled
from modelport.serving.schema import validate_inputs
from modelport.serving.variants import ShadowJob


@dataclass
class Call:
    """Who asks which model for a prediction, through which channel (a ``Source``)."""

    caller: Caller
    name: str
    channel: str
    request_id: str
    address: str | None = None  # the client's address: an anonymous caller's budget
    version: int | None = None
    alias: str | None = None
    counted: bool = False  # the budget allowed this request already (counted once)
    # The hot path's call: Flask may still answer it (and count it then), so its outcome is
    # counted by the hot path once its answer goes out (``count_answer``).
    tentative: bool = False
    shadow: Served | None = None  # set by ``admit``: the version this request also runs on

    @property
    def caller_ids(self) -> tuple[int | None, int | None]:
        """(user id, token id) for the record."""
        return self.caller.user_id, self.caller.token_id


def admit(call: Call) -> Served:
    """Resolve → access → budget: the version ``call`` gets, its budget counted.

    A version or alias named is what the call gets; naming neither, the model's champion,
    or its challenger for the canary share of callers (``variants.choose``)."""
    if call.version is None and call.alias is None:
        route = access.route_for(call.caller, call.name, channel=call.channel)
        served = variants.choose(route, call.caller, call.address)
        call.shadow = variants.shadow_for(route)
    else:
        served = access.served_for(
            call.caller, call.name, channel=call.channel, version=call.version, alias=call.alias
        )
    if not call.counted:
        try:
            spend_budget(call.caller, call.address)
        except BudgetSpent:
            _count(call, served, THROTTLED, 0)
            raise
        call.counted = True  # allowed: whoever answers this request does not count it again
    return served


def _count(call: Call, served: Served, outcome: str, rows: int) -> None:
    if not call.tentative:
        count_outcome(served, call.channel, outcome, rows)


def count_answer(call: Call, result: Result) -> None:
    """Count the answer to a tentative call (the hot path's), once it has gone out."""
    count_outcome(result.served, call.channel, Outcome.OK, len(result.predictions))


def predict(
    call: Call,
    read: Callable[[Served], Any],
    *,
    max_rows: int,
    group: RecordGroup | None = None,
) -> Result:
    """Predict once: ``admit``, then ``read(served)`` gives the inputs (a row, rows or
    columns; the channel parses its body, knowing the version's schema), which are validated,
    computed and recorded, in that order. ``group``: the record waits in it
    (``RecordGroup.commit``) instead of being committed before this returns."""
    served = admit(call)
    try:
        inputs = read(served)
        batch = validate_inputs(served.schema, inputs, max_rows)
    except Exception:
        _count(call, served, Outcome.INVALID, 0)  # the body or its inputs were refused
        raise
    try:
        result = run(
            served,
            batch,
            source=call.channel,
            request_id=call.request_id,
            caller=call.caller_ids,
            group=group,
        )
    except PredictionFailed:
        _count(call, served, Outcome.ERROR, batch.rows)
        raise
    _count(call, served, Outcome.OK, batch.rows)
    if call.shadow is not None and records_enabled():
        result.shadow = ShadowJob(
            app=current_app._get_current_object(),  # type: ignore[attr-defined]
            served=call.shadow,
            batch=batch,
            schema=served.schema,
            inputs=inputs,
            max_rows=max_rows,
            channel=call.channel,
            request_id=call.request_id,
        )
    return result


def after_answer(result: Result) -> None:
    """The answer to ``result`` has gone out: queue its shadow run, if it has one (any
    thread; the run never changes or delays the answer)."""
    job = result.shadow
    if job is None or result.record_id is None:
        return
    result.shadow = None  # once
    job.primary_id = result.record_id
    variants.submit(job)


def predict_csv(call: Call, read: Callable[[Served], IO[bytes]]) -> csvstream.CsvAnswer:
    """Predict a whole CSV file: ``admit``, then ``read(served)`` gives the body, read once:
    its header is checked first, then every row is validated before the first is computed;
    the answer streams the rest (``csvstream``), recorded as it goes."""
    served = admit(call)
    try:
        upload = csvstream.check_upload(served, read(served))
    except Exception:
        count_outcome(served, call.channel, Outcome.INVALID, 0)  # refused before any model ran
        raise
    # Counted when the stream ends: ok, failed, or incomplete (the client left).
    return csvstream.predict_upload(
        served, upload, request_id=call.request_id, caller=call.caller_ids
    )
