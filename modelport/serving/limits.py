"""Prediction rate limits, one budget per caller whichever way they predict.

The model page, the JSON API and the inference protocol share it: anonymous callers are
counted per client address (public models only take them), signed-in users and their tokens
per user. The count goes straight to Flask-Limiter's storage (memory, or Redis when
``MODELPORT_REDIS_URL`` is set) with one hit per request: the route decorators of
Flask-Limiter cost several times more per call, which a prediction endpoint notices.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import cache, wraps
from typing import Any

from flask import current_app, request
from flask_babel import gettext as _
from flask_login import current_user
from limits import RateLimitItem, parse

from modelport.errors import ApiError
from modelport.extensions import client_address, limiter

SCOPE = "predict"


@cache
def _item(value: str) -> RateLimitItem:
    return parse(value)


def check_prediction_budget() -> None:
    """Count one prediction request for the caller; 429 with Retry-After past the limit."""
    settings = current_app.config["MODELPORT"]
    if current_user.is_authenticated:
        item, key = _item(settings["PREDICT_LIMIT_USER"]), f"user:{current_user.id}"
    else:
        item, key = _item(settings["PREDICT_LIMIT_ANONYMOUS"]), f"address:{client_address()}"
    strategy = limiter.limiter
    if strategy.hit(item, SCOPE, key):
        return
    reset = strategy.get_window_stats(item, SCOPE, key).reset_time
    error = ApiError(
        429,
        "rate_limited",
        _("Too many requests: %(limit)s. Try again later.", limit=str(item)),
    )
    error.retry_after = max(1, math.ceil(reset - time.time()))
    raise error


def prediction_limit(view: Callable[..., Any]) -> Callable[..., Any]:
    """Apply the prediction budget to a view's POST requests."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if request.method == "POST":
            check_prediction_budget()
        return view(*args, **kwargs)

    # Flask-Limiter's own per-request pass has nothing to add here: this is the budget.
    return limiter.exempt(wrapped)
