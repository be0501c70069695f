"""The prediction service: a refused request runs no model, on every channel.

Every channel (the model page's form, the batch page, the JSON API with JSON or CSV, the
hot path, /v2) takes the service's steps in one order: resolve → access → budget → validate
→ compute → record. A request refused before "compute" (no access, a spent budget, invalid
input) must not cost a model call: the models' own ``predict`` is watched here.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from modelport.serving import flavors
from tests.support.html import csrf_token
from tests.support.http import bearer
from tests.support.models import IRIS_ROW, register_demo
from tests.support.tokens import issue_token
from tests.support.users import login, make_user

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

LIMIT = 3  # predictions per minute for a signed-in caller
BAD_ROW = {**IRIS_ROW, "sepal_length": "many"}
CSV_HEADER = ",".join(IRIS_ROW)


def _csv(row: dict[str, Any]) -> str:
    return CSV_HEADER + "\n" + ",".join(str(v) for v in row.values()) + "\n"


def _tensor(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": name, "shape": [1], "datatype": "BYTES", "data": [str(value)]}
            for name, value in row.items()
        ]
    }


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of a runtime's predict, whichever flavor serves the model."""
    calls: list[str] = []
    for runtime in (flavors.OnnxRuntime, flavors.SklearnRuntime):
        real = runtime.predict

        def watched(self: Any, batch: Any, _real: Callable = real) -> Any:
            calls.append(type(self).__name__)
            return _real(self, batch)

        monkeypatch.setattr(runtime, "predict", watched)
    return calls


@pytest.fixture
def served(app_factory: Any, demo_models: dict[str, Any]) -> Flask:
    """iris public, the same model as ``secret`` private; small budgets for everyone."""
    app = app_factory(
        PREDICT_LIMIT_USER=f"{LIMIT} per minute",
        PREDICT_LIMIT_ANONYMOUS=f"{LIMIT} per minute",
        TOKEN_CACHE_SECONDS="60",
    )
    register_demo(app, demo_models, "iris")
    demo_models["iris"].name = "secret"
    try:
        register_demo(app, {"secret": demo_models["iris"]}, "secret", visibility="private")
    finally:
        demo_models["iris"].name = "iris"
    make_user(app)
    return app


class Channel:
    """One way into a prediction: how to send a row to a model, and the status it gets."""

    def __init__(self, app: Flask, name: str) -> None:
        self.app = app
        self.name = name
        self.signed_in = app.test_client()
        login(self.signed_in)
        self.token = bearer(issue_token(app, 1))

    def send(self, model: str, row: dict[str, Any], *, anonymous: bool = False) -> int:
        client: FlaskClient = self.app.test_client() if anonymous else self.signed_in
        token = {} if anonymous else self.token
        if self.name == "page form":
            data = {f"feature:{k}": str(v) for k, v in row.items()}
            data["csrf_token"] = csrf_token(client, "/models/iris")
            return client.post(f"/models/{model}", data=data).status_code
        if self.name == "batch page":
            form = {
                "file": (io.BytesIO(_csv(row).encode()), "rows.csv"),
                "csrf_token": csrf_token(client, "/models/iris/batch"),
            }
            return client.post(f"/models/{model}/batch", data=form).status_code
        path = f"/api/v1/models/{model}/predict"
        fresh = self.app.test_client()  # programs: no cookies
        if self.name == "JSON API":
            return fresh.post(path, json={"inputs": row}, headers=token).status_code
        if self.name == "hot path":
            response = fresh.post(path, json={"inputs": row}, headers=token)
            return response.status_code
        if self.name == "CSV API":
            return fresh.post(
                path, data=_csv(row), content_type="text/csv", headers=token
            ).status_code
        assert self.name == "v2"
        return fresh.post(f"/v2/models/{model}/infer", json=_tensor(row), headers=token).status_code


CHANNELS = ["page form", "batch page", "JSON API", "hot path", "CSV API", "v2"]
BAD_INPUT = {"v2": 400}


@pytest.mark.parametrize("name", CHANNELS)
def test_a_refused_request_runs_no_model(served: Flask, model_calls: list[str], name: str) -> None:
    channel = Channel(served, name)
    if name == "hot path":
        assert channel.send("iris", IRIS_ROW) == 200  # the token is checked, then remembered
        model_calls.clear()
        served.extensions["modelport_fast_path"].answered = 0
    # No access: the private model for an anonymous caller (the hot path's callers have a
    # token, which may use it: there, a model that is not there).
    if name == "hot path":
        assert channel.send("nope", IRIS_ROW) == 404
    else:
        assert channel.send("secret", IRIS_ROW, anonymous=True) == 404
    assert model_calls == []
    # Invalid input.
    assert channel.send("iris", BAD_ROW) == BAD_INPUT.get(name, 422)
    assert model_calls == []
    # The budget, spent (the hot path's warm-up and the invalid request counted too).
    statuses = [channel.send("iris", IRIS_ROW) for _ in range(LIMIT)]
    assert statuses[-1] == 429, statuses
    calls = len(model_calls)
    assert calls == statuses.count(200)
    assert channel.send("iris", IRIS_ROW) == 429
    assert len(model_calls) == calls
    if name == "hot path":
        assert served.extensions["modelport_fast_path"].answered == statuses.count(200)
