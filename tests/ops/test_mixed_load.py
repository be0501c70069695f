"""A minute of mixed load (issue 12, item 9): pages, sign-ins, token predictions and CSV
uploads at once against gunicorn with two workers on PostgreSQL, with Redis (a server of the
test's own) keeping the rate-limit counts. Not one answer is a 5xx or missing, and the
predictions table holds exactly one record per 2xx prediction answer.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.databases import empty_database_url
from tests.support.deployments import ADMIN_EMAIL, deploy
from tests.support.load import load, predict, predict_csv, send, sign_in
from tests.support.models import csv_body
from tests.support.private_servers import private_redis
from tests.support.users import PASSWORD

pytestmark = pytest.mark.slow

LOAD_SECONDS = 60
PREDICTING = 3  # client threads predicting one row with a token
CSV_ROWS = 200
PAGES = ("/", "/models", "/models/iris", "/auth/login")
EXPECTED = {
    ("predict", 200),
    ("csv", 200),
    ("page", 200),
    ("sign-in page", 200),
    ("sign-in", 302),
    ("account", 200),
    ("sign-out", 302),
}


def test_a_minute_of_mixed_load_has_no_5xx_and_a_record_per_2xx_prediction(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    body = csv_body(CSV_ROWS, demo_models)
    pages = itertools.cycle(PAGES)
    with private_redis() as redis_server:
        deployment = deploy(
            tmp_path, empty_database_url("postgres", tmp_path, "mixed"), demo_models
        )
        # As in production: Redis for the counts, tokens remembered (the hot path).
        env = {"MODELPORT_REDIS_URL": redis_server.url, "MODELPORT_TOKEN_CACHE_SECONDS": "60"}
        try:
            with deployment.serve(env=env) as master:
                url = master.server.url
                workers = master.workers()
                clients = [lambda: predict(url, deployment.token)] * PREDICTING
                clients += [
                    lambda: predict_csv(url, deployment.token, body),
                    lambda: send("page", "GET", url + next(pages)),
                    lambda: sign_in(url, ADMIN_EMAIL, PASSWORD),
                ]
                with load(clients) as outcomes:
                    time.sleep(LOAD_SECONDS)
                assert master.workers() == workers
            records = deployment.records()
            log = master.server.text()
        finally:
            deployment.close()

    seen = {(o.kind, o.status) for o in outcomes}
    assert seen == EXPECTED, sorted(seen - EXPECTED, key=str)
    predicted = {o.request_id: o for o in outcomes if o.kind in ("predict", "csv")}
    by_request = {r.request_id: r for r in records}
    assert len(by_request) == len(records), "two records of one request"
    assert set(by_request) == set(predicted)
    for request_id, outcome in predicted.items():
        record = by_request[request_id]
        if outcome.kind == "csv":
            assert (record.status, record.source, record.row_count) == ("ok", "csv", CSV_ROWS)
            assert outcome.text.count("\n") == CSV_ROWS + 1
        else:
            assert (record.status, record.source, record.row_count) == ("ok", "api", 1)
            assert outcome.body["record_id"] == record.id
    assert "unhandled error" not in log
    kinds = {kind: sum(o.kind == kind for o in outcomes) for kind, _ in sorted(EXPECTED)}
    print(f"\n{len(outcomes)} requests in {LOAD_SECONDS} s: {kinds}; {len(records)} records")
