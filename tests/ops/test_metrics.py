"""``/metrics`` and the request log line, in one process (``test_metrics_gunicorn`` has the
workers): what is counted, by which labels, once per request whichever path answered it, and
who may read it.

Counters live in the test process across apps, so every test compares a value before and
after what it does. A request is counted once its answer has been read (a server reads and
closes every answer; the test client only when asked), so each test reads what it counts.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from modelport.ops import flusher, metrics
from modelport.ops.request_log import LOGGER
from tests.support.http import assert_api_error, bearer
from tests.support.metrics import sample
from tests.support.models import IRIS_ROW, register_demo
from tests.support.tokens import issue_token
from tests.support.users import login, make_user

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

PREDICT = "/api/v1/models/iris/predict"
PREDICT_ROUTE = "/api/v1/models/<ref>/predict"
VERSION_ROUTE = "/api/v1/models/<name>/versions/<int:number>/predict"
REMEMBER = {"TOKEN_CACHE_SECONDS": "60"}
OUTSIDE = {"REMOTE_ADDR": "203.0.113.9"}


def scrape(client: FlaskClient, **kwargs: Any) -> str:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=")
    return response.get_data(as_text=True)


def predictions(client: FlaskClient, outcome: str, source: str = "api") -> float:
    labels = {"model": "iris", "version": "1", "source": source, "outcome": outcome}
    return sample(scrape(client), "modelport_predictions_total", labels)


def predict(client: FlaskClient, token: str, inputs: Any) -> TestResponse:
    """A prediction with its answer read (so it is counted)."""
    response = client.post(PREDICT, json={"inputs": inputs}, headers=bearer(token))
    response.get_data()
    return response


@pytest.fixture
def served(app_factory: Any, demo_models: dict[str, Any]) -> Flask:
    app = app_factory(**REMEMBER, PREDICT_LIMIT_USER="1000 per minute")
    register_demo(app, demo_models, "iris")
    return app


@pytest.fixture
def token(served: Flask) -> str:
    return issue_token(served, make_user(served), scopes=["predict"])


@pytest.fixture
def client(served: Flask) -> FlaskClient:
    return served.test_client()


def test_a_request_is_counted_once_by_its_route_template(client: FlaskClient) -> None:
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    before = sample(scrape(client), "modelport_http_requests_total", labels)
    histogram = sample(scrape(client), "modelport_http_request_duration_seconds_count", labels)
    assert client.get("/healthz").get_json() == {"status": "ok"}
    text = scrape(client)
    assert sample(text, "modelport_http_requests_total", labels) == before + 1
    assert sample(text, "modelport_http_request_duration_seconds_count", labels) == histogram + 1


def test_paths_no_route_matches_share_one_label(client: FlaskClient) -> None:
    labels = {"method": "GET", "route": "unmatched", "status": "404"}
    before = sample(scrape(client), "modelport_http_requests_total", labels)
    for n in range(3):
        response = client.get(f"/no/such/page/{n}")
        assert response.status_code == 404 and response.get_data()
    text = scrape(client)
    assert sample(text, "modelport_http_requests_total", labels) == before + 3
    assert "/no/such/page" not in text


def test_a_model_path_is_counted_by_template_not_by_name(client: FlaskClient, token: str) -> None:
    labels = {"method": "POST", "route": VERSION_ROUTE, "status": "200"}
    before = sample(scrape(client), "modelport_http_requests_total", labels)
    path = "/api/v1/models/iris/versions/1/predict"
    for _ in range(2):  # the first through Flask (the token is checked), then the hot path
        response = client.post(path, json={"inputs": IRIS_ROW}, headers=bearer(token))
        assert response.get_json()["model"]["version"] == 1
    assert sample(scrape(client), "modelport_http_requests_total", labels) == before + 2


def test_the_hot_path_and_the_view_count_a_prediction_once(
    served: Flask, client: FlaskClient, token: str
) -> None:
    hot = served.extensions["modelport_fast_path"]
    ok = predictions(client, "ok")
    rows = sample(
        scrape(client),
        "modelport_prediction_rows_total",
        {"model": "iris", "source": "api", "outcome": "ok"},
    )
    inference = sample(
        scrape(client), "modelport_inference_duration_seconds_count", {"model": "iris"}
    )
    answered = hot.answered
    assert predict(client, token, IRIS_ROW).status_code == 200  # the view
    assert predict(client, token, [IRIS_ROW, IRIS_ROW]).status_code == 200  # the hot path
    assert hot.answered == answered + 1
    text = scrape(client)
    assert predictions(client, "ok") == ok + 2
    labels = {"model": "iris", "source": "api", "outcome": "ok"}
    assert sample(text, "modelport_prediction_rows_total", labels) == rows + 3
    assert (
        sample(text, "modelport_inference_duration_seconds_count", {"model": "iris"})
        == inference + 2
    )


def test_a_request_the_hot_path_hands_to_flask_is_counted_once(
    served: Flask, client: FlaskClient, token: str
) -> None:
    assert predict(client, token, IRIS_ROW).status_code == 200  # the token is remembered
    invalid = predictions(client, "invalid")
    fallbacks = sample(
        scrape(client), "modelport_fast_path_fallbacks_total", {"reason": "invalid_input"}
    )
    bad = {"inputs": {**IRIS_ROW, "sepal_length": "long"}}
    response = predict(client, token, bad["inputs"])
    assert_api_error(response, 422, "invalid_input")
    text = scrape(client)
    assert predictions(client, "invalid") == invalid + 1
    labels = {"reason": "invalid_input"}
    assert sample(text, "modelport_fast_path_fallbacks_total", labels) == fallbacks + 1


def test_a_spent_budget_is_counted_as_throttled(
    app_factory: Any, demo_models: dict[str, Any]
) -> None:
    app = app_factory(PREDICT_LIMIT_USER="1 per minute")
    register_demo(app, demo_models, "iris")
    client = app.test_client()
    token = issue_token(app, make_user(app), scopes=["predict"])
    throttled = predictions(client, "throttled")
    assert predict(client, token, IRIS_ROW).status_code == 200
    assert_api_error(predict(client, token, IRIS_ROW), 429)
    assert predictions(client, "throttled") == throttled + 1


def test_records_and_model_loads_are_counted(served: Flask, client: FlaskClient, token: str):
    recorded = sample(scrape(client), "modelport_prediction_records_total")
    loads = sample(scrape(client), "modelport_model_load_seconds_count", {"model": "iris"})
    assert predict(client, token, IRIS_ROW).status_code == 200
    text = scrape(client)
    assert sample(text, "modelport_prediction_records_total") == recorded + 1
    # This app loaded iris once for its first prediction, and not again for later ones.
    assert sample(text, "modelport_model_load_seconds_count", {"model": "iris"}) == loads + 1
    assert predict(client, token, IRIS_ROW).status_code == 200
    assert sample(scrape(client), "modelport_model_load_seconds_count", {"model": "iris"}) == (
        loads + 1
    )


def test_failed_sign_ins_are_counted(app: Flask) -> None:
    client = app.test_client()
    failures = sample(scrape(client), "modelport_login_failures_total")
    make_user(app, email="ann@example.com")
    response = login(client, "ann@example.com", "not the password at all")
    assert response.status_code == 400 and response.get_data()  # the form again, with why
    assert sample(scrape(client), "modelport_login_failures_total") == failures + 1


# ---- who may read it --------------------------------------------------------------------


def test_loopback_may_scrape_without_a_token(client: FlaskClient) -> None:
    assert "modelport_http_requests_total" in scrape(client)


def test_another_address_is_refused_without_a_token(client: FlaskClient) -> None:
    response = client.get("/metrics", environ_base=OUTSIDE)
    assert_api_error(response, 403, "forbidden")
    assert "modelport_" not in response.get_data(as_text=True)


def test_the_scrape_token_opens_it_from_anywhere(app_factory: Any) -> None:
    client = app_factory(METRICS_TOKEN="s" * 40).test_client()
    response = client.get("/metrics", environ_base=OUTSIDE, headers=bearer("s" * 40))
    assert response.status_code == 200
    assert_api_error(
        client.get("/metrics", environ_base=OUTSIDE, headers=bearer("t" * 40)), 401, "unauthorized"
    )
    assert_api_error(client.get("/metrics", environ_base=OUTSIDE), 401, "unauthorized")


def test_an_account_token_does_not_open_it(served: Flask, token: str) -> None:
    client = served.test_client()
    response = client.get("/metrics", environ_base=OUTSIDE, headers=bearer(token))
    assert_api_error(response, 403, "forbidden")


def test_allowed_networks_are_judged_on_the_forwarded_address(app_factory: Any) -> None:
    client = app_factory(PROXY_HOPS="1", METRICS_NETWORKS="10.0.0.0/8").test_client()
    # nginx on loopback forwards a client from outside: the client's address counts.
    outside = {"X-Forwarded-For": "203.0.113.9"}
    assert_api_error(client.get("/metrics", headers=outside), 403, "forbidden")
    inside = {"X-Forwarded-For": "10.1.2.3"}
    assert client.get("/metrics", headers=inside).status_code == 200


def test_an_empty_network_list_leaves_the_token_only(app_factory: Any) -> None:
    client = app_factory(METRICS_NETWORKS="", METRICS_TOKEN="s" * 40).test_client()
    assert_api_error(client.get("/metrics"), 401, "unauthorized")
    assert client.get("/metrics", headers=bearer("s" * 40)).status_code == 200


def test_switched_off_there_is_nothing_to_read_and_nothing_counted(
    app_factory: Any,
) -> None:
    client = app_factory(METRICS="false").test_client()
    try:
        labels = {"method": "GET", "route": "/healthz", "status": "200"}
        text = metrics.exposition().decode()
        before = sample(text, "modelport_http_requests_total", labels)
        assert client.get("/healthz").status_code == 200
        assert_api_error(client.get("/metrics"), 404, "not_found")
        after = sample(metrics.exposition().decode(), "modelport_http_requests_total", labels)
        assert after == before
    finally:
        metrics.configure(True)


@pytest.mark.parametrize("value", ["10.0.0.0/33", "example.com", "10.0.0.0/8,,nonsense"])
def test_a_bad_network_setting_stops_the_app(app_factory: Any, value: str) -> None:
    from modelport.config import ConfigError

    with pytest.raises(ConfigError, match="MODELPORT_METRICS_NETWORKS"):
        app_factory(METRICS_NETWORKS=value)


# ---- the request log line ---------------------------------------------------------------


def capture(app: Flask) -> io.StringIO:
    """Where the app's request lines go from now on (stderr otherwise)."""
    stream = io.StringIO()
    app.extensions["modelport_request_log"].stream = stream
    return stream


