"""gunicorn's preload (issue 12, item 3): the master imports the application and its libraries
once, before it forks, and every model loads in a worker, after the fork.

The master is checked by running gunicorn's own loading code in a process of its own (what
``Arbiter.setup`` does with ``preload_app``) and looking into it: the libraries every worker
needs imported, those only some requests need not (``modelport.lazy``) unless
``MODELPORT_PRELOAD_LIBRARIES`` names them, not onnxruntime (a worker forked after importing
it hangs at exit: serving/flavors.py), no session, no loaded model. Real gunicorns, preloading as configured by default, then answer
predictions from both workers on SQLite and PostgreSQL, and stop on SIGTERM without a
worker having to be killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from modelport import create_app
from modelport.extensions import db
from modelport.lazy import LAZY
from tests.support.databases import empty_database_url
from tests.support.models import IRIS_ROW, register_demo
from tests.support.servers import (
    GRACEFUL_SECONDS,
    gunicorn_master,
    server_settings,
    wait_for_workers,
)
from tests.support.tokens import make_token
from tests.support.users import make_user

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

# The libraries whose pages the workers should share: imported by the master.
LIBRARIES = ("numpy", "onnx", "prometheus_client", "sqlalchemy", "flask")
# iris is compiled to ONNX from scikit-learn, digits is an ONNX model: both run on onnxruntime.
MODELS = {"iris": IRIS_ROW, "digits": {f"pixel_{r}_{c}": 0.0 for r in range(8) for c in range(8)}}
# What gunicorn's master does before forking when preload_app is on, then what it holds.
MASTER = """
import gc, json, sys
libraries, lazy = json.loads(sys.stdin.read())
sys.argv = ["gunicorn", "--config", "python:modelport.ops.gunicorn_conf", "modelport:create_app()"]
from gunicorn.app.wsgiapp import WSGIApplication

server = WSGIApplication()
app = server.wsgi()

def state():
    ort = sys.modules.get("onnxruntime")
    sessions = [o for o in gc.get_objects() if ort and isinstance(o, ort.InferenceSession)]
    cache = app.extensions.get("modelport_predictor")
    return {
        "preload": server.cfg.preload_app,
        "libraries": sorted(m for m in libraries if m in sys.modules),
        "lazy": sorted(m for m in lazy if m in sys.modules),
        "pyarrow.csv": "pyarrow.csv" in sys.modules,
        "onnxruntime": ort is not None,
        "sessions": len(sessions),
        "models": len(cache.runtimes) if cache else 0,
    }

master = state()
# The same look after loading the models here, as a worker does: it must see them.
from modelport.serving import predictor
with app.app_context():
    assert predictor.load_served_models() == []
