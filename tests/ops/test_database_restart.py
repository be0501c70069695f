"""PostgreSQL stopped and started again under load (issue 12, item 9), on a server of the
test's own: during the outage every caller gets a 503 (JSON on the API, a page on the web),
never a 500 or a hang; /readyz says 503 and then 200 again; the same workers serve again
within a liveness bound, without a restart of the app.

The crash of the server (no shutdown at all) and the durability of every 2xx across it are
tests/ops/test_serving_reliability.py's; this one is the operator's restart.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.deployments import deploy
from tests.support.load import load, predict, send
from tests.support.private_servers import private_server
from tests.support.processes import wait_for

pytestmark = pytest.mark.slow

PREDICTING = 4  # client threads predicting with a token
# Answers to wait for before and after the outage.
LOAD_STEP = 40
# The first 2xx prediction comes at most this long after the server is back (a liveness
# bound: it takes well under a second on an idle machine).
RECOVERY_SECONDS = 10
# Pages that read the registry; one client thread each.
PAGES = ("/models", "/models/iris")


def _readyz(url: str) -> tuple[int, dict]:
    response = requests.get(f"{url}/readyz", timeout=30)
    return response.status_code, response.json()


def test_postgres_restart_under_load_gives_503s_then_recovers(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    with private_server("postgres") as cluster:
        deployment = deploy(tmp_path, cluster.url, demo_models)
        try:
            with deployment.serve() as master:
                url = master.server.url
                workers = master.workers()
                clients = [lambda: predict(url, deployment.token)] * PREDICTING
                clients += [lambda page=page: send("page", "GET", url + page) for page in PAGES]
                with load(clients) as outcomes:
                    wait_for(lambda: len(outcomes) > LOAD_STEP, "the load to get going")
                    assert _readyz(url)[0] == 200
                    cluster.stop()
                    stopped = time.monotonic()
                    wait_for(
                        lambda: sum(o.sent > stopped for o in outcomes) > LOAD_STEP,
                        "answers while the database is down",
                    )
                    # Both workers are asked: each says not ready.
                    down = [_readyz(url) for _ in range(6)]
                    starting = time.monotonic()
                    cluster.start()
                    started = time.monotonic()
                    first_ok = wait_for(
                        lambda: next(
                            (
                                o
                                for o in outcomes
                                if o.kind == "predict" and o.sent > started and o.status == 200
                            ),
                            None,
                        ),
                        "a prediction answered 200 after the restart",
                        RECOVERY_SECONDS + 5,
                    )
                    wait_for(lambda: _readyz(url)[0] == 200, "/readyz to say ready again")
                    up = [_readyz(url) for _ in range(6)]
                    ready = time.monotonic()
                    wait_for(
                        lambda: sum(o.sent > ready for o in outcomes) > LOAD_STEP,
                        "answers after recovery",
                    )
                booted = master.booted()
                after = master.workers()
        finally:
            deployment.close()

    hung = [o for o in outcomes if o.status is None]
    assert hung == [], [(o.kind, o.error) for o in hung]
    assert {o.status for o in outcomes} == {200, 503}, sorted(
        {(o.kind, o.status) for o in outcomes}
    )
    # While the server was down (after it stopped, before it was started): 503s only.
    outage = [o for o in outcomes if o.sent > stopped and o.received < starting]
    assert {(o.kind, o.status) for o in outage} == {("predict", 503), ("page", 503)}
    for outcome in (o for o in outcomes if o.status == 503):
        assert outcome.retry_after == "5"
        if outcome.kind == "predict":
            assert outcome.body["error"]["code"] == "database_unavailable", outcome.body
        else:
            assert outcome.content_type.startswith("text/html")
            assert "The database is unavailable at the moment. Try again shortly." in outcome.text
    assert (
        down
        == [
            (
                503,
                {
                    "status": "not ready",
                    "checks": {
                        "database": "unavailable: the database does not answer",
                        "migrations": "unknown",
                    },
                },
            )
        ]
        * 6
    )
    assert (
        up
        == [
            (
                200,
                {
                    "status": "ready",
                    "checks": {"database": "ok", "migrations": "ok", "models": "ok"},
                },
            )
        ]
        * 6
    )
    assert first_ok.received - started < RECOVERY_SECONDS
    # After recovery everything is answered again, by the same two workers as before.
    assert {o.status for o in outcomes if o.sent > ready} == {200}
    assert len(booted) == 2
    assert after == workers
    print(
        f"\n{len(outcomes)} requests, {len(outage)} during the outage (all 503); first 200 "
        f"{first_ok.received - started:.2f} s after the server was back"
    )