def lines(stream: io.StringIO) -> list[str]:
    flusher.flush_all()  # the lines a request noted are written in the background
    return stream.getvalue().splitlines()


def test_one_json_line_per_request_from_the_hot_path_too(
    served: Flask, client: FlaskClient, token: str
) -> None:
    user = make_user(served, email="bob@example.com")
    headers = {**bearer(issue_token(served, user, scopes=["predict"])), "X-Request-ID": "req-42"}
    hot_path = served.extensions["modelport_fast_path"]
    answered = hot_path.answered
    stream = capture(served)
    # The first through Flask (the token is checked and remembered), then the hot path.
    client.post(PREDICT, json={"inputs": IRIS_ROW}, headers=headers).get_data()
    response = client.post(PREDICT, json={"inputs": IRIS_ROW}, headers=headers)
    assert response.status_code == 200 and response.get_data()
    assert hot_path.answered == answered + 1
    found = [json.loads(line) for line in lines(stream)]
    assert len(found) == 2
    hot = found[1]
    assert set(hot) == {
        "time",
        "level",
        "logger",
        "message",
        "request_id",
        "user_id",
        "method",
        "route",
        "path",
        "status",
        "latency_ms",
        "bytes",
        "ip",
    }
    assert hot["time"].endswith("+00:00")
    assert (hot["level"], hot["logger"], hot["message"]) == ("INFO", LOGGER, "request")
    assert (hot["request_id"], hot["user_id"]) == ("req-42", user)
    assert (hot["method"], hot["route"], hot["path"]) == ("POST", PREDICT_ROUTE, PREDICT)
    assert (hot["status"], hot["ip"]) == (200, "127.0.0.1")
    assert hot["bytes"] == len(response.get_data())
    assert hot["latency_ms"] >= 0
    flask = found[0]
    assert (flask["route"], flask["user_id"], flask["request_id"]) == (
        PREDICT_ROUTE,
        user,
        "req-42",
    )


