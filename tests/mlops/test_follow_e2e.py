"""End to end (issue 13, item 7): train → register in MLflow → follow → predict → move the
alias in MLflow → the running gunicorn with 2 workers serves the new version within the
interval, with no failed request during the swap. Once by MLflow's own webhook delivery, once
by polling."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from modelport import create_app
from modelport.extensions import db
from modelport.serving import registry
from tests.support.databases import migrated_sqlite
from tests.support.load import load, send
from tests.support.mlops import IRIS_ROW, add_demo_dataset, cli, client
from tests.support.processes import wait_for
from tests.support.servers import gunicorn_master, wait_for_workers

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
]

SECRET = "the shared secret of MLflow and this server"
REGISTRY_POLL = 0.5  # how soon each worker sees a moved alias (MODELPORT_REGISTRY_POLL_SECONDS)
MLFLOW_POLL = 2  # MODELPORT_MLFLOW_POLL_SECONDS in the polling run
# The request id and worker of every answer, in gunicorn's access log.
ACCESS = "%(p)s %({x-request-id}i)s %(s)s"
# A sync imports the new version (load, compile, check): seconds, on a loaded machine more.
IMPORT_SECONDS = 30


def _prepare(tmp_path: Path, mlflow_server: str, name: str) -> str:
    """A migrated SQLite database where ``live`` follows the MLflow model ``name`` (trained
    twice by ``modelport train``: MLflow versions 1 and 2), its champion at version 1."""
    url = migrated_sqlite(tmp_path, "follow")
    app = create_app(
        {
            "ENV": "testing",
            "DATABASE_URL": url,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "MLFLOW_TRACKING_URI": mlflow_server,
            "MLFLOW_TRUSTED": "true",
        }
    )
    dataset = add_demo_dataset(app, "iris")
    for c in ("0.05", "30"):
        trained = cli(app, "train", dataset, "--recipe", "logistic-regression", "--name", name,
                      "--param", f"C={c}")  # fmt: skip
        assert trained.exit_code == 0, trained.output
    client(mlflow_server).set_registered_model_alias(name, "champion", "1")
    with app.app_context():
        registry.create_model("live", task="classification")
    followed = cli(app, "follow", "live", name)
    assert "champion → version 1" in followed.output, followed.output
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return url


def _predict(base: str) -> Any:
    return send("predict", "POST", f"{base}/api/v1/models/live/predict",
                json={"inputs": IRIS_ROW})  # fmt: skip


def _champion(base: str) -> int | None:
    answer = requests.get(f"{base}/api/v1/models/live", timeout=10).json()
    return answer["aliases"].get("champion")


@pytest.mark.parametrize("way", ["webhook", "polling"])
def test_a_moved_alias_is_served_by_every_worker_within_the_interval(
    tmp_path: Path, mlflow_server: str, way: str
) -> None:
    name = f"live-{way}-{tmp_path.name[-6:]}".lower().replace("_", "-")
    url = _prepare(tmp_path, mlflow_server, name)
    env = {
        "MODELPORT_MLFLOW_TRACKING_URI": mlflow_server,
        "MODELPORT_MLFLOW_TRUSTED": "true",
        "MODELPORT_REGISTRY_POLL_SECONDS": str(REGISTRY_POLL),
        "MODELPORT_MLFLOW_POLL_SECONDS": str(MLFLOW_POLL) if way == "polling" else "0",
        "MODELPORT_MLFLOW_WEBHOOK_SECRET": SECRET if way == "webhook" else "",
        "MODELPORT_PREDICT_LIMIT_ANONYMOUS": "1000000 per minute",
        "MODELPORT_ROLLUP_SECONDS": "0",
    }
    mlflow = client(mlflow_server)
    options = ("-w", "2", "--access-logformat", ACCESS)
    with gunicorn_master(tmp_path, url, *options, env=env) as master:
        workers = {str(pid) for pid in wait_for_workers(master, 2)}
        base = master.server.url
        hook = None
        if way == "webhook":
            hook = mlflow.create_webhook(
                name=f"modelport-{name}",
                url=f"{base}/api/v1/mlflow/webhook",
                events=["model_version_alias.created"],
                secret=SECRET,
            )
        try:
            with load([lambda: _predict(base)] * 4) as outcomes:
                wait_for(lambda: len(outcomes) >= 40 or None, "answers before the move")
                moved = time.monotonic()
                mlflow.set_registered_model_alias(name, "champion", "2")
                wait_for(lambda: _champion(base) == 2 or None, "the sync", IMPORT_SECONDS + 30)
                synced = time.monotonic()
                # Every worker has looked at the registry again by then.
                time.sleep(REGISTRY_POLL * 2 + 1)
                settled = time.monotonic()
                time.sleep(2)
        finally:
            if hook is not None:
                mlflow.delete_webhook(hook.webhook_id)
        # gunicorn writes a request's access line after its answer has left: the last
        # answers may be in before their lines.
        ids = {o.request_id for o in outcomes if o.request_id}
        wait_for(
            lambda: (
                ids <= set(re.findall(r"^<\d+> (\w+) \d{3}$", master.server.text(), re.M)) or None
            ),
            "an access line for every answer",
            10,
        )
        log = master.server.text()

    served = {rid: pid for pid, rid in re.findall(r"^<(\d+)> (\w+) 200$", log, re.MULTILINE)}
    assert all(o.status == 200 for o in outcomes), [o for o in outcomes if o.status != 200][:3]
    before = [o for o in outcomes if o.received < moved]
    after = [o for o in outcomes if o.sent > settled]
    assert {o.body["model"]["version"] for o in before} == {1}
    assert after and {o.body["model"]["version"] for o in after} == {2}
    # Both workers answered after the swap, each with the new version.
    assert {served.get(o.request_id) for o in after} == workers
    # The alias moved in Modelport within the interval: at once by webhook, within one poll
    # by polling (plus the import of version 2 either way).
    limit = IMPORT_SECONDS + (MLFLOW_POLL * 1.2 if way == "polling" else 0)
    assert synced - moved < limit
