"""How many examples a property-based (Hypothesis) test tries.

A run with ``--fast`` (``make test-fast``) loads the ``fast`` profile: a tenth of the
examples, for tests that take the default and, through ``examples(n)``, for those that name
their own count.
"""

from __future__ import annotations

from hypothesis import settings

FAST = "fast"
SHARE = 10  # --fast tries one example in SHARE

# On top of the profile in force (Hypothesis loads its "ci" profile where CI is set).
settings.register_profile(
    FAST, parent=settings.default, max_examples=settings.default.max_examples // SHARE
)


def load_profile(*, fast: bool) -> None:
    if fast:
        settings.load_profile(FAST)


def examples(count: int) -> int:
    """``count``, or a tenth of it (at least one) under ``--fast``."""
    if settings.get_current_profile_name() == FAST:
        return max(1, count // SHARE)
    return count