def test_the_line_never_carries_a_query_string_or_credentials(app: Flask) -> None:
    stream = capture(app)
    path = "/auth/login?next=/secret-place"
    app.test_client().get(path, headers=bearer("tok-" + "x" * 30)).get_data()
    (line,) = lines(stream)
    assert "secret-place" not in line and "tok-" not in line
    assert json.loads(line)["path"] == "/auth/login"


def test_development_writes_a_text_line(app_factory: Any) -> None:
    app = app_factory(LOG_FORMAT="text")
    stream = capture(app)
    app.test_client().get("/healthz", headers={"X-Request-ID": "abc"}).get_data()
    (line,) = lines(stream)
    stamp, rest = line.split(" ", 1)
    assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)
    assert rest.startswith("127.0.0.1 GET /healthz 200 16B ")
    assert rest.endswith(" user=- id=abc")


def test_the_line_can_be_switched_off(app_factory: Any, capsys: pytest.CaptureFixture) -> None:
    client = app_factory(REQUEST_LOG="false").test_client()
    client.get("/healthz").get_data()
    assert LOGGER not in capsys.readouterr().err
    assert "modelport_request_log" in app_factory().extensions  # on by default


def test_a_warning_log_level_leaves_the_line_out(app_factory: Any) -> None:
    app = app_factory(LOG_LEVEL="WARNING")
    stream = capture(app)
    app.test_client().get("/healthz").get_data()
    assert lines(stream) == []


