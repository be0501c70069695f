"""Modelport: machine-learning models served to people and programs with Flask."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dotenv import load_dotenv
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from modelport.application import Modelport
from modelport.config import flask_config, read_settings, typed_settings

PACKAGE_ROOT = Path(__file__).resolve().parent
# Inside the package, so that an installed wheel can migrate a database too.
MIGRATIONS_DIR = PACKAGE_ROOT / "migrations"


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the app from ``MODELPORT_*`` settings; ``overrides`` replace settings (tests)."""
    load_dotenv(override=False)
    settings = read_settings()
    if overrides:
        settings = read_settings(
            {**os.environ, **{f"MODELPORT_{k}": str(v) for k, v in overrides.items()}}
        )
    instance = Path(settings["INSTANCE_PATH"] or Path.cwd() / "instance").resolve()
    app = Modelport(__name__, instance_path=str(instance), instance_relative_config=False)
    app.settings = typed_settings(settings)
    app.config.from_mapping(flask_config(settings, instance))
    instance.mkdir(parents=True, exist_ok=True)

    register_logging(app)
    register_extensions(app)
    register_metrics(app)
    register_erasures(app)
    register_blueprints(app)
    register_errors(app)
    register_security(app)
    register_cli(app)
    register_middleware(app, proxy_hops=settings["PROXY_HOPS"])
    return app


def register_logging(app: Flask) -> None:
    from modelport.ops.logging import configure_logging

    configure_logging(app)


def register_extensions(app: Flask) -> None:
    from modelport import models  # noqa: F401  (registers the tables)
    from modelport.api import api
    from modelport.extensions import babel, csrf, db, limiter, login_manager, migrate
    from modelport.i18n import select_locale, template_context
    from modelport.models.types import compare_type

    db.init_app(app)
    # SQLite needs batch mode to alter tables; compare_type also checks column types.
    migrate.init_app(
        app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True, compare_type=compare_type
    )
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    api.init_app(app)
    app.context_processor(template_context)


def register_metrics(app: Flask) -> None:
    """Prometheus counting on or off (``MODELPORT_METRICS``), and the pools watched."""
    from modelport.extensions import db
    from modelport.ops import metrics

    metrics.configure(app.settings.metrics)
    if app.settings.metrics:
        with app.app_context():
            for bind, engine in db.engines.items():
                metrics.watch_pool(engine, bind or "default")


def register_erasures(app: Flask) -> None:
    """What deleting an account erases beyond it, feature by feature, in this order."""
    from modelport.auth.erasure import register_erasure
    from modelport.serving.records import erase_user_records

    register_erasure(app, "prediction records", erase_user_records)


def register_blueprints(app: Flask) -> None:
    from modelport.analytics.web import bp as analytics_bp
    from modelport.api import v2
    from modelport.auth.web import admin, routes
    from modelport.ops import health
    from modelport.ops.scrape import register_scrape
    from modelport.pages import bp as pages_bp
    from modelport.serving.web import bp as serving_bp

    app.register_blueprint(pages_bp)
    app.register_blueprint(routes.auth_bp)
    app.register_blueprint(routes.account_bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(serving_bp)
    app.register_blueprint(analytics_bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(v2.bp)
    register_scrape(app)


def register_errors(app: Flask) -> None:
    from modelport.errors import register_error_handlers

    register_error_handlers(app)


def register_security(app: Flask) -> None:
    from modelport.auth.web.identity import register_identity
    from modelport.ops.inputs import register_inputs

    register_inputs(app)
    register_identity(app)


def register_middleware(app: Flask, *, proxy_hops: int) -> None:
    """WSGI layers around Flask, innermost first: the predict hot path, the security headers
    (around it, so its answers carry them like any other), the request log and metrics
    (around both, so every request is counted), then the proxy fix that corrects the
    client's address and scheme for everything inside."""
    from modelport.api.fastpath import PredictionFastPath
    from modelport.ops import request_log
    from modelport.ops.headers import SecurityHeaders

    app.wsgi_app = PredictionFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
    production = app.config["ENV_NAME"] == "production"
    app.wsgi_app = SecurityHeaders(app.wsgi_app, hsts=production)  # type: ignore[method-assign]
    app.wsgi_app = request_log.wrap(app, app.wsgi_app)  # type: ignore[method-assign]
    if proxy_hops > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxy_hops, x_proto=proxy_hops, x_host=proxy_hops
        )


def register_cli(app: Flask) -> None:
    from modelport.cli import register_commands

    register_commands(app)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL for concurrent readers, foreign keys on (account deletion cascades), and freed
    space zeroed so that erased values do not linger in it (``extensions.checkpoint_erasure``
    then empties the WAL)."""
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Debian's SQLite is built with it on, python.org's and macOS's are not (docs/security.md 16).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()
