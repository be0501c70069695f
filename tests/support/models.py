"""Models to serve: the demo models registered, a model with a categorical column, input rows."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from flask import Flask

IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
DIABETES_ROW = {
    "age": 59.0,
    "sex": 2.0,
    "bmi": 32.1,
    "bp": 101.0,
    "s1": 157.0,
    "s2": 93.2,
    "s3": 38.0,
    "s4": 4.0,
    "s5": 4.8598,
    "s6": 87.0,
}


def register_demo(
    app: Flask, demo_models: dict[str, Any], *names: str, visibility: str = "public"
) -> None:
    """Register demo models (all when no name is given) as version 1, alias ``champion``."""
    from modelport.serving import registry

    with app.app_context():
        for name in names or tuple(demo_models):
            registry.register_trained(demo_models[name], visibility=visibility)


def register_colour_model(app: Flask, folder: Path) -> str:
    """Register ``colour``: a skops pipeline over iris plus a categorical ``colour`` column
    (one-hot encoded), classes 0, 1 and 2; return its name."""
    import numpy as np
    import skops.io as sio
    from sklearn.compose import make_column_transformer
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from modelport.serving import registry

    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = list(IRIS_ROW)
    frame = X.assign(colour=np.where(y > 0, "red", "blue"))
    pipeline = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["colour"]), remainder="passthrough"),
        LogisticRegression(max_iter=1000),
    ).fit(frame, y)
    path = folder / "colour.skops"
    sio.dump(pipeline, path)
    with app.app_context():
        model = registry.create_model("colour", task="classification")
        registry.register_version(model, path, filename=path.name, sample=frame)
    return "colour"


def csv_body(rows: int, demo_models: dict[str, Any]) -> bytes:
    """A CSV upload of ``rows`` iris rows (the demo model's sample, repeated)."""
    import pandas as pd

    sample = demo_models["iris"].sample
    repeated = pd.concat([sample] * (rows // len(sample) + 1), ignore_index=True).head(rows)
    buffer = io.StringIO()
    repeated.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def iris_with_swapped_labels() -> bytes:
    """A skops iris classifier that calls setosa virginica and the reverse: its answers differ
    from the demo model's, and so do its bytes."""
    import skops.io
    from sklearn.linear_model import LogisticRegression

    from modelport.serving.demo import demo_dataset

    features, target = demo_dataset("iris")
    swapped = target.replace({"setosa": "virginica", "virginica": "setosa"})
    return skops.io.dumps(LogisticRegression(max_iter=1000).fit(features, swapped))
