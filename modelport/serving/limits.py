"""Prediction rate limits, one budget per caller whichever way they predict.

The model page, the JSON API and the inference protocol share it: anonymous callers are
counted per client address (public models only take them), signed-in users and their tokens
per user. One hit per request, counted where Flask-Limiter keeps its counts: in Redis when
``MODELPORT_REDIS_URL`` is set (one budget for all workers), else in this worker's memory
(``ProcessWindows``). The route decorators of Flask-Limiter cost several times more per
call, which a prediction endpoint notices.

Budgets fail open to the worker's own count: while Redis fails, each worker counts its
callers in memory (as without Redis), logs a warning, and tries Redis again after
``SHARED_RETRY_SECONDS``. A budget is about fair use; predictions stop only when the
database, which records them, is down (docs/operations.md, "When Redis is down").
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from functools import cache
from typing import Any

from flask import current_app
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage

from modelport.auth.caller import Caller
from modelport.config import current_settings
from modelport.extensions import limiter, shared_limiter

SCOPE = "predict"
# Set in the WSGI environ once a request's prediction has been counted (by the hot path).
COUNTED = "modelport.prediction_counted"
# Past this many windows in one process, expired ones are dropped (anonymous callers are
# counted per address, so the keys are not bounded otherwise).
_MAX_WINDOWS = 10_000
# After the shared storage fails, a worker counts in its own memory this long before it asks
# Redis again: one warning per period, and no wait on a dead server per prediction.
SHARED_RETRY_SECONDS = 5.0
_WINDOWS = "modelport_prediction_windows"
_SHARED_DOWN_UNTIL = "modelport_prediction_shared_down_until"

log = logging.getLogger(__name__)


@cache
def _item(value: str) -> RateLimitItem:
    return parse(value)


class ProcessWindows:
    """Fixed windows counted in this process: what limits' memory storage keeps, without its
    expiry thread.

    ``limits.storage.MemoryStorage`` starts a ``threading.Timer`` on a hit whenever the last
    one has fired (10 ms later), and ``Thread.start()`` waits until the new thread has run:
    about 0.5 ms of wall time per prediction at one connection, measured. A window starts at
    its first hit, as in ``limits``; memory counts are per worker process either way.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, list[float]] = {}  # key → [end (time.time()), hits]
        self._prune_at = _MAX_WINDOWS

    def hit(self, item: RateLimitItem, key: str) -> float | None:
        """Count one hit: None if allowed, else the seconds until the window ends."""
        now = time.time()
        name = item.key_for(SCOPE, key)
        with self._lock:
            window = self._windows.get(name)
            if window is None or window[0] <= now:
                if len(self._windows) >= self._prune_at:
                    self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
                    # Many live windows (a flood of addresses): scan again only once the
                    # table has doubled, so a hit never costs a scan on average.
                    self._prune_at = max(_MAX_WINDOWS, 2 * len(self._windows))
                window = self._windows[name] = [now + item.get_expiry(), 0]
            if window[1] >= item.amount:
                return window[0] - now
            window[1] += 1
            return None


def _local_refusal(app: Any, item: RateLimitItem, key: str) -> float | None:
    windows = app.extensions.get(_WINDOWS)
    if windows is None:
        windows = app.extensions.setdefault(_WINDOWS, ProcessWindows())
    return windows.hit(item, key)


def _refusal(item: RateLimitItem, key: str) -> float | None:
    """Count the hit where the limiter keeps its counts; seconds to wait if refused."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if isinstance(limiter.storage, MemoryStorage):
        return _local_refusal(app, item, key)
    if time.monotonic() >= app.extensions.get(_SHARED_DOWN_UNTIL, 0.0):
        strategy = shared_limiter()  # Redis: one count for all workers
        try:
            if strategy.hit(item, SCOPE, key):
                return None
            return strategy.get_window_stats(item, SCOPE, key).reset_time - time.time()
        except StorageError as exc:
            app.extensions[_SHARED_DOWN_UNTIL] = time.monotonic() + SHARED_RETRY_SECONDS
            log.warning(
                "prediction budgets: the shared storage failed (%s); this worker counts "
                "on its own for %.0f s",
                type(exc.storage_error).__name__,
                SHARED_RETRY_SECONDS,
            )
    return _local_refusal(app, item, key)


class BudgetSpent(Exception):
    """The caller's prediction budget is spent: a 429, ``retry_after`` seconds to wait."""

    def __init__(self, limit: str, retry_after: int) -> None:
        super().__init__(f"Too many requests: {limit}. Try again later.")
        self.limit = limit
        self.retry_after = retry_after


def spend_budget(caller: Caller, address: str | None) -> None:
    """Count one prediction request against the caller's budget: a signed-in caller's (all
    their tokens and sessions together), else the client address's. ``BudgetSpent`` past
    the limit."""
    settings = current_settings()
    if caller.signed_in:
        item, key = _item(settings.predict_limit_user), f"user:{caller.user_id}"
    else:
        item, key = _item(settings.predict_limit_anonymous), f"address:{address}"
    wait = _refusal(item, key)
    if wait is not None:
        raise BudgetSpent(str(item), max(1, math.ceil(wait)))


def prediction_limit(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view whose predictions count the budget themselves (``spend_budget``, in the
    prediction service): Flask-Limiter's per-request pass has nothing to add there."""
    view.own_rate_limit = True  # type: ignore[attr-defined]  (read by SiteLimiter)
    return limiter.exempt(view)
