"""Feedback (``POST /api/v1/predictions/<id>/feedback`` and the record's page): the true
answer of predicted rows, from whoever may see the record, checked against the model's
outputs, one per row and replaced on resend; anything refused changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from modelport.auth import accounts
from modelport.extensions import db
from modelport.models import Feedback, PredictionRecord
from tests.support.html import csrf_token, text
from tests.support.http import assert_api_error, bearer
from tests.support.models import DIABETES_ROW, IRIS_ROW, register_demo
from tests.support.tokens import issue_token
from tests.support.users import PASSWORD, login, make_user

pytestmark = [pytest.mark.db, pytest.mark.filterwarnings("ignore::UserWarning")]


@pytest.fixture
def served(app_factory: Any, demo_models: dict[str, Any]) -> Flask:
    app = app_factory(PREDICT_LIMIT_USER="1000 per minute")
    register_demo(app, demo_models, "iris", "diabetes")
    return app


@pytest.fixture
def ann(served: Flask) -> int:
    return make_user(served, "ann@example.com")


@pytest.fixture
def token(served: Flask, ann: int) -> str:
    return issue_token(served, ann, scopes=["predict"])


def predict(client: FlaskClient, token: str, inputs: Any, model: str = "iris") -> dict:
    response = client.post(
        f"/api/v1/models/{model}/predict", json={"inputs": inputs}, headers=bearer(token)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def stored(app: Flask) -> list[tuple[int, int, Any, Any, int | None]]:
    with app.app_context():
        rows = db.session.scalars(sa.select(Feedback).order_by(Feedback.id))
        found = [(f.record_id, f.row_index, f.actual, f.predicted, f.user_id) for f in rows]
        db.session.remove()
        return found


def feedback(client: FlaskClient, record: int, body: Any, headers: dict | None = None) -> Any:
    return client.post(f"/api/v1/predictions/{record}/feedback", json=body, headers=headers)


def test_the_owner_gives_the_true_label_and_a_resend_replaces_it(
    served: Flask, token: str, ann: int
) -> None:
    client = served.test_client()
    answer = predict(client, token, IRIS_ROW)
    record, label = answer["record_id"], answer["predictions"][0]["label"]
    response = feedback(client, record, {"actual": "versicolor"}, bearer(token))
    assert response.status_code == 200
    assert response.get_json() == {
        "record_id": record,
        "rows": [{"row": 0, "actual": "versicolor", "predicted": label}],
    }
    assert stored(served) == [(record, 0, "versicolor", label, ann)]
    again = feedback(client, record, {"actual": "setosa"}, bearer(token))
    assert again.get_json()["rows"] == [{"row": 0, "actual": "setosa", "predicted": label}]
    assert [row[:3] for row in stored(served)] == [(record, 0, "setosa")]


def test_several_rows_take_one_value_each_and_null_skips_a_row(served: Flask, token: str) -> None:
    client = served.test_client()
    answer = predict(client, token, [IRIS_ROW, IRIS_ROW, IRIS_ROW])
    record = answer["record_id"]
    response = feedback(client, record, {"actuals": ["setosa", None, "virginica"]}, bearer(token))
    assert [row["row"] for row in response.get_json()["rows"]] == [0, 2]
    # Row 1 later; rows 0 and 2 stay as they were.
    feedback(client, record, {"actuals": [None, "versicolor", None]}, bearer(token))
    assert [row[1:3] for row in stored(served)] == [
        (0, "setosa"),
        (2, "virginica"),
        (1, "versicolor"),
    ]


def test_a_regression_takes_a_number(served: Flask, token: str) -> None:
    client = served.test_client()
    answer = predict(client, token, DIABETES_ROW, model="diabetes")
    record = answer["record_id"]
    response = feedback(client, record, {"actual": 151}, bearer(token))
    assert response.get_json()["rows"] == [
        {"row": 0, "actual": 151.0, "predicted": answer["predictions"][0]["value"]}
    ]
    for bad, code in (("151", "not_a_number"), (True, "not_a_number")):
        refused = assert_api_error(
            feedback(client, record, {"actual": bad}, bearer(token)), 422, "invalid_input"
        )
        assert [(d["row"], d["field"], d["code"]) for d in refused["details"]] == [
            (0, "actual", code)
        ]
    assert [row[2] for row in stored(served)] == [151.0]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"actual": "rose"}, "unknown_class"),
        ({"actual": ["setosa"]}, "unknown_class"),
        ({"actuals": ["setosa", "rose"]}, "row_count"),
        ({"actuals": [None]}, "empty"),
    ],
)
def test_values_that_do_not_fit_are_refused_and_change_nothing(
    served: Flask, token: str, body: dict, code: str
) -> None:
    client = served.test_client()
    record = predict(client, token, IRIS_ROW)["record_id"]
    feedback(client, record, {"actual": "setosa"}, bearer(token))
    refused = assert_api_error(feedback(client, record, body, bearer(token)), 422, "invalid_input")
    assert [d["code"] for d in refused["details"]] == [code]
    assert [row[2] for row in stored(served)] == ["setosa"]


@pytest.mark.parametrize("body", [{}, {"actual": "setosa", "actuals": ["setosa"]}, {"x": 1}])
def test_a_body_that_is_neither_shape_is_refused(served: Flask, token: str, body: dict) -> None:
    client = served.test_client()
    record = predict(client, token, IRIS_ROW)["record_id"]
    assert_api_error(feedback(client, record, body, bearer(token)), 422)
    assert stored(served) == []


def test_one_actual_for_several_rows_says_to_send_actuals(served: Flask, token: str) -> None:
    client = served.test_client()
    record = predict(client, token, [IRIS_ROW, IRIS_ROW])["record_id"]
    refused = assert_api_error(
        feedback(client, record, {"actual": "setosa"}, bearer(token)), 422, "invalid_input"
    )
    assert '"actuals"' in refused["message"]


def test_who_may_give_it(served: Flask, token: str) -> None:
    client = served.test_client()
    record = predict(client, token, IRIS_ROW)["record_id"]
    body = {"actual": "setosa"}
    bob = make_user(served, "bob@example.com")
    admin = make_user(served, "root@example.com", role="admin")
    assert_api_error(feedback(client, record, body), 401)
    bobs = bearer(issue_token(served, bob, scopes=["full"]))
    assert_api_error(feedback(client, record, body, bobs), 404, "not_found")
    # An admin's predict token acts as a member's: only its own records.
    admin_predict = bearer(issue_token(served, admin, scopes=["predict"]))
    assert_api_error(feedback(client, record, body, admin_predict), 404, "not_found")
    assert_api_error(feedback(client, 2**63, body, bearer(token)), 404, "not_found")
    assert stored(served) == []
    admin_full = bearer(issue_token(served, admin, scopes=["full"]))
    assert feedback(client, record, body, admin_full).status_code == 200
    assert [row[4] for row in stored(served)] == [admin]


def test_a_prediction_that_failed_takes_no_feedback(served: Flask, token: str, ann: int) -> None:
    client = served.test_client()
    record = predict(client, token, IRIS_ROW)["record_id"]
    with served.app_context():
        db.session.execute(
            sa.update(PredictionRecord).where(PredictionRecord.id == record).values(status="error")
        )
        db.session.commit()
    refused = feedback(client, record, {"actual": "setosa"}, bearer(token))
    assert_api_error(refused, 409, "not_answered")
    assert stored(served) == []


def test_a_session_needs_the_csrf_header(served: Flask, token: str) -> None:
    record = predict(served.test_client(), token, IRIS_ROW)["record_id"]
    browser = served.test_client()
    login(browser, "ann@example.com")
    assert feedback(browser, record, {"actual": "setosa"}).status_code == 400
    headers = {"X-CSRFToken": csrf_token(browser, f"/predictions/{record}")}
    assert feedback(browser, record, {"actual": "setosa"}, headers).status_code == 200


def test_withdrawal_unlinks_the_feedback_from_the_account(
    served: Flask, token: str, ann: int
) -> None:
    client = served.test_client()
    record = predict(client, token, {**IRIS_ROW, "petal_length": 1.0})["record_id"]
    feedback(client, record, {"actual": "setosa"}, bearer(token))
    with served.test_request_context():
        accounts.delete_account(db.session.get(accounts.User, ann), PASSWORD)
    # The true and predicted labels stay for the model's statistics; nothing names Ann.
    assert [row[2:] for row in stored(served)] == [("setosa", "setosa", None)]


# ---- the record's page ------------------------------------------------------------------


def test_the_page_takes_the_true_answer_of_a_one_row_prediction(served: Flask, token: str) -> None:
    record = predict(served.test_client(), token, IRIS_ROW)["record_id"]
    browser = served.test_client()
    login(browser, "ann@example.com")
    page = f"/predictions/{record}"
    form = {"actual": "virginica", "csrf_token": csrf_token(browser, page)}
    response = browser.post(f"{page}/feedback", data=form, follow_redirects=True)
    assert response.status_code == 200
    assert "the true answer is stored" in text(response)
    assert [row[2] for row in stored(served)] == ["virginica"]
    form["actual"] = "rose"
    refused = browser.post(f"{page}/feedback", data=form)
    assert refused.status_code == 422
    assert "The true label must be one of the model" in text(refused)
    assert 'aria-invalid="true"' in text(refused)
    assert [row[2] for row in stored(served)] == ["virginica"]


def test_feedback_on_a_csv_upload_knows_what_was_predicted(served: Flask, token: str) -> None:
    """A CSV answer's rows are stored as its columns (``prediction``), not as a JSON
    answer's (``label``): the feedback still pairs each true answer with the prediction, so
    realized accuracy counts it."""
    client = served.test_client()
    body = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
    response = client.post(
        "/api/v1/models/iris/predict",
        data=body,
        headers={**bearer(token), "Content-Type": "text/csv"},
    )
    assert response.status_code == 200
    labels = [line.split(",")[4] for line in response.get_data(as_text=True).splitlines()[1:]]
    listed = client.get("/api/v1/predictions?model=iris&page_size=1", headers=bearer(token))
    (record,) = listed.get_json()["items"]
    assert record["source"] == "csv"
    given = feedback(client, record["id"], {"actuals": ["setosa", "setosa"]}, bearer(token))
    assert [row["predicted"] for row in given.get_json()["rows"]] == labels
    assert [row[3] for row in stored(served)] == labels
    quality = client.get("/api/v1/models/iris/monitoring", headers=bearer(token)).get_json()
    assert quality["totals"]["feedback_rows"] == 2
