"""MLOps helpers: demo datasets registered as Modelport datasets, the CLI, MLflow's client."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from flask import Flask
from flask.testing import FlaskCliRunner

IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def add_demo_dataset(app: Flask, demo: str, name: str | None = None) -> str:
    """Register a demo's data (features, then the target as the last column) as a dataset;
    return its name."""
    from modelport.analytics import datasets
    from modelport.serving.demo import demo_dataset

    features, target = demo_dataset(demo)
    name = name or demo
    with app.app_context():
        datasets.register_frame(name, features.assign(**{str(target.name): target}))
    return name


def add_frame_dataset(app: Flask, name: str, frame: pd.DataFrame) -> str:
    """Register ``frame`` as dataset ``name``."""
    from modelport.analytics import datasets

    with app.app_context():
        datasets.register_frame(name, frame)
    return name


def colour_frame(rows: int = 150, seed: int = 0) -> pd.DataFrame:
    """Numbers, a category with gaps and a label that depends on both."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, rows)
    colour = rng.choice(["red", "green", "blue"], rows).astype(object)
    colour[::11] = None
    label = np.where((x > 0) | (colour == "red"), "yes", "no")
    return pd.DataFrame({"x": x, "size": rng.integers(1, 5, rows), "colour": colour, "ok": label})


def cli(app: Flask, *args: str) -> Any:
    """Run ``modelport ARGS`` in the app; the click result."""
    runner: FlaskCliRunner = app.test_cli_runner()
    return runner.invoke(args=list(args))


def client(url: str) -> Any:
    """An MLflow client of the server at ``url``."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=url, registry_uri=url)


def mlflow_state(url: str) -> tuple[int, int]:
    """(experiments, registered models) on the server: compare before and after."""
    found = client(url)
    return len(found.search_experiments()), len(found.search_registered_models())
