"""Sign-in throttling per account and per client address (ASVS 6.3.1).

Counts live in the limiter's storage: memory in one process, Redis when
``MODELPORT_REDIS_URL`` is set, so that every gunicorn worker shares one count.
"""

from __future__ import annotations

import hashlib
import time

from flask import current_app
from limits import parse

from modelport.extensions import client_address, limiter


class Throttled(Exception):
    """Too many failed sign-ins; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many attempts")
        self.retry_after = retry_after


def _keys(email: str) -> list[tuple[str, str]]:
    settings = current_app.config["MODELPORT"]
    # The account key is hashed so the storage holds no e-mail address.
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return [
        (settings["LOGIN_LIMIT_ACCOUNT"], f"login-account/{account}"),
        (settings["LOGIN_LIMIT_IP"], f"login-ip/{client_address()}"),
    ]


def check_login_allowed(email: str) -> None:
    """Raise ``Throttled`` when this account or this address has failed too often."""
    strategy = limiter.limiter
    for spec, key in _keys(email):
        limit = parse(spec)
        if not strategy.test(limit, key):
            reset_at, _ = strategy.get_window_stats(limit, key)

            raise Throttled(max(1, int(reset_at - time.time())))


def record_login_failure(email: str) -> None:
    """Count one failed sign-in against the account and the address."""
    strategy = limiter.limiter
    for spec, key in _keys(email):
        strategy.hit(parse(spec), key)


def clear_account_failures(email: str) -> None:
    """Forget the account's failures after a successful sign-in or password reset."""
    spec, key = _keys(email)[0]
    limiter.limiter.clear(parse(spec), key)
