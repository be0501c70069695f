"""What withdrawal erases besides the account: each feature registers its own part.

``create_app`` fills the list, in a known order, for every process that builds the app
(the web workers and the CLI alike), so no process can skip an erasure by not having
imported a feature. The account module calls the list without knowing the features, which
keeps auth from importing them.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app

# An erasure: given the user's id, erase or unlink what the feature holds of them, in the
# session's transaction (the caller commits, with the account's deletion); rows changed.
Erasure = Callable[[int], int]

_KEY = "modelport_erasures"


def register_erasure(app: Flask, name: str, erase: Erasure) -> None:
    """Add ``erase`` to what ``app`` erases when an account is deleted, after the others."""
    app.extensions.setdefault(_KEY, []).append((name, erase))


def erase_user_data(user_id: int) -> dict[str, int]:
    """Run every registered erasure for ``user_id`` in order; rows changed per feature."""
    erasures = current_app.extensions.get(_KEY)
    if erasures is None:
        # An app not made by create_app would silently keep personal data: refuse instead.
        raise RuntimeError("No erasures are registered: build the app with create_app().")
    return {name: erase(user_id) for name, erase in erasures}
