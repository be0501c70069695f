"""Extension objects, created once here and bound to the app in ``create_app``."""

from __future__ import annotations

import logging

from flask import current_app, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from limits.strategies import FixedWindowRateLimiter, RateLimiter
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints so that migrations can drop them on every database (SQLite batch mode
# included) and autogenerate compares like with like.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def client_address() -> str:
    """The client's address as seen after ProxyFix (trusted hops only)."""
    return request.remote_addr or "unknown"


class SiteLimiter(Limiter):
    """Flask-Limiter, skipping its per-request pass on views that count their own budget.

    The prediction views are marked by ``modelport.serving.limits.prediction_limit``; for
    them the pass finds nothing to do but still costs a measurable share of a prediction.
    """

    # Flask-Limiter's private per-request check; guarded by tests/test_upstream.py.
    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True):  # noqa: ANN202
        view = current_app.view_functions.get(request.endpoint or "")
        if getattr(view, "own_rate_limit", False):
            return None
        return super()._check_request_limit(callable_name, in_middleware)


class SiteLoginManager(LoginManager):
    """Flask-Login, without its own session protection.

    Sessions are checked on the server (``modelport.auth.sessions``), so Flask-Login's
    protection is off; it would still hash the caller's address and user agent on every
    request before finding that out.
    """

    # Flask-Login's private hook, called by _load_user; guarded by tests/test_upstream.py.
    def _session_protection_failed(self) -> bool:
        return False


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = SiteLoginManager()
csrf = CSRFProtect()
limiter = SiteLimiter(key_func=client_address)
babel = Babel()


def shared_limiter() -> RateLimiter:
    """A fixed-window strategy (Flask-Limiter's default) on the limiter's configured storage,
    Redis when ``MODELPORT_REDIS_URL`` is set, never on the in-memory fallback Flask-Limiter
    switches its own limits to while Redis is down: the sign-in throttle and the prediction
    budgets choose for themselves what a storage failure means (docs/operations.md)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    strategy = app.extensions.get("modelport_shared_limiter")
    if strategy is None or strategy.storage is not limiter.storage:
        strategy = app.extensions["modelport_shared_limiter"] = FixedWindowRateLimiter(
            limiter.storage
        )
    return strategy


def dispose_engines(*, close: bool = True) -> None:
    """Dispose every engine of the current app: the default one and the records engine."""
    for engine in db.engines.values():
        engine.dispose(close=close)


def checkpoint_erasure() -> None:
    """Call after an erasure commits (withdrawal, purge). On SQLite, copy the WAL into the
    database file and truncate it to zero bytes: until then the erased values stay in the
    ``-wal`` file, and their old pages in the database file. ``PRAGMA secure_delete``
    (``modelport._sqlite_pragmas``) has zeroed them in the pages written back. What servers
    keep until their own vacuum or purge is in docs/security.md, item 16."""
    engine = db.engine
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        # Waits (busy timeout) for readers of older snapshots and for a writer to finish.
        busy, _frames, _done = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    if busy:
        logging.getLogger(__name__).warning(
            "The WAL could not be checkpointed after an erasure (the database stayed busy); "
            "the erased values leave the -wal file at a later checkpoint."
        )
