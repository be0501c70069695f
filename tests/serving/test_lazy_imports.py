"""What a server process imports (``modelport.lazy``): started, and serving ONNX models, it
has imported none of the libraries only some features need, so gunicorn's workers do not
carry them (``bench/memory.py``); the first request that needs one imports it and is
answered as before.

Each check runs in a new Python process: this one has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelport.lazy import LAZY, lazy
from modelport.serving.demo import DEMO_NAMES, demo_dataset
from tests.support.databases import empty_database_url
from tests.support.deployments import deploy
from tests.support.models import register_demo

# Runs in the new process: argv[1] is the app's settings, the token, the rows and the steps.
SCRIPT = """
import json, sys
from modelport import create_app
from modelport.lazy import LAZY

config, token, rows, csv_model = json.loads(sys.argv[1])
auth = {"Authorization": f"Bearer {token}"}
loaded = lambda: sorted(name for name in LAZY if name in sys.modules)
app = create_app(config)
report = {"started": loaded()}
client = app.test_client()
assert client.get("/readyz").status_code == 200
for name, row in rows.items():
    for body in ({"inputs": row}, {"inputs": [row, row, row]}):
        answer = client.post(f"/api/v1/models/{name}/predict", json=body, headers=auth)
        assert answer.status_code == 200, answer.get_data(as_text=True)
    assert client.get(f"/api/v1/models/{name}", headers=auth).status_code == 200
report["served"] = loaded()
row = rows[csv_model]
csv = ",".join(row) + "\\n" + ",".join(str(v) for v in row.values()) + "\\n"
answer = client.post(
    f"/api/v1/models/{csv_model}/predict",
    data=csv,
    headers={**auth, "Content-Type": "text/csv"},
)
lines = answer.get_data(as_text=True).splitlines()
report["csv"] = [answer.status_code, answer.mimetype, len(lines), loaded()]
print(json.dumps(report))
"""


@pytest.fixture
def served(tmp_path: Path, demo_models: dict[str, Any]) -> dict[str, Any]:
    """The report of a new process that started the app over the four demo models (all
    served by onnxruntime) and answered predictions of each, then a CSV upload."""
    deployment = deploy(tmp_path, empty_database_url("sqlite", tmp_path, "lazy"), demo_models)
    register_demo(deployment.app, demo_models, *(n for n in DEMO_NAMES if n != "iris"))
    deployment.close()
    rows = {
        name: {str(k): float(v) for k, v in demo_dataset(name)[0].iloc[0].items()}
        for name in DEMO_NAMES
    }
    config = {
        "ENV": "testing",
        "DATABASE_URL": deployment.database_url,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "ARTIFACTS_DIR": str(deployment.artifacts),
        "RECORD_PREDICTIONS": True,
        "LOG_LEVEL": "WARNING",
    }
    argument = json.dumps([config, deployment.token, rows, "iris"])
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, argument], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_server_serving_onnx_models_has_imported_none_of_the_lazy_libraries(
    served: dict[str, Any],
) -> None:
    assert served["started"] == []
    assert served["served"] == []


def test_the_first_csv_request_imports_what_it_needs_and_is_answered(
    served: dict[str, Any],
) -> None:
    status, mimetype, lines, loaded = served["csv"]
    assert (status, mimetype, lines) == (200, "text/csv", 2)  # the header and the row
    assert "pyarrow" in loaded


def test_a_lazy_module_answers_as_the_module_and_cannot_be_changed_through() -> None:
    json_module = lazy("json")
    assert json_module.dumps([1]) == "[1]"
    assert "imported" in repr(json_module)
    with pytest.raises(AttributeError, match="imported on first use"):
        json_module.dumps = None
    assert set(LAZY) >= {"pandas", "pyarrow", "sklearn", "scipy"}
