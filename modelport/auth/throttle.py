"""Sign-in throttling per account, per client address and per device cookie (ASVS 6.3.1).

Counts live in the limiter's storage: memory in one process, Redis when
``MODELPORT_REDIS_URL`` is set, so that every gunicorn worker shares one count.

An attempt from a browser holding a device cookie for the account (``modelport.auth.devices``)
is counted against that cookie instead of the account: the account's lockout does not stop
it, and its failures do not add to the account's count. The address's count applies to
every attempt.

Sign-in fails closed: when the counts cannot be read or written (Redis down), no password
is checked and ``ThrottleUnavailable`` says so, rather than letting guesses through uncounted
(docs/operations.md, "When Redis is down").
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator

from limits import parse
from limits.errors import StorageError
from limits.strategies import RateLimiter

from modelport.config import current_settings
from modelport.extensions import client_address, shared_limiter
from modelport.ops import metrics

log = logging.getLogger(__name__)


class Throttled(Exception):
    """Too many failed sign-ins; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many attempts")
        self.retry_after = retry_after


class ThrottleUnavailable(Exception):
    """The sign-in counts cannot be kept (their storage fails): sign-in is refused for now."""

    retry_after = 5

    def __init__(self) -> None:
        super().__init__("sign-in counts unavailable")


@contextlib.contextmanager
def _counts() -> Iterator[RateLimiter]:
    """The shared counts; a storage failure becomes ``ThrottleUnavailable``."""
    try:
        yield shared_limiter()
    except StorageError as exc:
        # The class name only: a driver's message can carry the server's address.
        log.warning(
            "sign-in refused: the throttle's storage failed (%s)",
            type(exc.storage_error).__name__,
        )
        raise ThrottleUnavailable from None


def _account(email: str) -> tuple[str, str]:
    # The account key is hashed so the storage holds no e-mail address.
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return current_settings().login_limit_account, f"login-account/{account}"


def _device(nonce: str) -> tuple[str, str]:
    return current_settings().login_limit_device, f"login-device/{nonce}"


def _keys(email: str, device: str | None) -> list[tuple[str, str]]:
    """(limit, key) pairs an attempt counts against: the account's, or the device cookie's
    when ``device`` (its nonce) is given; and the address's."""
    settings = current_settings()
    return [
        _device(device) if device else _account(email),
        (settings.login_limit_ip, f"login-ip/{client_address()}"),
    ]


def check_login_allowed(email: str, device: str | None = None) -> None:
    """Raise ``Throttled`` when this account (or this device cookie, given its nonce) or
    this address has failed too often."""
    with _counts() as strategy:
        for spec, key in _keys(email, device):
            limit = parse(spec)
            if not strategy.test(limit, key):
                reset_at, _ = strategy.get_window_stats(limit, key)
                metrics.count_login_failure(throttled=True)
                raise Throttled(max(1, int(reset_at - time.time())))


def record_login_failure(email: str, device: str | None = None) -> None:
    """Count one failed sign-in against the account (or the device cookie) and the address."""
    metrics.count_login_failure(throttled=False)
    with _counts() as strategy:
        for spec, key in _keys(email, device):
            strategy.hit(parse(spec), key)


def record_login_success(email: str, device: str | None = None) -> None:
    """Forget the failures a successful sign-in answers: the device cookie's, and the
    account's unless the account is locked and this sign-in came through a device cookie
    (the guesser's count stands, or each sign-in of the owner would give it a new budget)."""
    spec, key = _account(email)
    with _counts() as strategy:
        if device and not strategy.test(parse(spec), key):
            spec, key = _device(device)
            strategy.clear(parse(spec), key)
            return
    clear_account_failures(email, device)


def clear_account_failures(email: str, device: str | None = None) -> None:
    """Forget the account's failures, and those of the device cookie whose nonce is
    ``device``, after a successful sign-in or password reset."""
    with _counts() as strategy:
        for spec, key in (_account(email), *([_device(device)] if device else [])):
            strategy.clear(parse(spec), key)
