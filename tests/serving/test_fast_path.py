"""The predict hot path (``modelport.api.fastpath``): the same answer and record as the view,
and every request it does not own left to the view, with nothing counted or written twice.

``app.extensions["modelport_fast_path"].answered`` counts the requests the hot path answered,
so each test can say which path served a request. The hot path only trusts tokens this worker
remembers, so these apps remember them (the test settings turn that memory off elsewhere).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, TestResponse

from modelport.api.fastpath import GROUP
from modelport.extensions import db
from modelport.models.predictions import PredictionRecord
from modelport.serving.records import RecordGroup
from tests.support.databases import transactions
from tests.support.http import assert_api_error, bearer
from tests.support.models import IRIS_ROW, register_demo
from tests.support.servers import closed_port
from tests.support.tokens import issue_token
from tests.support.users import make_user

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

PREDICT = "/api/v1/models/iris/predict"
BODY = {"inputs": IRIS_ROW}
# What differs between two answers to the same input, whichever path gave them.
PER_REQUEST = {"request_id", "timing_ms", "record_id"}
REMEMBER = {"TOKEN_CACHE_SECONDS": "60"}


def answered(app: Flask) -> int:
    return app.extensions["modelport_fast_path"].answered


def records(app: Flask) -> list[PredictionRecord]:
    with app.app_context():
        found = list(db.session.scalars(sa.select(PredictionRecord).order_by(PredictionRecord.id)))
        db.session.expunge_all()
        return found


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


def warm(client: FlaskClient, token: str) -> TestResponse:
    """The first request with a token goes through Flask, which checks the token in the
    database and remembers it; later ones may take the hot path."""
    response = client.post(PREDICT, json=BODY, headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def comparable(response: TestResponse) -> tuple[dict, dict[str, str]]:
    body = {k: v for k, v in response.get_json().items() if k not in PER_REQUEST}
    headers = {
        name: value
        for name, value in response.headers.items()
        if name not in {"X-Request-ID", "Content-Length"}
    }
    return body, headers


@pytest.mark.db
def test_the_hot_path_answers_and_records_like_the_view(
    served: Flask, client: FlaskClient, token: str
) -> None:
    by_view = warm(client, token)
    assert answered(served) == 0
    by_hot_path = client.post(PREDICT, json=BODY, headers=bearer(token))
    assert answered(served) == 1
    assert by_hot_path.status_code == 200
    assert comparable(by_hot_path) == comparable(by_view)
    assert by_hot_path.headers["Cache-Control"] == "no-store"
    assert "object-src 'none'" in by_hot_path.headers["Content-Security-Policy"]
    first, second = records(served)
    assert second.id == by_hot_path.get_json()["record_id"]
    assert second.request_id == by_hot_path.get_json()["request_id"]
    assert second.request_id == by_hot_path.headers["X-Request-ID"]
    for field in ("user_id", "token_id", "version_id", "source", "status", "row_count"):
        assert getattr(second, field) == getattr(first, field), field
    assert (second.inputs, second.outputs) == (first.inputs, first.outputs)
    assert first.user_id is not None and first.token_id is not None


def test_the_hot_path_keeps_a_sane_request_id_and_replaces_others(
    served: Flask, client: FlaskClient, token: str
) -> None:
    warm(client, token)
    kept = client.post(PREDICT, json=BODY, headers={**bearer(token), "X-Request-ID": "job-7.a"})
    replaced = client.post(PREDICT, json=BODY, headers={**bearer(token), "X-Request-ID": "a b"})
    assert answered(served) == 2
    assert kept.headers["X-Request-ID"] == kept.get_json()["request_id"] == "job-7.a"
    assert replaced.get_json()["request_id"] != "a b"
    assert replaced.headers["X-Request-ID"] == replaced.get_json()["request_id"]


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "code"),
    [
        (PREDICT + "?debug=1", {"json": BODY}, 200, None),
        (PREDICT, {"json": BODY, "headers": {"Accept": "text/csv"}}, 200, None),
        (PREDICT, {"data": b"{not json", "content_type": "application/json"}, 400, "invalid_json"),
        (PREDICT, {"json": {"inputs": {"sepal_length": 1}}}, 422, "invalid_input"),
        (PREDICT, {"json": {"rows": [IRIS_ROW]}}, 422, "invalid_input"),
        ("/api/v1/models/nope/predict", {"json": BODY}, 404, "model_not_found"),
        ("/api/v1/models/iris@nope/predict", {"json": BODY}, 404, "model_not_found"),
        ("/api/v1/models/iris/versions/9/predict", {"json": BODY}, 404, "model_not_found"),
    ],
    ids=[
        "query-string",
        "accept-csv",
        "invalid-json",
        "invalid-inputs",
        "wrong-body",
        "unknown-model",
        "unknown-alias",
        "unknown-version",
    ],
)
def test_requests_the_hot_path_does_not_own_get_the_views_answer(
    served: Flask,
    client: FlaskClient,
    token: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    warm(client, token)
    before = len(records(served))
    headers = {**bearer(token), **kwargs.pop("headers", {})}
    response = client.post(path, headers=headers, **kwargs)
    assert answered(served) == 0
    if code is not None:
        assert_api_error(response, status, code)
        assert len(records(served)) == before  # refused input is not recorded
    else:
        assert response.status_code == status
        assert len(records(served)) == before + 1


def test_the_hot_path_answers_warnings_as_the_view_does(
    served: Flask, client: FlaskClient, token: str
) -> None:
    """An input outside the training range is predicted with a warning, in the same answer
    from either path (both take the prediction service's steps)."""
    outside = {"inputs": {**IRIS_ROW, "petal_width": 99.0}}
    by_view = client.post(PREDICT, json=outside, headers=bearer(token))  # remembers the token
    by_hot_path = client.post(PREDICT, json=outside, headers=bearer(token))
    assert answered(served) == 1
    assert by_hot_path.get_json()["warnings"][0]["field"] == "petal_width"
    assert comparable(by_hot_path) == comparable(by_view)


def test_cookies_and_unknown_tokens_go_to_the_view(
    served: Flask, client: FlaskClient, token: str
) -> None:
    warm(client, token)
    client.set_cookie("modelport_session", "whatever")
    assert client.post(PREDICT, json=BODY, headers=bearer(token)).status_code == 200
    client.delete_cookie("modelport_session")
    assert_api_error(
        client.post(PREDICT, json=BODY, headers=bearer("mp_" + "x" * 40)), 401, "invalid_token"
    )
    assert answered(served) == 0


def test_a_private_model_serves_tokens_on_the_hot_path_and_stays_hidden_from_others(
    app_factory: Any, demo_models: dict[str, Any]
) -> None:
    app = app_factory(**REMEMBER)
    register_demo(app, demo_models, "iris", visibility="private")
    token = issue_token(app, make_user(app), scopes=["predict"])
    client = app.test_client()
    warm(client, token)
    assert client.post(PREDICT, json=BODY, headers=bearer(token)).status_code == 200
    assert answered(app) == 1
    assert_api_error(client.post(PREDICT, json=BODY), 404, "model_not_found")
    assert answered(app) == 1


def test_the_budget_is_counted_once_per_request_on_either_path(
    app_factory: Any, demo_models: dict[str, Any]
) -> None:
    app = app_factory(**REMEMBER, PREDICT_LIMIT_USER="3 per minute")
    register_demo(app, demo_models, "iris")
    token = issue_token(app, make_user(app), scopes=["predict"])
    client = app.test_client()
    warm(client, token)
    for _ in range(2):
        assert client.post(PREDICT, json=BODY, headers=bearer(token)).status_code == 200
    assert answered(app) == 2
    refused = client.post(PREDICT, json=BODY, headers=bearer(token))
    assert_api_error(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    assert len(records(app)) == 3


def test_a_failing_model_is_recorded_once(
    served: Flask, client: FlaskClient, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelport.serving.inference import PredictionFailed

    warm(client, token)

    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise PredictionFailed("The model produced a value that is not a finite number.")

    monkeypatch.setattr("modelport.serving.inference.check_finite", fail)
    assert_api_error(client.post(PREDICT, json=BODY, headers=bearer(token)), 422)
    assert answered(served) == 0
    statuses = [record.status for record in records(served)]
    assert statuses == ["ok", "error"]


def test_a_revoked_token_is_refused_at_once_by_the_worker_that_revoked_it(
    served: Flask, client: FlaskClient, token: str
) -> None:
    from modelport.auth.tokens import revoke_token
    from modelport.models.tokens import ApiToken

    warm(client, token)
    assert client.post(PREDICT, json=BODY, headers=bearer(token)).status_code == 200
    with served.app_context():
        issued = db.session.scalars(sa.select(ApiToken)).one()
        assert revoke_token(issued.user, issued.id)
        db.session.commit()
    assert_api_error(client.post(PREDICT, json=BODY, headers=bearer(token)), 401, "invalid_token")
    assert answered(served) == 1


def drop_connections(app: Flask, backend: str) -> None:
    """End the app's idle database connections the way a database restart would (SQLite has no
    server: its pooled records connection is closed under the pool instead)."""
    with app.app_context():
        if backend == "sqlite":
            raw = db.engines["records"].raw_connection()
            raw.dbapi_connection.close()
            raw.close()
            return
        outsider = sa.create_engine(db.engine.url)
        try:
            with outsider.connect() as connection:
                if backend == "postgres":
                    connection.execute(
                        sa.text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )
                else:
                    ids = connection.execute(
                        sa.text(
                            "SELECT id FROM information_schema.processlist "
                            "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
                        )
                    ).scalars()
                    for process_id in list(ids):
                        connection.execute(sa.text(f"KILL {int(process_id)}"))
        finally:
            outsider.dispose()


@pytest.mark.db
def test_a_dropped_records_connection_is_replaced_without_failing_the_request(
    served: Flask, client: FlaskClient, token: str, backend: str
) -> None:
    warm(client, token)
    assert client.post(PREDICT, json=BODY, headers=bearer(token)).status_code == 200
    drop_connections(served, backend)
    again = client.post(PREDICT, json=BODY, headers=bearer(token))
    assert again.status_code == 200, again.get_data(as_text=True)
    assert answered(served) == 2  # the hot path's records engine retried on a new connection
    assert [record.id for record in records(served)][-1] == again.get_json()["record_id"]
    assert len(records(served)) == 3


@contextlib.contextmanager
def records_refused(app: Flask, backend: str) -> Iterator[list[int]]:
    """The records engine cannot connect (a server restarting) while the other one can;
    yields the list of its connection attempts."""
    with app.app_context():
        records_engine = db.engines["records"]
    attempts: list[int] = []

    def refuse(_dialect: Any, _record: Any, cargs: list, cparams: dict) -> None:
        attempts.append(1)
        # Where nothing answers: a closed port, or a SQLite file in a missing folder.
        if backend == "sqlite":
            cargs[0] = "/nonexistent/modelport/records.db"
        else:
            cparams["port"] = closed_port()

    records_engine.dispose()
    sa.event.listen(records_engine, "do_connect", refuse)
    try:
        yield attempts
    finally:
        sa.event.remove(records_engine, "do_connect", refuse)


@pytest.mark.db
def test_a_refused_records_connection_is_a_503_though_the_database_answers_otherwise(
    served: Flask, client: FlaskClient, token: str, backend: str
) -> None:
    """The moment of a restart: the record cannot connect, and by the time the error is
    handled the database answers again. That is the database's outage, not our bug."""
    warm(client, token)
    before = len(records(served))
    with records_refused(served, backend) as attempts:
        response = client.post(PREDICT, json=BODY, headers=bearer(token))
    # Once on the hot path, once in the view: a failed connect is not tried again at once,
    # which would double the wait for a database host that does not answer.
    assert len(attempts) == 2
    error = assert_api_error(response, 503, "database_unavailable")
    assert "Try again" in error["message"]
    assert response.headers["Retry-After"] == "5"
    assert len(records(served)) == before
    assert client.post(PREDICT, json=BODY, headers=bearer(token)).status_code == 200


@pytest.mark.db
def test_a_request_the_view_answers_after_the_hot_path_failed_is_counted_once(
    app_factory: Any, demo_models: dict[str, Any], backend: str
) -> None:
    app = app_factory(**REMEMBER, PREDICT_LIMIT_USER="3 per minute")
    register_demo(app, demo_models, "iris")
    token = issue_token(app, make_user(app), scopes=["predict"])
    client = app.test_client()
    warm(client, token)  # 1
    with records_refused(app, backend):  # 2: counted on the hot path, answered by the view
        assert client.post(PREDICT, json=BODY, headers=bearer(token)).status_code == 503
    assert client.post(PREDICT, json=BODY, headers=bearer(token)).status_code == 200  # 3
    assert_api_error(client.post(PREDICT, json=BODY, headers=bearer(token)), 429, "rate_limited")


@pytest.mark.db
def test_after_a_restart_every_dropped_idle_records_connection_is_replaced(
    served: Flask, client: FlaskClient, token: str, backend: str
) -> None:
    warm(client, token)
    with served.app_context():
        # Two idle connections in the records pool, as a worker has after serving threads.
        held = [db.engines["records"].raw_connection() for _ in range(2)]
        for connection in held:
            connection.close()
        assert db.engines["records"].pool.checkedin() == 2
    drop_connections(served, backend)
    first = client.post(PREDICT, json=BODY, headers=bearer(token))
    second = client.post(PREDICT, json=BODY, headers=bearer(token))
    assert (first.status_code, second.status_code) == (200, 200), first.get_data(as_text=True)
    assert answered(served) == 2  # neither fell back: one retry each at most, on a live one
    assert [record.id for record in records(served)][-2:] == [
        first.get_json()["record_id"],
        second.get_json()["record_id"],
    ]


# ---- answers held as a group (modelport.ops.worker) -----------------------------------------


class Started:
    """A request the application was called for, as the group worker calls it: its answer
    not read yet."""

    def __init__(self) -> None:
        self.answer: Any = None
        self.status: list[str] = []

    def read(self) -> tuple[int, dict]:
        try:
            body = b"".join(self.answer)
        finally:
            if hasattr(self.answer, "close"):
                self.answer.close()
        return int(self.status[-1][:3]), json.loads(body)


def start(app: Flask, token: str, request_id: str, group: RecordGroup) -> Started:
    environ = EnvironBuilder(
        path=PREDICT,
        method="POST",
        json=BODY,
        headers={**bearer(token), "X-Request-ID": request_id},
    ).get_environ()
    environ[GROUP] = group  # the worker hands the answers it holds one group
    started = Started()

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        started.status.append(status)

    started.answer = app(environ, start_response)
    return started


@pytest.mark.db
def test_answers_held_together_commit_their_records_together_before_the_first_is_sent(
    served: Flask, client: FlaskClient, token: str, backend: str
) -> None:
    warm(client, token)
    before = len(records(served))
    shared = RecordGroup()
    group = [start(served, token, f"held-{n}", shared) for n in range(4)]
    assert answered(served) == 0
    assert len(records(served)) == before  # nothing written while no answer has been read
    answers = [started.read() for started in group]
    assert [status for status, _ in answers] == [200] * 4
    assert answered(served) == 4
    stored = {record.id: record for record in records(served)}
    ids = [body["record_id"] for _, body in answers]
    assert len(set(ids)) == 4
    for n, record_id in enumerate(ids):
        assert stored[record_id].request_id == f"held-{n}"
        assert stored[record_id].outputs == answers[n][1]["predictions"]
    if backend == "postgres":
        assert len(transactions(served, backend, ids)) == 1


@pytest.mark.db
def test_a_group_refused_for_a_token_deleted_meanwhile_is_answered_one_by_one(
    served: Flask, client: FlaskClient, token: str, backend: str
) -> None:
    from modelport.models.tokens import ApiToken

    with served.app_context():
        user_id = db.session.scalars(sa.select(ApiToken.user_id)).one()
    other = issue_token(served, user_id, scopes=["predict"], name="other")
    warm(client, token)
    warm(client, other)
    before = len(records(served))
    shared = RecordGroup()
    kept, deleted = start(served, token, "kept", shared), start(served, other, "deleted", shared)
    # Another worker deletes the second token; this one still remembers it.
    outsider = sa.create_engine(served.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with outsider.begin() as connection:
            connection.execute(sa.delete(ApiToken).where(ApiToken.name == "other"))
    finally:
        outsider.dispose()
    status, body = kept.read()
    assert status == 200, body
    status, body_deleted = deleted.read()
    assert (status, body_deleted["error"]["code"]) == (401, "invalid_token")
    assert answered(served) == 0  # both answered by the view, from the start
    after = records(served)
    assert [record.request_id for record in after[before:]] == ["kept"]
    assert after[-1].id == body["record_id"]
    # The records connection is back in autocommit: the next record is durable at once.
    again = client.post(PREDICT, json=BODY, headers=bearer(token))
    assert again.status_code == 200
    assert records(served)[-1].id == again.get_json()["record_id"]


@pytest.mark.db
def test_an_answer_the_server_never_reads_still_has_its_record(
    served: Flask, client: FlaskClient, token: str
) -> None:
    warm(client, token)
    before = len(records(served))
    started = start(served, token, "never-read", RecordGroup())
    started.answer.close()
    assert [record.request_id for record in records(served)[before:]] == ["never-read"]


@pytest.mark.db
def test_a_group_whose_records_cannot_connect_is_answered_503_each(
    served: Flask, client: FlaskClient, token: str, backend: str
) -> None:
    warm(client, token)
    before = len(records(served))
    with records_refused(served, backend) as attempts:
        shared = RecordGroup()
        group = [start(served, token, f"down-{n}", shared) for n in range(3)]
        answers = [started.read() for started in group]
    # One attempt for the group, then one in the view for each request.
    assert len(attempts) == 1 + 3
    assert [(status, body["error"]["code"]) for status, body in answers] == [
        (503, "database_unavailable")
    ] * 3
    assert len(records(served)) == before
    assert client.post(PREDICT, json=BODY, headers=bearer(token)).status_code == 200
