"""Rollups (``analytics.rollups``, ``modelport rollup``): the monitoring and drift figures are
the same before, during and after a run, on every database; runs are incremental, wait for
records that may still change, take turns, and pick up feedback given afterwards."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from flask import Flask
from sqlalchemy import func, select

from modelport.analytics import drift, monitoring, rollups, schedule
from modelport.auth.caller import Caller
from modelport.extensions import db
from modelport.models import Feedback, PredictionRecord, PredictionRollup
from modelport.serving import registry
from tests.support.models import register_demo
from tests.support.records import write_records
from tests.support.users import make_user

pytestmark = [pytest.mark.db, pytest.mark.filterwarnings("ignore::UserWarning")]

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
CLASSES = ("setosa", "versicolor", "virginica")


def iris_row(rng: np.random.Generator, shift: float = 0.0) -> dict[str, float]:
    return {
        "sepal_length": round(float(rng.normal(5.8, 0.8)), 2),
        "sepal_width": round(float(rng.normal(3.0, 0.4)), 2),
        "petal_length": round(float(rng.normal(3.7, 1.7) + shift), 2),
        "petal_width": round(float(rng.normal(1.2, 0.7)), 2),
    }


def output(rng: np.random.Generator) -> dict[str, Any]:
    probabilities = rng.dirichlet([2, 2, 2])
    label = CLASSES[int(np.argmax(probabilities))]
    return {
        "label": label,
        "probabilities": dict(zip(CLASSES, probabilities.tolist(), strict=True)),
    }


def records(count: int, seed: int, *, user: int | None = None) -> list[dict[str, Any]]:
    """Records of iris over the three days before NOW: one or several rows, some failed,
    a streamed one left incomplete; the one-row answers with their typed columns."""
    rng = np.random.default_rng(seed)
    made = []
    for n in range(count):
        created = NOW - timedelta(seconds=int(rng.integers(60, 3 * 86400)))
        rows = 1 if n % 4 else int(rng.integers(2, 5))
        fields: dict[str, Any] = {
            "created_at": created,
            "row_count": rows,
            "latency_ms": round(float(rng.lognormal(3, 0.6)), 3),
            "user_id": user if n % 3 == 0 else None,
            "inputs": [iris_row(rng) for _ in range(rows)],
        }
        if n % 17 == 0:
            fields |= {"status": "error", "error_code": "model_failed"}
        elif n % 29 == 0:
            fields |= {"status": "incomplete", "source": "csv", "inputs": None}
        else:
            outputs = [output(rng) for _ in range(rows)]
            fields["outputs"] = outputs
            if rows == 1:
                top = outputs[0]
                fields |= {
                    "predicted_label": top["label"],
                    "confidence": max(top["probabilities"].values()),
                }
        made.append(fields)
    return made


def give_feedback(app: Flask, ids: list[int], every: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with app.app_context():
        for record_id in ids[::every]:
            record = db.session.get(PredictionRecord, record_id)
            if record.status != "ok":
                continue
            for row, out in enumerate(record.outputs):
                db.session.add(
                    Feedback(
                        record_id=record_id,
                        row_index=row,
                        model_name="iris",
                        version_number=1,
                        actual=out["label"] if rng.random() < 0.7 else CLASSES[row % 3],
                        predicted=out["label"],
                    )
                )
        db.session.commit()


def close(found: Any, expected: Any, path: str = "") -> None:
    """Equal, floats up to their rounding (sums added in another order)."""
    if isinstance(expected, dict):
        assert isinstance(found, dict) and set(found) == set(expected), path
        for key in expected:
            close(found[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(found, list) and len(found) == len(expected), path
        for n, (a, b) in enumerate(zip(found, expected, strict=True)):
            close(a, b, f"{path}[{n}]")
    elif isinstance(expected, float):
        assert found == pytest.approx(expected, rel=1e-6, abs=1e-4), path
    else:
        assert found == expected, path


def admin_of(app: Flask) -> Caller:
    return Caller(user_id=make_user(app, "root@example.com", role="admin"), role="admin")


def figures(app: Flask, caller: Caller) -> list[dict[str, Any]]:
    """The monitoring of a minute, an hour and a day window, and the drift of two."""
    found = []
    with app.app_context():
        for since, until in (
            (NOW - timedelta(hours=5), NOW),
            (NOW - timedelta(days=3), NOW),
            (NOW - timedelta(days=20), NOW),
        ):
            span = monitoring.window(since, until)
            found.append(monitoring.monitor(caller, "iris", span))
        for since in (NOW - timedelta(days=3), NOW - timedelta(hours=20)):
            span = monitoring.window(since, NOW, version=1)
            found.append(drift.drift(caller, "iris", span, over_time=True))
            found.append(drift.drift(caller, "iris", span, method="psi"))
        db.session.remove()
    return found


@pytest.fixture
def served(app_factory: Any, demo_models: dict[str, Any]) -> Flask:
    app = app_factory()
    register_demo(app, demo_models, "iris")
    return app


def run(app: Flask, **kwargs: Any) -> rollups.Summary:
    with app.app_context():
        summary = rollups.roll_up(now=NOW, **kwargs)
        db.session.remove()
    return summary


def test_the_figures_are_the_same_before_during_and_after_a_rollup(served: Flask) -> None:
    ann = make_user(served, "ann@example.com")
    admin = admin_of(served)
    ids = write_records(served, *records(400, 1, user=ann))
    give_feedback(served, ids, 5, 2)
    before = figures(served, admin)
    assert before[1]["totals"]["requests"] == 400
    assert before[1]["totals"]["feedback_rows"] > 0
    assert before[1]["top_users"][0]["email"] == "ann@example.com"
    first = run(served, limit=150)
    assert first.records == 150
    close(figures(served, admin), before)  # part rolled up, part live
    rest = run(served)
    assert rest.records == 250 and rest.last_record_id == max(ids)
    close(figures(served, admin), before)
    assert run(served).records == 0  # nothing new: nothing added twice
    close(figures(served, admin), before)
    with served.app_context():
        hours = db.session.scalar(
            select(func.count())
            .select_from(PredictionRollup)
            .where(PredictionRollup.seconds == 3600)
        )
        assert 70 <= hours <= 73  # three days of hours with records


def test_hand_counts_match(served: Flask) -> None:
    admin = admin_of(served)
    ids = write_records(served, *records(120, 3))
    give_feedback(served, ids, 3, 4)
    run(served)
    with served.app_context():
        rows = db.session.execute(
            select(
                PredictionRecord.status,
                PredictionRecord.row_count,
                PredictionRecord.outputs,
                PredictionRecord.latency_ms,
            )
        ).all()
        pairs = db.session.execute(select(Feedback.actual, Feedback.predicted)).all()
        span = monitoring.window(NOW - timedelta(days=4), NOW)
        body = monitoring.monitor(admin, "iris", span)
    totals = body["totals"]
    assert totals["requests"] == len(rows)
    assert totals["rows"] == sum(r.row_count for r in rows)
    assert totals["errors"] == sum(r.status == "error" for r in rows)
    assert totals["incomplete"] == sum(r.status == "incomplete" for r in rows)
    right = sum(str(a) == str(p) for a, p in pairs)
    assert totals["feedback_rows"] == len(pairs)
    assert totals["realized_accuracy"] == round(right / len(pairs), 4)
    tops = [max(o["probabilities"].values()) for r in rows if r.outputs for o in r.outputs]
    assert totals["estimated_accuracy"] == round(sum(tops) / len(tops), 4)
    answered = [r.latency_ms for r in rows if r.status == "ok"]
    exact = np.percentile(answered, [50, 95, 99])
    sketched = totals["latency_ms"]
    assert [sketched["p50"], sketched["p95"], sketched["p99"]] == pytest.approx(exact, rel=0.01)
    labels: dict[str, int] = {}
    for r in rows:
        for o in r.outputs or []:
            labels[o["label"]] = labels.get(o["label"], 0) + 1
    counted: dict[str, int] = {}
    for point in body["predicted"]:
        for label, n in point["counts"].items():
            counted[label] = counted.get(label, 0) + n
    assert counted == labels


def test_recent_and_streaming_records_wait(served: Flask) -> None:
    admin = admin_of(served)
    old = write_records(served, {"created_at": NOW - timedelta(minutes=5)})
    streaming = write_records(
        served,
        {
            "created_at": NOW - timedelta(minutes=4),
            "status": "incomplete",
            "row_count": 0,
            "latency_ms": 0.0,
            "source": "csv",
        },
    )
    after = write_records(served, {"created_at": NOW - timedelta(minutes=3)})
    fresh = write_records(served, {"created_at": NOW - timedelta(seconds=2)})
    summary = run(served)
    # The stream still runs: the records after it wait, so that none is rolled up before it.
    assert (summary.records, summary.last_record_id) == (1, old[0])
    with served.app_context():
        db.session.execute(
            PredictionRecord.__table__.update()
            .where(PredictionRecord.id == streaming[0])
            .values(status="ok", row_count=500, latency_ms=900.0)
        )
        db.session.commit()
    summary = run(served)
    assert (summary.records, summary.last_record_id) == (2, after[0])  # not the 2 s old one
    # Until the next run the newest is counted live: the figures have all four.
    with served.app_context():
        body = monitoring.monitor(admin, "iris", monitoring.window(NOW - timedelta(hours=1), NOW))
    assert body["totals"]["requests"] == 4 and body["totals"]["rows"] == 503
    assert fresh[0] > after[0]


def test_feedback_given_after_a_run_counts_from_the_next(served: Flask) -> None:
    admin = admin_of(served)
    ids = write_records(served, *records(60, 5))
    run(served)
    give_feedback(served, ids, 2, 6)
    with served.app_context():
        given = db.session.scalar(select(func.count()).select_from(Feedback))
    later = NOW + timedelta(minutes=1)
    with served.app_context():
        summary = rollups.roll_up(now=later)
        span = monitoring.window(NOW - timedelta(days=4), NOW)
        body = monitoring.monitor(admin, "iris", span)
    assert summary.feedback_hours > 0
    assert body["totals"]["feedback_rows"] == given
    # Sent again (replaced: deleted and written anew, as serving.feedback does), it is
    # counted once.
    with served.app_context():
        db.session.execute(Feedback.__table__.delete().where(Feedback.record_id.in_(ids[:10])))
        db.session.commit()
    give_feedback(served, ids[:10], 2, 7)
    with served.app_context():
        rollups.roll_up(now=later + timedelta(minutes=1))
        body = monitoring.monitor(admin, "iris", span)
        assert body["totals"]["feedback_rows"] == db.session.scalar(
            select(func.count()).select_from(Feedback)
        )


def test_two_runs_at_once_count_each_record_once(served: Flask) -> None:
    write_records(served, *records(300, 8))
    errors: list[BaseException] = []

    def one() -> None:
        try:
            with served.app_context():
                rollups.roll_up(now=NOW)
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    with served.app_context():
        stored = db.session.scalar(
            select(func.sum(PredictionRollup.requests)).where(PredictionRollup.seconds == 3600)
        )
        assert stored == 300 and rollups.pending() == 0


def test_drift_from_rollups_detects_a_known_shift(served: Flask) -> None:
    admin = admin_of(served)
    with served.app_context():
        version = registry.get_model("iris").versions[0]
        training = registry.read_sample(registry.artifact_store().path(version.sample_sha256))
    training = training.drop(columns=[registry.TARGET_COLUMN], errors="ignore")
    same = training.sample(300, replace=True, random_state=1).to_dict("records")
    moved = training.sample(300, replace=True, random_state=2)
    moved = moved.assign(petal_length=moved["petal_length"] + 2.0).to_dict("records")
    write_records(
        served,
        *(
            {"created_at": NOW - timedelta(hours=30, minutes=n % 50), "inputs": [row]}
            for n, row in enumerate(same)
        ),
        *(
            {"created_at": NOW - timedelta(hours=3, minutes=n % 50), "inputs": [row]}
            for n, row in enumerate(moved)
        ),
    )
    run(served)
    with served.app_context():
        earlier = drift.drift(
            admin, "iris", monitoring.window(NOW - timedelta(hours=32), NOW - timedelta(hours=28))
        )
        recent = drift.drift(admin, "iris", monitoring.window(NOW - timedelta(hours=5), NOW))
        whole = drift.drift(
            admin, "iris", monitoring.window(NOW - timedelta(hours=32), NOW), over_time=True
        )
    assert [f["drift"] for f in earlier["features"]] == [False] * 4
    assert {f["name"]: f["drift"] for f in recent["features"]} == {
        "sepal_length": False,
        "sepal_width": False,
        "petal_length": True,
        "petal_width": False,
    }
    # Over time (hours): the day before is quiet, the last hours drift on petal_length.
    assert {tuple(p["drifted"]) for p in whole["over_time"][:1]} == {()}
    assert whole["over_time"][-1]["drifted"] == ["petal_length"]


def test_binned_figures_are_scipys_on_the_same_bins(app: Flask) -> None:
    from scipy import stats

    from modelport.analytics import sketch

    rng = np.random.default_rng(10)
    reference = rng.normal(5, 2, 3000)
    current = rng.normal(5.5, 2, 2000)
    bins = sketch.build(current)
    values, weights = sketch.points(bins)
    with app.app_context():
        verdict = drift.numeric_test("x", reference, values, weights)
        psi = drift.psi_test("x", reference, values, True, weights)
        raw = drift.numeric_test("x", reference, current)
    expected = stats.wasserstein_distance(reference, values, v_weights=weights) / np.std(reference)
    assert verdict.statistic == pytest.approx(expected)
    # The bins are 2 % wide: the binned distance is the raw one within a few hundredths.
    assert math.isclose(verdict.statistic, raw.statistic, abs_tol=0.02)
    edges = np.quantile(reference, np.linspace(0, 1, 11))
    edges[0], edges[-1] = -np.inf, np.inf
    ref = np.histogram(reference, edges)[0] / len(reference)
    cur = np.histogram(values, edges, weights=weights)[0] / weights.sum()
    assert psi.statistic == pytest.approx(float(np.sum((cur - ref) * np.log(cur / ref))))


def test_the_command_rolls_up_and_keeps_the_drift_share(served: Flask) -> None:
    rng = np.random.default_rng(11)
    now = datetime.now(UTC)
    write_records(
        served,
        *(
            {"created_at": now - timedelta(hours=2), "inputs": [iris_row(rng, 3.0)]}
            for _ in range(200)
        ),
    )
    result = served.test_cli_runner().invoke(args=["rollup"])
    assert result.exit_code == 0, result.output
    assert "Rolled up 200 records" in result.output
    with served.app_context():
        shares = rollups.drift_shares()
        assert shares["iris"] >= 0.25
        assert schedule.run().records == 0  # a second run finds nothing new
