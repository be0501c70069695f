"""Prediction records (issue 3, item 6): one per request, who sees them, withdrawal, purge."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from modelport.models.predictions import PredictionRecord
from modelport.models.tokens import ApiToken
from tests.support.databases import execute, rows
from tests.support.html import csrf_token
from tests.support.http import assert_api_error, bearer
from tests.support.models import DIABETES_ROW, IRIS_ROW, register_demo
from tests.support.tokens import issue_token
from tests.support.users import PASSWORD, login, make_user

pytestmark = [
    pytest.mark.db,
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
]

SECOND_ROW = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}
IRIS_CSV = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
TABLE = PredictionRecord.__table__


@pytest.fixture
def make_app(app_factory: Any, demo_models: dict[str, Any]) -> Any:
    def make(**settings: str) -> Flask:
        app = app_factory(**settings)
        register_demo(app, demo_models, "iris", "diabetes")
        return app

    return make


def predict(client: FlaskClient, inputs: Any, model: str = "iris", **kwargs: Any) -> Any:
    response = client.post(f"/api/v1/models/{model}/predict", json={"inputs": inputs}, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def predict_csv(client: FlaskClient, body: str = IRIS_CSV, **kwargs: Any) -> Any:
    response = client.post(
        "/api/v1/models/iris/predict", data=body, content_type="text/csv", **kwargs
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    response.get_data()  # read to the end: the record is completed when the stream ends
    return response


def records(app: Flask) -> list[dict[str, Any]]:
    return rows(app, "predictions")


def token_id(app: Flask, plaintext: str) -> int:
    from modelport.auth.tokens import authenticate_token

    with app.app_context():
        token = authenticate_token(plaintext)
        assert isinstance(token, ApiToken)
        return token.id


def signed_in(app: Flask, email: str) -> tuple[FlaskClient, dict[str, str]]:
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client, {"X-CSRFToken": csrf_token(client, "/account")}


# --- one record per prediction -------------------------------------------------------------


def test_each_prediction_makes_one_record(make_app: Any) -> None:
    app = make_app()
    ann = make_user(app)
    token = issue_token(app, ann, ["predict"])
    session, csrf = signed_in(app, "ann@example.com")

    anonymous = predict(app.test_client(), IRIS_ROW)
    by_token = predict(app.test_client(), [IRIS_ROW, SECOND_ROW], headers=bearer(token))
    by_session = predict(session, DIABETES_ROW, model="diabetes", headers=csrf)
    predict_csv(app.test_client(), headers=bearer(token))
    stored = records(app)
    assert len(stored) == 4
    first, second, third, fourth = stored

    # Who: nobody, the token (and its user), the user.
    assert (first["user_id"], first["token_id"]) == (None, None)
    assert (second["user_id"], second["token_id"]) == (ann, token_id(app, token))
    assert (third["user_id"], third["token_id"]) == (ann, None)
    assert (fourth["user_id"], fourth["token_id"]) == (ann, token_id(app, token))
    # Which version, how many rows, how it went, how long, from where.
    assert [(r["model_name"], r["version_number"]) for r in stored] == [
        ("iris", 1),
        ("iris", 1),
        ("diabetes", 1),
        ("iris", 1),
    ]
    assert [r["row_count"] for r in stored] == [1, 2, 1, 2]
    assert [r["status"] for r in stored] == ["ok"] * 4
    assert [r["source"] for r in stored] == ["api", "api", "api", "csv"]
    assert all(r["latency_ms"] > 0 and r["runtime"] for r in stored)
    assert all(r["truncated"] is False for r in stored)
    # The response names its record and request.
    for response, record in zip((anonymous, by_token, by_session), stored, strict=False):
        assert response.get_json()["record_id"] == record["id"]
        assert response.get_json()["request_id"] == record["request_id"]
    # What: the inputs as sent, the outputs as answered.
    assert second["inputs"] == [
        IRIS_ROW,
        SECOND_ROW,
    ]
    outputs = second["outputs"]
    assert outputs == by_token.get_json()["predictions"]
    csv_inputs = fourth["inputs"]
    csv_outputs = fourth["outputs"]
    assert csv_inputs == [IRIS_ROW, SECOND_ROW]
    assert [o["prediction"] for o in csv_outputs] == ["setosa", "virginica"]
    assert third["outputs"][0]["value"] > 0


def test_a_csv_client_that_goes_away_leaves_the_record_incomplete(make_app: Any) -> None:
    from modelport.serving.csvstream import CHUNK_ROWS

    app = make_app()
    header = IRIS_CSV.partition("\n")[0]
    body = header + "\n" + "5.1,3.5,1.4,0.2\n" * (CHUNK_ROWS + 1)
    response = app.test_client().post(
        "/api/v1/models/iris/predict", data=body, content_type="text/csv", buffered=False
    )
    assert response.status_code == 200
    chunks = iter(response.response)
    assert next(chunks).startswith(b"sepal_length,")
    response.close()  # the client hangs up after the first chunk
    [record] = records(app)
    assert record["status"] == "incomplete"
    assert 0 < record["row_count"] < CHUNK_ROWS + 1


def test_invalid_input_is_not_recorded(make_app: Any) -> None:
    app = make_app()
    client = app.test_client()
    bad = client.post("/api/v1/models/iris/predict", json={"inputs": {"sepal_length": "x"}})
    assert bad.status_code == 422
    bad_csv = client.post(
        "/api/v1/models/iris/predict", data="sepal_length\nx\n", content_type="text/csv"
    )
    assert bad_csv.status_code == 422
    assert records(app) == []


def test_recording_can_be_turned_off(make_app: Any) -> None:
    app = make_app(RECORD_PREDICTIONS="false")
    client = app.test_client()
    assert predict(client, IRIS_ROW).get_json()["record_id"] is None
    predict_csv(client)
    assert records(app) == []


def test_stored_inputs_are_cut_at_the_size_limit(make_app: Any) -> None:
    app = make_app(RECORD_MAX_BYTES="1000")
    client = app.test_client()
    batch = [IRIS_ROW, SECOND_ROW] * 20
    predict(client, batch)
    predict(client, IRIS_ROW)
    predict_csv(client, "sepal_length,sepal_width,petal_length,petal_width\n" + "5,3,1,0\n" * 40)
    cut, whole, cut_csv = records(app)
    assert cut["row_count"] == 40 and cut["truncated"] is True
    inputs = cut["inputs"]
    outputs = cut["outputs"]
    # Whole leading rows are kept, inputs and outputs alike, within the limit.
    assert 0 < len(inputs) == len(outputs) < 40
    assert inputs == batch[: len(inputs)]
    assert len(json.dumps([inputs, outputs], separators=(",", ":"))) <= 1000
    assert whole["truncated"] is False
    assert cut_csv["row_count"] == 40 and cut_csv["truncated"] is True
    assert 0 < len(cut_csv["inputs"]) < 40

    nothing = make_app(RECORD_MAX_BYTES="0")
    predict(nothing.test_client(), IRIS_ROW)
    [record] = records(nothing)[-1:]
    assert (record["inputs"], record["outputs"], record["truncated"]) == (None, None, True)
    assert record["row_count"] == 1


# --- who sees which record -----------------------------------------------------------------


def test_users_see_only_their_own_records_and_admins_see_all(make_app: Any) -> None:
    app = make_app()
    ann = bearer(issue_token(app, make_user(app), ["predict"]))
    bob = bearer(issue_token(app, make_user(app, "bob@example.com", name="Bob"), ["predict"]))
    root_id = make_user(app, "root@example.com", name="Root", role="admin")
    root = bearer(issue_token(app, root_id, ["full"]))
    # A token carries its scope and no more, whoever owns it: an admin's predict token reads
    # its owner's records only ("predictions and reading one's own records").
    root_predict = bearer(issue_token(app, root_id, ["predict"], name="p"))
    client = app.test_client()
    ann_id = predict(client, IRIS_ROW, headers=ann).get_json()["record_id"]
    bob_id = predict(client, SECOND_ROW, headers=bob).get_json()["record_id"]
    anonymous_id = predict(client, IRIS_ROW).get_json()["record_id"]

    def listed(headers: dict[str, str]) -> list[int]:
        body = client.get("/api/v1/predictions", headers=headers).get_json()
        assert body["total"] == len(body["items"])
        return sorted(item["id"] for item in body["items"])

    assert listed(ann) == [ann_id]
    assert listed(bob) == [bob_id]
    assert listed(root) == sorted([ann_id, bob_id, anonymous_id])
    assert listed(root_predict) == []

    own = client.get(f"/api/v1/predictions/{ann_id}", headers=ann)
    assert own.status_code == 200
    assert own.get_json()["inputs"] == [IRIS_ROW]
    assert own.get_json()["outputs"][0]["label"] == "setosa"
    # Another user's record is indistinguishable from one that does not exist.
    for record_id in (bob_id, anonymous_id, 10**6):
        error = assert_api_error(
            client.get(f"/api/v1/predictions/{record_id}", headers=ann), 404, "not_found"
        )
        assert error["message"] == "No such prediction record."
    assert client.get(f"/api/v1/predictions/{ann_id}", headers=bob).status_code == 404
    for record_id in (ann_id, bob_id, anonymous_id):
        assert client.get(f"/api/v1/predictions/{record_id}", headers=root).status_code == 200
        assert_api_error(
            client.get(f"/api/v1/predictions/{record_id}", headers=root_predict), 404, "not_found"
        )
    export = client.get("/api/v1/predictions?format=csv", headers=root_predict)
    assert export.get_data(as_text=True).count("\n") == 1  # the header alone
    # CSV export shows the same rows as the list.
    export = client.get("/api/v1/predictions?format=csv", headers=bob)
    assert [int(r["id"]) for r in csv.DictReader(io.StringIO(export.get_data(as_text=True)))] == [
        bob_id
    ]
    # Signed-out callers have no history.
    assert_api_error(client.get("/api/v1/predictions"), 401)
    assert_api_error(client.get(f"/api/v1/predictions/{anonymous_id}"), 401)


def _age(app: Flask, record_id: int, when: datetime) -> None:
    execute(app, sa.update(TABLE).where(TABLE.c.id == record_id).values(created_at=when))


def test_history_filters_and_csv_export(make_app: Any) -> None:
    app = make_app()
    ann = bearer(issue_token(app, make_user(app), ["predict"]))
    client = app.test_client()
    january = predict(client, IRIS_ROW, headers=ann).get_json()["record_id"]
    march = predict(client, DIABETES_ROW, model="diabetes", headers=ann).get_json()["record_id"]
    may = predict(client, [IRIS_ROW, SECOND_ROW], headers=ann).get_json()["record_id"]
    _age(app, january, datetime(2026, 1, 15, 12, tzinfo=UTC))
    _age(app, march, datetime(2026, 3, 15, 12, tzinfo=UTC))
    _age(app, may, datetime(2026, 5, 15, 12, tzinfo=UTC))
    execute(app, sa.update(TABLE).where(TABLE.c.id == march).values(status="incomplete"))

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/v1/predictions?{query}", headers=ann)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [item["id"] for item in response.get_json()["items"]]

    assert ids("") == [may, march, january]  # newest first
    assert ids("model=iris") == [may, january]
    assert ids("model=diabetes") == [march]
    assert ids("model=nosuch") == []
    assert ids("since=2026-02-01T00:00:00Z") == [may, march]
    assert ids("until=2026-04-01T00:00:00%2B00:00") == [march, january]
    assert ids("since=2026-02-01T00:00:00Z&until=2026-04-01T00:00:00Z") == [march]
    # A time in another zone means the same instant.
    assert ids("since=2026-03-15T21:00:01%2B09:00") == [may]
    assert ids("status=incomplete") == [march]
    assert ids("status=ok&model=iris") == [may, january]
    assert ids("page=2&page_size=2") == [january]
    for bad in ("status=lost", "since=yesterday", "since=2026-02-01T00:00:00", "format=xml"):
        assert_api_error(client.get(f"/api/v1/predictions?{bad}", headers=ann), 422)

    export = client.get("/api/v1/predictions?format=csv&model=iris", headers=ann)
    assert export.status_code == 200
    assert export.mimetype == "text/csv"
    assert "attachment" in export.headers["Content-Disposition"]
    exported = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert [int(r["id"]) for r in exported] == [may, january]
    assert [r["row_count"] for r in exported] == ["2", "1"]
    assert exported[1]["created_at"].startswith("2026-01-15T12:00:00")
    assert {"inputs", "outputs"}.isdisjoint(exported[0])


def test_an_export_streams_each_record_once_while_new_ones_are_written(make_app: Any) -> None:
    from modelport.auth.caller import Caller, Credential
    from modelport.extensions import db
    from modelport.models.users import User
    from modelport.serving.records import RecordFilter, iter_records

    app = make_app()
    ann = bearer(issue_token(app, make_user(app), ["predict"]))
    client = app.test_client()
    made = [predict(client, IRIS_ROW, headers=ann).get_json()["record_id"] for _ in range(7)]
    # Ties on the time: the export orders them by id and must not stop or repeat at one.
    same = datetime(2026, 3, 1, 12, tzinfo=UTC)
    for record_id in made[1:5]:
        _age(app, record_id, same)
    with app.app_context():
        expected = [
            record_id
            for (record_id,) in db.session.execute(
                sa.select(TABLE.c.id).order_by(TABLE.c.created_at.desc(), TABLE.c.id.desc())
            )
        ]
        owner = db.session.scalars(sa.select(User)).one()
        viewer = Caller(owner.id, owner.role, Credential.SESSION)
        exported = []
        stream = iter_records(viewer, RecordFilter(), chunk=2)
        for record in stream:
            exported.append(record.id)
            if len(exported) == 3:
                # Predictions go on while the export streams (another worker, same user).
                for _ in range(2):
                    predict(client, SECOND_ROW, headers=ann)
    assert exported == expected
    assert len(records(app)) == 9


# --- withdrawal and retention --------------------------------------------------------------


def test_withdrawal_erases_the_users_inputs_and_outputs(make_app: Any) -> None:
    app = make_app()
    ann = make_user(app)
    bob = make_user(app, "bob@example.com", name="Bob")
    ann_token = issue_token(app, ann, ["predict"])
    client, csrf = signed_in(app, "ann@example.com")
    predict(client, IRIS_ROW, headers=csrf)
    predict(app.test_client(), [IRIS_ROW, SECOND_ROW], headers=bearer(ann_token))
    predict_csv(app.test_client(), headers=bearer(ann_token))
    predict(app.test_client(), SECOND_ROW, headers=bearer(issue_token(app, bob, ["predict"])))
    predict(app.test_client(), IRIS_ROW)
    before = records(app)
    assert [r["user_id"] for r in before] == [ann, ann, ann, bob, None]

    response = client.post(
        "/account/delete", data={"password": PASSWORD, "csrf_token": csrf_token(client, "/account")}
    )
    assert response.status_code == 302

    after = records(app)
    assert len(after) == len(before)  # the statistics stay
    for old, new in zip(before[:3], after[:3], strict=True):
        assert (new["user_id"], new["token_id"], new["inputs"], new["outputs"]) == (
            None,
            None,
            None,
            None,
        )
        # What remains is anonymous: model, version, rows, status, latency and time.
        for column in ("model_name", "version_number", "row_count", "status", "latency_ms"):
            assert new[column] == old[column]
    # Other people's records, and anonymous ones, are untouched.
    assert after[3:] == before[3:]
    assert after[3]["inputs"] is not None and after[3]["user_id"] == bob


def test_purge_erases_inputs_older_than_the_retention_period(make_app: Any) -> None:
    app = make_app(RETENTION_DAYS="30")
    client = app.test_client()
    ids = [predict(client, IRIS_ROW).get_json()["record_id"] for _ in range(3)]
    now = datetime.now(UTC)
    _age(app, ids[0], now - timedelta(days=45))
    _age(app, ids[1], now - timedelta(days=10))
    runner = app.test_cli_runner()

    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert "of 1 prediction records" in result.output
    by_id = {r["id"]: r for r in records(app)}
    assert len(by_id) == 3  # inputs go, records stay
    assert (by_id[ids[0]]["inputs"], by_id[ids[0]]["outputs"]) == (None, None)
    assert by_id[ids[0]]["row_count"] == 1
    assert by_id[ids[1]]["inputs"] is not None and by_id[ids[2]]["inputs"] is not None

    result = runner.invoke(args=["purge", "--days", "5"])
    assert result.exit_code == 0 and "of 1 prediction records" in result.output
    by_id = {r["id"]: r for r in records(app)}
    assert by_id[ids[1]]["inputs"] is None and by_id[ids[2]]["inputs"] is not None

    refused = runner.invoke(args=["purge", "--days", "0"])
    assert refused.exit_code != 0
    assert "--days" in refused.output