def test_the_hand_written_line_is_json_for_any_path(app: Flask) -> None:
    """The line is written out by hand for speed; whatever path a client sends, it parses."""
    stream = capture(app)
    client = app.test_client()
    for path in ('/a"b', "/a\\b", "/ünï", "/a%00b"):
        client.get(path).get_data()
    paths = [json.loads(line)["path"] for line in lines(stream)]
    assert paths == ['/a"b', "/a\\b", "/ünï".encode().decode("latin-1"), "/a\x00b"]


def test_every_metric_is_in_the_operations_guide() -> None:
    from prometheus_client.metrics import MetricWrapperBase

    guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    names = [
        metric._name + ("_total" if metric._type == "counter" else "")
        for metric in vars(metrics).values()
        if isinstance(metric, MetricWrapperBase)
    ]
    assert len(names) == 16
    missing = [name for name in names if f"| `{name}` |" not in guide]
    assert not missing, f"docs/operations.md lacks a row for {missing}"


def test_a_worker_loop_writes_the_notes_out_itself_without_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under gunicorn the worker calls ``flush_if_due`` between requests (ops.worker): no
    thread is started, and the notes go out once ``INTERVAL`` has passed, once."""
    import threading
    import time

    monkeypatch.setattr(flusher, "_in_worker_loop", False)
    monkeypatch.setattr(flusher, "_running", False)
    written: list[float] = []
    this_thread = threading.current_thread()

    def flush() -> None:
        # Only this thread's calls: an earlier test's flusher thread may still be running.
        if threading.current_thread() is this_thread:
            written.append(time.monotonic())

    monkeypatch.setattr(flusher, "_flushers", [lambda: flush])
    flusher.run_in_worker_loop()
    threads = threading.active_count()
    flusher.ensure_running()
    assert threading.active_count() == threads
    assert flusher._running is False
    flusher.flush_if_due()
    assert written == []  # not due yet
    started = time.monotonic()
    time.sleep(flusher.INTERVAL)
    flusher.flush_if_due()
    flusher.flush_if_due()
    assert len(written) == 1
    assert written[0] - started >= flusher.INTERVAL - 0.05
