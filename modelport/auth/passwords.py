"""How a password is chosen, stored and checked (NIST SP 800-63B rev. 4, ASVS 6.2)."""

from __future__ import annotations

import base64
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import lazy_gettext as _l

from modelport.config import current_settings
from modelport.lazy import lazy

# Imported by the first password chosen, not at start-up: its lists take about 13 MB.
zxcvbn = lazy("zxcvbn")
# zxcvbn ships its frequency lists (common passwords, words, names) inside the package, so
# the check is offline. A score below 2 means fewer than ~10^6 guesses: refused, with a reason.
_MIN_ZXCVBN_SCORE = 2
_ZXCVBN_MAX_INPUT = 72  # zxcvbn refuses longer input; past that length the prefix is judged


@functools.cache
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


def hasher() -> PasswordHasher:
    """The Argon2id hasher with this app's parameters."""
    return _hasher(**current_app.config["ARGON2_PARAMS"])


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` with a fresh salt."""
    return hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check ``password`` against a stored hash, exactly as sent (no truncation or folding).

    With no hash (unknown account) a dummy hash is checked all the same, so that an unknown
    e-mail costs as much time as a wrong password.
    """
    target = password_hash or _dummy_hash()
    try:
        ok = hasher().verify(target, password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and password_hash is not None


def _dummy_hash() -> str:
    return _dummy_for(**current_app.config["ARGON2_PARAMS"])


@functools.cache
def _dummy_for(time_cost: int, memory_cost: int, parallelism: int) -> str:
    """A well-formed Argon2id hash that no password matches.

    Verifying against it costs as much as against a real hash; building it costs nothing, so
    the first unknown e-mail is not slower than the rest (hashing one would take a hash).
    """
    salt = base64.b64encode(b"modelport-dummy.").decode().rstrip("=")
    digest = base64.b64encode(bytes(32)).decode().rstrip("=")
    return f"$argon2id$v=19$m={memory_cost},t={time_cost},p={parallelism}${salt}${digest}"


def needs_rehash(password_hash: str) -> bool:
    """Whether a stored hash uses weaker parameters than the current ones."""
    try:
        return hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def _is_guessable(password: str, personal: list[str]) -> bool:
    result = zxcvbn.zxcvbn(password[:_ZXCVBN_MAX_INPUT], user_inputs=[p for p in personal if p])
    return result["score"] < _MIN_ZXCVBN_SCORE


def password_problems(password: str, *, email: str = "", name: str = "") -> list[str]:
    """Reasons why ``password`` may not be used; empty when it is acceptable.

    Length and a blocklist only: no composition rules, any Unicode and spaces allowed.
    """
    settings = current_settings()
    minimum, maximum = settings.password_min_length, settings.password_max_length
    problems: list[str] = []
    if len(password) < minimum:
        problems.append(str(_l("Use at least %(n)d characters.", n=minimum)))
    elif len(password) > maximum:
        problems.append(str(_l("Use at most %(n)d characters.", n=maximum)))
    elif _is_guessable(password, [email, email.split("@")[0], name]):
        problems.append(
            str(_l("This password is too common or too easy to guess; choose another."))
        )
    return problems
