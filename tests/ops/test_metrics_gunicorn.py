"""``/metrics`` under gunicorn with two workers: one scrape shows both workers' counts (the
hot path's included), each request has its JSON line, and the metrics directory is emptied
at start and cleared of a dead worker's live gauges.
"""

from __future__ import annotations

import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector

from tests.support.databases import empty_database_url
from tests.support.deployments import PREDICT, deploy
from tests.support.metrics import sample
from tests.support.models import IRIS_ROW
from tests.support.processes import wait_for
from tests.support.servers import wait_for_workers

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

PREDICTIONS = 60
SCRAPE_TOKEN = "scrape-" + "s" * 40
# A worker writes its counts out twice a second (ops.flusher.INTERVAL).
SETTLE_SECONDS = 10


def _predict(base: str, headers: dict[str, str]) -> int:
    # A connection of its own each time, so that both workers take some.
    response = requests.post(base + PREDICT, json={"inputs": IRIS_ROW}, headers=headers, timeout=20)
    return response.status_code


def _scrape(base: str) -> str:
    response = requests.get(
        base + "/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.text


def _worker_counts(directory: Path, name: str) -> dict[int, float]:
    """Each process's own count of ``name``, from its file in the metrics directory."""
    found = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        total = 0.0
        for metric in MultiProcessCollector.merge([str(path)], accumulate=False):
            total += sum(s.value for s in metric.samples if s.name == name)
        found[pid] = total
    return found


def _request_lines(log: str) -> list[dict[str, Any]]:
    """The request log's JSON lines for predictions."""
    lines = [
        json.loads(line)
        for line in log.splitlines()
        if line.startswith("{") and '"logger": "modelport.request"' in line
    ]
    return [line for line in lines if line["route"] == "/api/v1/models/<ref>/predict"]


def test_one_scrape_sums_both_workers_hot_path_included(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_999999.db").write_bytes(b"left by an earlier server")
    deployment = deploy(tmp_path, empty_database_url("sqlite", tmp_path, "metrics"), demo_models)
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "MODELPORT_TOKEN_CACHE_SECONDS": "60",  # the hot path takes remembered tokens
        "MODELPORT_LOG_FORMAT": "json",
        "MODELPORT_METRICS_TOKEN": SCRAPE_TOKEN,
        "MODELPORT_METRICS_NETWORKS": "",  # the token only, even on loopback
    }
    try:
        with deployment.serve(env=env) as master:
            base = master.server.url
            assert not (directory / "counter_999999.db").exists()
            refused = requests.get(base + "/metrics", timeout=10)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
            with ThreadPoolExecutor(4) as pool:
                statuses = list(
                    pool.map(lambda _: _predict(base, deployment.auth), range(PREDICTIONS))
                )
            assert statuses == [200] * PREDICTIONS
            ok = {"model": "iris", "outcome": "ok"}
            route = {"route": "/api/v1/models/<ref>/predict", "status": "200"}

            def settled() -> str | None:
                text = _scrape(base)
                done = sample(text, "modelport_predictions_total", ok) >= PREDICTIONS
                return text if done else None

            text = wait_for(settled, "both workers' counts in /metrics", SETTLE_SECONDS)
            assert sample(text, "modelport_predictions_total", ok) == PREDICTIONS
            assert sample(text, "modelport_prediction_rows_total", ok) == PREDICTIONS
            assert sample(text, "modelport_http_requests_total", route) == PREDICTIONS
            # Flask answered only a worker's first sight of the token; the hot path the rest.
            flask = sample(
                text, "modelport_fast_path_fallbacks_total", {"reason": "token_not_remembered"}
            )
            assert 1 <= flask <= 2
            per_worker = _worker_counts(directory, "modelport_predictions_total")
            workers = wait_for_workers(master, 2)
            assert sum(per_worker.values()) == PREDICTIONS
            assert {pid for pid, n in per_worker.items() if n} == workers, per_worker

            # Each worker writes its request lines within half a second (ops.flusher).
            wait_for(
                lambda: len(_request_lines(master.server.text())) == PREDICTIONS,
                "a JSON line for every prediction",
                SETTLE_SECONDS,
            )

            # A worker killed: replaced; its counts stay, its live gauges leave the sums.
            victim = min(workers)
            live = directory / f"gauge_livesum_{victim}.db"
            assert live.exists()  # its pool's checked-out connections
            os.kill(victim, signal.SIGKILL)
            wait_for(
                lambda: victim not in master.workers() and len(master.workers()) == 2,
                "a new worker",
                30,
            )
            wait_for(lambda: not live.exists(), "the dead worker's live gauges to go", 10)
            assert sample(_scrape(base), "modelport_predictions_total", ok) == PREDICTIONS
    finally:
        deployment.close()
    predictions = _request_lines(master.server.text())
    assert len(predictions) == PREDICTIONS
    assert {(line["status"], line["user_id"]) for line in predictions} == {
        (200, deployment.user_id)
    }
