"""The baselines that bench/serving.py serves next to Modelport, under the same gunicorn settings.

``hello_app()`` is bare Flask answering ``{"ok": true}``: the ceiling of Flask + gunicorn on
the machine during the run. ``predict_app()`` is a minimal hand-written predict endpoint, as
a person would write it in an afternoon: JSON → numpy → ``predict_proba`` → JSON with the
native scikit-learn estimator loaded from the same skops artifact Modelport serves, and no
validation, no authentication, no record. It takes the same request body as Modelport
(``{"inputs": {feature: value, ...}}``) and answers label and probabilities, so the two
differ only in what Modelport adds.

The artifacts come from ``MODELPORT_BENCH_ARTIFACTS``: ``name=path.skops`` pairs separated by
``;`` (bench/serving.py sets it); the features are the estimator's ``feature_names_in_``.

``durable_app()`` is the floor under any durable record on PostgreSQL: bare Flask that, per
request, inserts one row into Modelport's ``predictions`` table (same columns and indexes)
over a connection it keeps open in autocommit mode, and answers once PostgreSQL has
committed it. No model, no validation, no authentication, no SQLAlchemy: what is left is
the INSERT's round trip and the database's own work. Its database is
``MODELPORT_BENCH_DURABLE_URL`` (a libpq URL).

``modelport_app()`` is Modelport's own ``create_app()``, unchanged, from whichever checkout
is first on the server's ``sys.path``; it writes where that package was imported from to
``MODELPORT_BENCH_SOURCE_FILE`` and refuses to start when it is not under
``MODELPORT_BENCH_SOURCE_ROOT``, so that a row said to measure one commit measures it.
"""

from __future__ import annotations

import json
import os
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import skops.io
from flask import Flask, abort, request

ARTIFACTS_VARIABLE = "MODELPORT_BENCH_ARTIFACTS"
DURABLE_VARIABLE = "MODELPORT_BENCH_DURABLE_URL"
SOURCE_FILE_VARIABLE = "MODELPORT_BENCH_SOURCE_FILE"
SOURCE_ROOT_VARIABLE = "MODELPORT_BENCH_SOURCE_ROOT"
DURABLE_INSERT = (
    "INSERT INTO predictions (request_id, model_name, version_number, runtime, source, status, "
    "row_count, latency_ms, inputs, outputs, truncated, created_at) VALUES (%(request_id)s, "
    "'iris', 1, 'none', 'api', 'ok', 1, 0, %(inputs)s, '[]', false, %(created_at)s) RETURNING id"
)


def hello_app() -> Flask:
    """Bare Flask: one JSON answer, nothing else."""
    app = Flask(__name__)

    @app.get("/health")
    @app.post("/hello")
    @app.get("/hello")
    def hello() -> dict[str, Any]:
        return {"ok": True}

    return app


def modelport_app() -> Any:
    """Modelport's WSGI app, after checking which checkout it comes from."""
    import modelport

    source = Path(modelport.__file__).resolve()
    if os.environ.get(SOURCE_FILE_VARIABLE):
        Path(os.environ[SOURCE_FILE_VARIABLE]).write_text(str(source))
    root = os.environ.get(SOURCE_ROOT_VARIABLE)
    if root and not source.is_relative_to(Path(root).resolve()):
        raise RuntimeError(f"modelport was imported from {source}, not from under {root}")
    return modelport.create_app()


def _load(path: Path) -> Any:
    # The bench wrote these files itself a moment ago, so every type in them is trusted.
    return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))


def predict_app() -> Flask:
    """A hand-written predict endpoint per artifact: ``POST /predict/<name>``."""
    # The estimators were fitted on a DataFrame; a plain array is what a minimal endpoint
    # feeds them, and scikit-learn's "X does not have valid feature names" warning on every
    # call is noise here.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    models = {}
    for pair in filter(None, os.environ.get(ARTIFACTS_VARIABLE, "").split(";")):
        name, _, path = pair.partition("=")
        estimator = _load(Path(path))
        models[name] = (estimator, list(estimator.feature_names_in_), estimator.classes_.tolist())
    app = Flask(__name__)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "models": sorted(models)}

    @app.post("/predict/<name>")
    def predict(name: str) -> dict[str, Any]:
        if name not in models:
            abort(404)
        estimator, features, classes = models[name]
        inputs = request.get_json()["inputs"]
        rows = inputs if isinstance(inputs, list) else [inputs]
        matrix = np.array([[row[f] for f in features] for row in rows], dtype=float)
        probabilities = estimator.predict_proba(matrix)
        return {
            "predictions": [
                {
                    "label": classes[int(np.argmax(p))],
                    "probabilities": dict(zip(classes, p.tolist(), strict=True)),
                }
                for p in probabilities
            ]
        }

    return app


def durable_app() -> Flask:
    """One durable INSERT per request, and nothing else: ``POST /record``."""
    import psycopg

    url = os.environ[DURABLE_VARIABLE]
    connection: list[psycopg.Connection] = []  # opened in the worker, after the fork
    app = Flask(__name__)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.post("/record")
    def record() -> dict[str, Any]:
        if not connection:
            connection.append(psycopg.connect(url, autocommit=True))
        inputs = request.get_json()["inputs"]
        row = (
            connection[0]
            .execute(
                DURABLE_INSERT,
                {
                    "request_id": "bench",
                    "inputs": json.dumps([inputs]),
                    "created_at": datetime.now(UTC).replace(tzinfo=None),
                },
            )
            .fetchone()
        )
        return {"record_id": row[0]}

    return app
