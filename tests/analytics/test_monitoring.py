"""A model's monitoring (``analytics.monitoring``, ``/api/v1/models/<name>/monitoring``):
exact figures over records written at known times, on every database; who may see what; and
windows that cannot be shown."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from modelport.analytics import monitoring
from modelport.analytics.buckets import epoch_bucket
from modelport.extensions import db
from modelport.models import Feedback, PredictionRecord
from tests.support.html import check_page, text
from tests.support.http import assert_api_error, bearer
from tests.support.models import register_demo
from tests.support.records import write_records
from tests.support.tokens import issue_token
from tests.support.users import login, make_user

pytestmark = [pytest.mark.db, pytest.mark.filterwarnings("ignore::UserWarning")]

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SINCE, UNTIL = "2026-12-01T10:00:00Z", "2026-12-01T12:00:00Z"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def output(label: str, top: float) -> dict[str, Any]:
    rest = round((1 - top) / 2, 6)
    others = [c for c in ("setosa", "versicolor", "virginica") if c != label]
    return {"label": label, "probabilities": {label: top, others[0]: rest, others[1]: rest}}


@pytest.fixture
def served(app_factory: Any, demo_models: dict[str, Any]) -> Flask:
    app = app_factory()
    register_demo(app, demo_models, "iris")
    return app


def test_buckets_start_on_whole_minutes_hours_and_days(app: Flask) -> None:
    moments = [
        datetime(2026, 12, 1, 10, 0, 59, 999_000, tzinfo=UTC),
        datetime(2026, 12, 1, 10, 1, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 12, 2, 0, 0, 0, tzinfo=UTC),
    ]
    write_records(app, *({"created_at": moment} for moment in moments))
    with app.app_context():
        for seconds in (60, 3600, 86400):
            bucket = epoch_bucket(PredictionRecord.created_at, seconds)
            found = db.session.scalars(
                sa.select(bucket).order_by(PredictionRecord.created_at)
            ).all()
            expected = [int(m.timestamp()) // seconds * seconds for m in moments]
            assert [int(value) for value in found] == expected, seconds


def test_the_bucket_follows_the_length_of_the_window() -> None:
    def bucket(hours: float) -> str:
        return monitoring.window(T0, T0 + timedelta(hours=hours)).bucket

    assert (bucket(1), bucket(6), bucket(7), bucket(24 * 14), bucket(24 * 15)) == (
        "minute",
        "minute",
        "hour",
        "hour",
        "day",
    )
    default = monitoring.window(None, None, now=T0)
    assert (default.since, default.until, default.bucket) == (T0 - timedelta(days=1), T0, "hour")


@pytest.mark.parametrize(
    ("since", "until"),
    [(T0, T0), (T0, T0 - timedelta(hours=1)), (T0 - timedelta(days=401), T0)],
)
def test_a_window_that_cannot_be_shown_is_refused(since: datetime, until: datetime) -> None:
    with pytest.raises(monitoring.WindowError):
        monitoring.window(since, until)


def test_figures_per_bucket_are_exact(served: Flask) -> None:
    ann = make_user(served, "ann@example.com")
    ids = write_records(
        served,
        # 10:00–10:59: three answered, one failed
        {"created_at": at(1), "latency_ms": 10.0, "outputs": [output("setosa", 0.9)]},
        {"created_at": at(2), "latency_ms": 20.0, "outputs": [output("setosa", 0.7)]},
        {
            "created_at": at(3),
            "latency_ms": 30.0,
            "row_count": 2,
            "outputs": [output("virginica", 0.8), output("setosa", 0.6)],
        },
        {"created_at": at(4), "latency_ms": 99.0, "status": "error", "row_count": 1},
        # 11:00–11:59: one answered, by Ann
        {
            "created_at": at(61),
            "latency_ms": 40.0,
            "outputs": [output("versicolor", 0.5)],
            "user_id": ann,
        },
        # outside the window
        {"created_at": at(121), "latency_ms": 50.0, "outputs": [output("setosa", 0.9)]},
    )
    with served.app_context():
        for record, row, actual, predicted in (
            (ids[0], 0, "setosa", "setosa"),
            (ids[2], 0, "versicolor", "virginica"),
            (ids[2], 1, "setosa", "setosa"),
            (ids[4], 0, "versicolor", "versicolor"),
        ):
            db.session.add(
                Feedback(
                    record_id=record,
                    row_index=row,
                    model_name="iris",
                    version_number=1,
                    actual=actual,
                    predicted=predicted,
                )
            )
        db.session.commit()
    admin = make_user(served, "root@example.com", role="admin")
    token = issue_token(served, admin, scopes=["full"])
    response = served.test_client().get(
        f"/api/v1/models/iris/monitoring?since={SINCE}&until={UNTIL}", headers=bearer(token)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["model"], body["task"], body["bucket"], body["bucket_seconds"]) == (
        "iris",
        "classification",
        "minute",
        60,
    )
    assert (body["since"], body["until"], body["version"]) == (SINCE, UNTIL, None)
    assert [(s["start"], s["requests"], s["errors"], s["rows"]) for s in body["series"]] == [
        ("2026-12-01T10:01:00Z", 1, 0, 1),
        ("2026-12-01T10:02:00Z", 1, 0, 1),
        ("2026-12-01T10:03:00Z", 1, 0, 2),
        ("2026-12-01T10:04:00Z", 1, 1, 1),
        ("2026-12-01T11:01:00Z", 1, 0, 1),
    ]
    totals = body["totals"]
    assert (totals["requests"], totals["rows"], totals["errors"], totals["error_rate"]) == (
        5,
        6,
        1,
        0.2,
    )
    assert totals["rows_per_request"] == 1.2
    # Latency of the answered ones only (the failure's 99 ms is left out), from a sketch:
    # within 1 % of numpy's percentiles of the same values.
    assert totals["latency_ms"] == {
        "p50": pytest.approx(25.0, rel=0.01),
        "p95": pytest.approx(38.5, rel=0.01),
        "p99": pytest.approx(39.7, rel=0.01),
    }
    assert body["predicted"][2] == {
        "start": "2026-12-01T10:03:00Z",
        "counts": {"setosa": 1, "virginica": 1},
    }
    # Realized: 3 of 4 rows right; estimated: the mean top probability of the 5 rows.
    assert totals["realized_accuracy"] == 0.75 and totals["feedback_rows"] == 4
    assert totals["estimated_accuracy"] == round((0.9 + 0.7 + 0.8 + 0.6 + 0.5) / 5, 4)
    third = next(q for q in body["quality"] if q["start"] == "2026-12-01T10:03:00Z")
    assert third == {
        "start": "2026-12-01T10:03:00Z",
        "realized_accuracy": 0.5,
        "feedback_rows": 2,
        "estimated_accuracy": 0.7,
    }
    assert body["top_users"] == [{"id": ann, "email": "ann@example.com", "requests": 1}]
    assert body["top_tokens"] == []


def test_a_version_narrows_it_and_members_see_no_callers(served: Flask) -> None:
    write_records(
        served,
        {"created_at": at(1), "outputs": [output("setosa", 0.9)]},
        {"created_at": at(2), "version_number": 2, "outputs": [output("setosa", 0.9)]},
    )
    token = issue_token(served, make_user(served, "ann@example.com"), scopes=["predict"])
    client = served.test_client()
    body = client.get(
        f"/api/v1/models/iris/monitoring?since={SINCE}&until={UNTIL}&version=2",
        headers=bearer(token),
    ).get_json()
    assert [(s["version"], s["requests"]) for s in body["series"]] == [(2, 1)]
    assert "top_users" not in body and "top_tokens" not in body


def test_a_regression_shows_value_quantiles_and_mae(
    app_factory: Any, demo_models: dict[str, Any]
) -> None:
    app = app_factory()
    register_demo(app, demo_models, "diabetes")
    ids = []
    with app.app_context():
        for minute, value in ((1, 100.0), (1, 200.0), (2, 300.0)):
            record = PredictionRecord(
                request_id="r",
                model_name="diabetes",
                version_number=1,
                source="api",
                status="ok",
                row_count=1,
                latency_ms=1.0,
                outputs=[{"value": value}],
                created_at=at(minute),
            )
            db.session.add(record)
            db.session.flush()
            ids.append((record.id, value))
        for record_id, value in ids:
            db.session.add(
                Feedback(
                    record_id=record_id,
                    row_index=0,
                    model_name="diabetes",
                    actual=value + 10,
                    predicted=value,
                )
            )
        db.session.commit()
    token = issue_token(app, make_user(app), scopes=["predict"])
    body = (
        app.test_client().get(
            f"/api/v1/models/diabetes/monitoring?since={SINCE}&until={UNTIL}",
            headers=bearer(token),
        )
    ).get_json()
    assert body["predicted"][0] == {
        "start": "2026-12-01T10:01:00Z",
        "rows": 2,
        "mean": 150.0,  # exact: a sum over a count
        "p10": pytest.approx(110.0, rel=0.01),  # quantiles: from a sketch, within 1 %
        "p50": pytest.approx(150.0, rel=0.01),
        "p90": pytest.approx(190.0, rel=0.01),
    }
    assert body["totals"]["realized_mae"] == 10.0
    assert "estimated_accuracy" not in body["totals"]


def test_a_private_model_is_not_found_for_anyone_who_may_not_use_it(
    app_factory: Any, demo_models: dict[str, Any]
) -> None:
    app = app_factory()
    register_demo(app, demo_models, "iris", visibility="private")
    client = app.test_client()
    assert_api_error(client.get("/api/v1/models/iris/monitoring"), 401)
    member = bearer(issue_token(app, make_user(app), scopes=["predict"]))
    assert client.get("/api/v1/models/iris/monitoring", headers=member).status_code == 200
    # A model nobody has is 404 for a member too.
    nothing = assert_api_error(client.get("/api/v1/models/nothing/monitoring", headers=member), 404)
    assert nothing["code"] == "model_not_found"


@pytest.mark.parametrize(
    "query",
    [
        f"since={UNTIL}&until={SINCE}",
        "since=2026-12-01T10:00:00",  # no time zone
        "since=2024-01-01T00:00:00Z&until=2026-01-01T00:00:00Z",
        "version=0",
    ],
)
def test_a_bad_window_is_a_422(served: Flask, query: str) -> None:
    token = issue_token(served, make_user(served), scopes=["predict"])
    response = served.test_client().get(
        f"/api/v1/models/iris/monitoring?{query}", headers=bearer(token)
    )
    assert_api_error(response, 422)


# ---- the pages ---------------------------------------------------------------------------


def test_the_model_page_draws_its_charts_from_json_blocks(served: Flask) -> None:
    now = datetime.now(UTC)
    write_records(
        served,
        {"created_at": now - timedelta(minutes=30), "outputs": [output("setosa", 0.9)]},
        {"created_at": now - timedelta(minutes=20), "status": "error"},
    )
    make_user(served, "ann@example.com")
    browser = served.test_client()
    login(browser, "ann@example.com")
    response = browser.get("/models/iris/monitoring?range=6h")
    assert response.status_code == 200
    page = text(response)
    check_page(page, "en")
    for key in ("chart-volume", "chart-latency", "chart-predicted", "chart-quality"):
        assert f'data-chart="{key}-data"' in page
        block = page.split(f'<script type="application/json" id="{key}-data">')[1]
        figure = json.loads(html.unescape(block.split("</script>")[0]))
        assert figure["data"] and figure["layout"]["title"]["text"]
    assert "style-src-attr 'unsafe-inline'" in response.headers["Content-Security-Policy"]
    assert "Top callers" not in page  # a member's view


def test_the_overview_lists_the_models_the_visitor_may_use(
    app_factory: Any, demo_models: dict[str, Any]
) -> None:
    app = app_factory()
    register_demo(app, demo_models, "iris", "diabetes")
    make_user(app, "ann@example.com")
    browser = app.test_client()
    login(browser, "ann@example.com")
    page = text(browser.get("/monitoring"))
    assert "/models/iris/monitoring" in page and "/models/diabetes/monitoring" in page


def test_the_page_refuses_a_range_it_does_not_offer_and_a_model_it_may_not_show(
    app_factory: Any, demo_models: dict[str, Any]
) -> None:
    app = app_factory()
    register_demo(app, demo_models, "iris")
    make_user(app, "ann@example.com")
    browser = app.test_client()
    assert browser.get("/models/iris/monitoring").status_code == 302  # to the sign-in page
    login(browser, "ann@example.com")
    assert browser.get("/models/iris/monitoring?range=1y").status_code == 400
    assert browser.get("/models/nothing/monitoring").status_code == 404


def test_each_chart_has_its_data_as_csv(served: Flask) -> None:
    now = datetime.now(UTC)
    write_records(
        served,
        {"created_at": now - timedelta(minutes=30), "outputs": [output("setosa", 0.9)]},
        {"created_at": now - timedelta(minutes=29), "outputs": [output("virginica", 0.8)]},
    )
    make_user(served, "ann@example.com")
    browser = served.test_client()
    login(browser, "ann@example.com")
    page = text(browser.get("/models/iris/monitoring?range=6h"))
    assert page.count("/models/iris/monitoring.csv?") == 4
    predicted = browser.get("/models/iris/monitoring.csv?chart=predicted&range=6h")
    assert predicted.mimetype == "text/csv"
    assert "attachment" in predicted.headers["Content-Disposition"]
    lines = predicted.get_data(as_text=True).splitlines()
    assert lines[0] == "start,setosa,virginica"
    assert [line.split(",")[1:] for line in lines[1:]] == [["1", "0"], ["0", "1"]]
    volume = browser.get("/models/iris/monitoring.csv?chart=volume&range=6h")
    assert volume.get_data(as_text=True).splitlines()[0].startswith("start,version,requests")
    assert browser.get("/models/iris/monitoring.csv?chart=pie").status_code == 404
    assert browser.get("/models/iris/report.csv?chart=volume").status_code == 404
