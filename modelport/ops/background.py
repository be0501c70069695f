"""Jobs a server process runs in a thread of its own every so many seconds (the rollup,
following MLflow), each in an app context of its own."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from flask import Flask

from modelport.extensions import db

log = logging.getLogger(__name__)


def _loop(app: Flask, name: str, seconds: float, job: Callable[[], object]) -> None:
    while True:
        # Spread out, so that the workers of a server do not all start at once.
        threading.Event().wait(seconds * random.uniform(0.8, 1.2))  # noqa: S311 - not a secret
        with app.app_context():
            try:
                job()
            except Exception:  # noqa: BLE001 - the next run tries again; the server goes on
                log.exception(f"{name}_failed")
            finally:
                db.session.remove()


def every(app: Flask, name: str, seconds: float, job: Callable[[], object]) -> bool:
    """Run ``job`` about every ``seconds`` (±20 %) in a daemon thread of this process, in
    the app's context; nothing when ``seconds`` is 0. Whether it started."""
    if seconds <= 0:
        return False
    threading.Thread(
        target=_loop, args=(app, name, seconds, job), name=f"modelport-{name}", daemon=True
    ).start()
    return True
