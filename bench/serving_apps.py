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
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import skops.io
from flask import Flask, abort, request

ARTIFACTS_VARIABLE = "MODELPORT_BENCH_ARTIFACTS"


def hello_app() -> Flask:
    """Bare Flask: one JSON answer, nothing else."""
    app = Flask(__name__)

    @app.get("/health")
    @app.post("/hello")
    @app.get("/hello")
    def hello() -> dict[str, Any]:
        return {"ok": True}

    return app


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