print(json.dumps({"master": master, "loaded": state()}))
"""


def served_database(tmp_path: Path, backend: str, demo_models: dict[str, Any]) -> tuple[str, str]:
    """A fresh migrated database of ``backend`` serving ``MODELS``; its URL and a token."""
    from flask_migrate import upgrade

    url = empty_database_url(backend, tmp_path, "preload")
    # gunicorn_master's servers use this instance folder, so they find the artifacts.
    app = create_app(
        {"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance")}
    )
    with app.app_context():
        upgrade()
    register_demo(app, demo_models, *MODELS)
    make_user(app)
    token = make_token(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return url, token


def test_preload_is_on_unless_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = server_settings()
    assert settings.preload_app is True
    for value, expected in [("false", False), (" OFF ", False), ("0", False), ("true", True)]:
        monkeypatch.setenv("MODELPORT_PRELOAD", value)
        assert settings._switch("MODELPORT_PRELOAD", default=True) is expected
    monkeypatch.setenv("MODELPORT_PRELOAD", "sometimes")
    with pytest.raises(ValueError, match="MODELPORT_PRELOAD must be true or false"):
        settings._switch("MODELPORT_PRELOAD", default=True)


def _master(tmp_path: Path, url: str, **settings: str) -> dict[str, Any]:
    """What a preloading gunicorn master holds, and holds once it has loaded the models."""
    environment = {key: value for key, value in os.environ.items() if "MODELPORT_" not in key}
    environment |= {
        "MODELPORT_ENV": "testing",
        "MODELPORT_DATABASE_URL": url,
        "MODELPORT_INSTANCE_PATH": str(tmp_path / "instance"),
        "MODELPORT_LOG_LEVEL": "WARNING",
        **settings,
    }
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", MASTER],
        input=json.dumps([LIBRARIES, LAZY]),
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_the_master_imports_the_libraries_and_loads_no_model(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    url, _token = served_database(tmp_path, "sqlite", demo_models)
    found = _master(tmp_path, url)
    assert found["master"] == {
        "preload": True,
        "libraries": sorted(LIBRARIES),
        "lazy": [],
        "pyarrow.csv": False,
        "onnxruntime": False,
        "sessions": 0,
        "models": 0,
    }
    # The look above would have seen a model loaded in the master.
    assert found["loaded"]["onnxruntime"] is True
    assert found["loaded"]["sessions"] >= len(MODELS)
    assert found["loaded"]["models"] == len(MODELS)


def test_the_master_imports_the_libraries_named_to_preload(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    url, _token = served_database(tmp_path, "sqlite", demo_models)
    found = _master(tmp_path, url, MODELPORT_PRELOAD_LIBRARIES="pandas, pyarrow.csv")
    assert found["master"]["lazy"] == ["pandas", "pyarrow"]
    assert found["master"]["pyarrow.csv"] is True
    assert found["master"]["onnxruntime"] is False
    # Off without preload: the master imports nothing of the application then.
    off = _master(tmp_path, url, MODELPORT_PRELOAD="false", MODELPORT_PRELOAD_LIBRARIES="pandas")
    assert off["master"]["lazy"] == []


def test_a_library_to_preload_that_is_not_imported_on_first_use_stops_the_server() -> None:
    settings = server_settings()
    assert settings.preload_libraries == []
    assert settings._preload_libraries(" pandas , scipy.stats,") == ["pandas", "scipy.stats"]
    for value in ("os", "onnxruntime", "pandasx"):
        with pytest.raises(ValueError, match="MODELPORT_PRELOAD_LIBRARIES"):
            settings._preload_libraries(value)


@pytest.mark.parametrize(
    "backend_name", ["sqlite", pytest.param("postgres", marks=pytest.mark.services)]
)
def test_preloaded_workers_load_their_own_models_and_answer(
    tmp_path: Path, demo_models: dict[str, Any], backend_name: str
) -> None:
    url, token = served_database(tmp_path, backend_name, demo_models)

    def predict(model: str) -> tuple[int, str | None]:
        response = requests.post(
            f"{master.server.url}/api/v1/models/{model}/predict",
            json={"inputs": MODELS[model]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        body = response.json()
        return response.status_code, body.get("model", {}).get("name")

    with gunicorn_master(tmp_path, url, "-w", "2") as master:
        workers = wait_for_workers(master, 2)
        # The master has imported the libraries (their files are mapped), but not those only
        # some requests need.
        maps = Path(f"/proc/{master.pid}/maps").read_text()
        assert "/site-packages/numpy/" in maps
        assert "/site-packages/pandas/" not in maps
        answered: dict[str, set[int]] = {model: set() for model in MODELS}
        results = []
        with ThreadPoolExecutor(4) as pool:
            # Each worker must answer each model: a request goes to whichever accepts first.
            for _ in range(25):
                batch = [model for model in MODELS for _ in range(8)]
                results += list(zip(batch, pool.map(predict, batch), strict=True))
                for model in MODELS:
                    path = f"/api/v1/models/{model}/predict"
                    answered[model] = {int(pid) for pid in master.served_pids(path)}
                if all(pids == workers for pids in answered.values()):
                    break
        assert master.workers() == workers, "a worker died and was replaced"
        # Each worker loaded its models itself, after the fork; the master never did.
        for pid in workers:
            assert "onnxruntime" in Path(f"/proc/{pid}/maps").read_text()
        assert "onnxruntime" not in Path(f"/proc/{master.pid}/maps").read_text()
        # Every worker exits on SIGTERM, none has to be killed (graceful_timeout is 30 s).
        master.process.send_signal(signal.SIGTERM)
        master.process.wait(timeout=GRACEFUL_SECONDS)

    assert master.process.returncode == 0
    assert "SIGKILL" not in master.server.text()
    assert answered == {model: workers for model in MODELS}
    assert {(model, status, name) for model, (status, name) in results} == {
        (model, 200, model) for model in MODELS
    }
    log = master.server.text()
    assert "Traceback" not in log and "model_load_failed" not in log, log
