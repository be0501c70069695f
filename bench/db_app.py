"""The Flask app that bench/db_stages.py serves: one read and one insert, three ways.

Stage 0 (reference) answers without a database: the ceiling of Flask + gunicorn here.
Stage 1 opens a new DBAPI connection for every request (psycopg.connect / sqlite3.connect).
Stage 2 borrows a connection from a pooled SQLAlchemy engine and runs ``text()`` SQL.
Stage 3 uses the Flask-SQLAlchemy session and a declarative model, on stage 2's engine: the
way the product reaches its database.

The engine options are the product's own (``modelport.config.flask_config``), and importing
``modelport`` registers the product's SQLite connect hook (WAL, foreign keys, synchronous
NORMAL), so stages 2 and 3 run with exactly the product's pool and pragmas. Stage 1 sets the
same pragmas by hand on each new SQLite connection.

The app is a bare Flask app rather than ``modelport.create_app()`` so that the three stages
differ only in how they reach the database, not in middleware.
"""

from __future__ import annotations

import os
import random
import secrets
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from flask import Flask, abort, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String, make_url, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modelport.config import flask_config, read_settings

URL_VARIABLE = "MODELPORT_BENCH_DATABASE_URL"
TABLE = "bench_items"
SEED_ROWS = 10_000

READ_SQL = f"SELECT id, name, score FROM {TABLE} WHERE id = :id"  # noqa: S608 - constant name
INSERT_SQL = f"INSERT INTO {TABLE} (name, score) VALUES (:name, :score) RETURNING id"  # noqa: S608


class BenchBase(DeclarativeBase):
    """Declarative base of the benchmark's own metadata (never the product's tables)."""


db = SQLAlchemy(model_class=BenchBase)


class BenchItem(db.Model):
    """One row of the benchmark table."""

    __tablename__ = TABLE

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    score: Mapped[int]


def product_engine_options(url: str) -> dict[str, Any]:
    """The SQLALCHEMY_ENGINE_OPTIONS the product would use for ``url`` (MODELPORT_DB_* honoured)."""
    environ = {
        **os.environ,
        "MODELPORT_DATABASE_URL": url,
        # Only so flask_config needs no instance folder for a development key.
        "MODELPORT_SECRET_KEY": secrets.token_urlsafe(48),
    }
    config = flask_config(read_settings(environ), Path("instance"))
    return config["SQLALCHEMY_ENGINE_OPTIONS"]


def sqlite_connect(path: str, timeout: float) -> sqlite3.Connection:
    """A new SQLite connection set up as the product's connect hook sets up pooled ones."""
    connection = sqlite3.connect(path, timeout=timeout)
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def _random_id() -> int:
    return random.randint(1, SEED_ROWS)


def _insert_values() -> tuple[str, int]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        abort(400, "expected a JSON object with a string 'name' and an integer 'score'")
    score = body.get("score")
    if not isinstance(score, int):
        abort(400, "expected a JSON object with a string 'name' and an integer 'score'")
    return body["name"][:64], score


def create_app(url: str | None = None) -> Flask:
    """Build the benchmark app for ``url`` (default: $MODELPORT_BENCH_DATABASE_URL)."""
    url = url or os.environ[URL_VARIABLE]
    options = product_engine_options(url)
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    app.config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False
    db.init_app(app)

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        timeout = options["connect_args"]["timeout"]

        def dbapi_connect() -> Any:
            return sqlite_connect(path, timeout)

        placeholder = "?"
    elif parsed.get_backend_name() == "postgresql":
        import psycopg

        conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)

        def dbapi_connect() -> Any:
            return psycopg.connect(conninfo)

        placeholder = "%s"
    else:
        raise ValueError(f"db_stages benchmarks SQLite and PostgreSQL, not {url!r}")

    raw_read = READ_SQL.replace(":id", placeholder)
    raw_insert = INSERT_SQL.replace(":name", placeholder).replace(":score", placeholder)

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    # Stage 0, a reference: the same request and JSON answer with no database at all.
    @app.get("/stage0/read")
    def stage0_read() -> dict:
        return {"id": _random_id(), "name": "no database", "score": 0}

    # Stage 1: a new DBAPI connection per request, closed when the request is done.
    @app.get("/stage1/read")
    def stage1_read() -> dict:
        with closing(dbapi_connect()) as connection:
            cursor = connection.execute(raw_read, (_random_id(),))
            row = cursor.fetchone()
            connection.rollback()  # psycopg opened a transaction for the SELECT
        return {"id": row[0], "name": row[1], "score": row[2]}

    @app.post("/stage1/insert")
    def stage1_insert() -> tuple[dict, int]:
        name, score = _insert_values()
        with closing(dbapi_connect()) as connection:
            new_id = connection.execute(raw_insert, (name, score)).fetchone()[0]
            connection.commit()
        return {"id": new_id}, 201

    # Stage 2: the pooled engine (the same one the ORM session uses) with text() SQL.
    @app.get("/stage2/read")
    def stage2_read() -> dict:
        with db.engine.connect() as connection:
            row = connection.execute(text(READ_SQL), {"id": _random_id()}).one()
        return {"id": row.id, "name": row.name, "score": row.score}

    @app.post("/stage2/insert")
    def stage2_insert() -> tuple[dict, int]:
        name, score = _insert_values()
        with db.engine.begin() as connection:
            new_id = connection.execute(text(INSERT_SQL), {"name": name, "score": score}).scalar()
        return {"id": new_id}, 201

    # Stage 3: the Flask-SQLAlchemy session (removed at the end of each request by the extension).
    @app.get("/stage3/read")
    def stage3_read() -> dict:
        item = db.session.get(BenchItem, _random_id())
        if item is None:
            abort(404)
        return {"id": item.id, "name": item.name, "score": item.score}

    @app.post("/stage3/insert")
    def stage3_insert() -> tuple[dict, int]:
        name, score = _insert_values()
        item = BenchItem(name=name, score=score)
        db.session.add(item)
        # Flush first and read the id then: after commit the object is expired, and reading
        # item.id would cost one more SELECT that the other stages do not make.
        db.session.flush()
        new_id = item.id
        db.session.commit()
        return {"id": new_id}, 201

    return app
