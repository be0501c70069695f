"""The monitoring part of ``bench/analytics.py``: 1,000,000 prediction records on PostgreSQL.

Makes a database of its own on the PostgreSQL server (``--postgres-url``, by default
``MODELPORT_TEST_POSTGRES_URL`` or ``postgresql+psycopg://postgres@127.0.0.1:5432/test``),
migrates it, registers the demo iris model, and writes (with ``COPY``) 1,000,000 records of
one-row predictions over the 30 days before now, with feedback on 10 % of them. Then it
times, in this process, through the app:

* the baseline: ``SELECT count(*)`` of the model's records over the 30 days;
* the first rollup of all the records (once);
* the 30-day monitoring page (``/models/iris/monitoring?range=30d``, HTML with its charts)
  and its JSON, and the 30-day drift JSON, as server time (Flask's test client, an admin's
  token), medians of ``runs``;
* one more minute at 1,000 predictions/s: 60,000 records written, then the rollup run that
  adds them (median of ``runs`` such minutes).

The database is dropped at the end (``--keep-database`` keeps it).
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DATABASE = "modelport_bench_monitoring"
CLASSES = ("setosa", "versicolor", "virginica")
COLUMNS = (
    "request_id",
    "version_id",
    "model_name",
    "version_number",
    "runtime",
    "source",
    "status",
    "error_code",
    "row_count",
    "latency_ms",
    "inputs",
    "outputs",
    "truncated",
    "predicted_label",
    "predicted_value",
    "confidence",
    "created_at",
)
GOALS = {"monitoring page": 0.3, "drift": 0.3, "rollup of one minute": 1.0}


def _server_url() -> str:
    return os.environ.get("MODELPORT_TEST_POSTGRES_URL") or DEFAULT_POSTGRES


def _database_url(server: str) -> str:
    return str(sa.make_url(server).set(database=DATABASE).render_as_string(hide_password=False))


def _recreate(server: str, *, drop_only: bool = False) -> None:
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        if not drop_only:
            connection.exec_driver_sql(f"CREATE DATABASE {DATABASE}")
    engine.dispose()


def _records(
    count: int, start: datetime, seconds: float, rng: np.random.Generator, version_id: int
) -> tuple[list[tuple], list[tuple[str, str]]]:
    """``count`` one-row iris records spread over ``seconds`` from ``start``; with each, its
    (actual, predicted) for feedback."""
    means = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])
    species = rng.integers(0, 3, count)
    features = means[species] + rng.normal(0, 0.35, (count, 4))
    probabilities = rng.dirichlet([1, 1, 1], count) * 0.4
    probabilities[np.arange(count), species] += 0.6
    latency = rng.lognormal(1.2, 0.5, count)
    offsets = np.sort(rng.uniform(0, seconds, count))
    failed = rng.random(count) < 0.02
    rows, truths = [], []
    names = ("sepal_length", "sepal_width", "petal_length", "petal_width")
    for n in range(count):
        created = start + timedelta(seconds=float(offsets[n]))
        inputs = json.dumps([dict(zip(names, np.round(features[n], 2).tolist(), strict=True))])
        label = CLASSES[int(np.argmax(probabilities[n]))]
        truths.append((CLASSES[species[n]], label))
        if failed[n]:
            rows.append(
                (f"b{n}", version_id, "iris", 1, "onnxruntime", "api", "error", "model_failed",
                 1, float(latency[n]), inputs, None, False, None, None, None, created)
            )  # fmt: skip
            continue
        probs = dict(zip(CLASSES, np.round(probabilities[n], 4).tolist(), strict=True))
        outputs = json.dumps([{"label": label, "probabilities": probs}])
        rows.append(
            (f"b{n}", version_id, "iris", 1, "onnxruntime", "api", "ok", None, 1,
             float(latency[n]), inputs, outputs, False, label, None, max(probs.values()), created)
        )  # fmt: skip
    return rows, truths


def _copy(engine: sa.Engine, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    tuple(v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in row)
                )
        connection.commit()
    finally:
        connection.close()


def _write(
    app: Any, count: int, start: datetime, seconds: float, seed: int, feedback: float
) -> int:
    from modelport.extensions import db

    rng = np.random.default_rng(seed)
    with app.app_context():
        version_id = db.session.execute(sa.text("SELECT id FROM model_versions")).scalar()
        first = db.session.execute(sa.text("SELECT coalesce(max(id), 0) FROM predictions")).scalar()
        engine = db.engine
        db.session.remove()
    rows, truths = _records(count, start, seconds, rng, version_id)
    _copy(engine, "predictions", COLUMNS, rows)
    if feedback:
        chosen = np.flatnonzero(rng.random(count) < feedback)
        given = [
            (first + 1 + int(n), 0, "iris", 1, json.dumps(truths[n][0]), json.dumps(truths[n][1]),
             min(rows[n][-1] + timedelta(hours=2), start + timedelta(seconds=seconds)))
            for n in chosen
            if rows[n][6] == "ok"
        ]  # fmt: skip
        _copy(
            engine,
            "prediction_feedback",
            ("record_id", "row_index", "model_name", "version_number", "actual", "predicted",
             "created_at"),
            given,
        )  # fmt: skip
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE predictions")
        connection.exec_driver_sql("ANALYZE prediction_feedback")
        connection.commit()
    return count


def _median(fn: Any, runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def run(records: int, runs: int, *, keep: bool = False, log: Any = print) -> dict[str, Any]:
    """Fill, roll up and time (see the module's docstring); the figures in seconds."""
    from flask_migrate import upgrade

    from modelport import create_app
    from modelport.analytics import rollups
    from modelport.auth import accounts, tokens
    from modelport.extensions import db
    from modelport.models import Role
    from modelport.serving import registry
    from modelport.serving.demo import train_demo_models

    server = _server_url()
    _recreate(server)
    folder = Path(tempfile.mkdtemp(prefix="modelport-bench-monitoring-"))
    app = create_app(
        {
            "ENV": "testing",
            "DATABASE_URL": _database_url(server),
            "INSTANCE_PATH": str(folder / "instance"),
            "ARTIFACTS_DIR": str(folder / "artifacts"),
            "ROLLUP_SECONDS": "0",
            "METRICS": "false",
            "REQUEST_LOG": "false",
            "LOG_LEVEL": "WARNING",
        }
    )
    figures: dict[str, Any] = {"records": records}
    try:
        with app.app_context():
            upgrade(directory=str(Path(app.root_path) / "migrations"))
            (iris,) = [m for m in train_demo_models(folder, progress=False) if m.name == "iris"]
            registry.register_trained(iris)
            admin = accounts.create_user(
                "bench@example.com", "Bench", secrets.token_urlsafe(24), role=Role.ADMIN
            )
            _, token = tokens.create_token(admin, "bench", scopes=["full"])
            db.session.remove()
        now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
        started = time.perf_counter()
        _write(app, records, now - timedelta(days=30), 30 * 86400, 1, 0.1)
        log(
            f"  wrote {records:,} records and feedback on 10 % in {time.perf_counter() - started:.0f} s"
        )
        since = now - timedelta(days=30)
        with app.app_context():
            count_sql = sa.text(
                "SELECT count(*) FROM predictions WHERE model_name = 'iris' AND created_at >= :since"
            )
            figures["count"], counted = _median(
                lambda: db.session.execute(
                    count_sql, {"since": since.replace(tzinfo=None)}
                ).scalar(),
                runs,
            )
            assert counted == records, counted
            started = time.perf_counter()
            summary = rollups.roll_up(now=now + timedelta(minutes=1))
            figures["first rollup"] = time.perf_counter() - started
            assert summary.records == records, summary
            db.session.remove()
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        iso = since.isoformat().replace("+00:00", "Z")
        until = now.isoformat().replace("+00:00", "Z")

        def get(path: str) -> Any:
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.status_code)
            return response

        get("/models/iris/monitoring?range=30d")  # warm: templates, first queries
        figures["monitoring page"], _ = _median(
            lambda: get("/models/iris/monitoring?range=30d"), runs
        )
        figures["monitoring JSON"], answer = _median(
            lambda: get(f"/api/v1/models/iris/monitoring?since={iso}&until={until}"), runs
        )
        assert answer.get_json()["totals"]["requests"] == records
        figures["drift"], found = _median(
            lambda: get(f"/api/v1/models/iris/drift?since={iso}&until={until}"), runs
        )
        figures["drift sample rows"] = found.get_json()["sample_rows"]
        figures["drift over time"], _ = _median(
            lambda: get(f"/api/v1/models/iris/drift?since={iso}&until={until}&over_time=true"),
            runs,
        )
        figures["drift page"], _ = _median(lambda: get("/models/iris/drift?range=30d"), runs)
        minutes = []
        moment = now + timedelta(minutes=1)
        for n in range(runs):
            _write(app, 60_000, moment, 60, 100 + n, 0.0)
            with app.app_context():
                started = time.perf_counter()
                summary = rollups.roll_up(now=moment + timedelta(minutes=2))
                minutes.append(time.perf_counter() - started)
                assert summary.records == 60_000, summary
                db.session.remove()
            moment += timedelta(minutes=1)
        figures["rollup of one minute"] = statistics.median(minutes)
        with app.app_context():
            minute_count = sa.text(
                "SELECT count(*) FROM predictions WHERE created_at >= :since AND created_at < :until"
            )
            last = moment - timedelta(minutes=1)
            figures["count of one minute"], _ = _median(
                lambda: db.session.execute(
                    minute_count,
                    {"since": last.replace(tzinfo=None), "until": moment.replace(tzinfo=None)},
                ).scalar(),
                runs,
            )
            db.session.remove()
    finally:
        from modelport.extensions import dispose_engines

        with app.app_context():
            dispose_engines()
        if not keep:
            _recreate(server, drop_only=True)
    return figures


def table(figures: dict[str, Any]) -> str:
    """The figures as a Markdown table with ratios to ``SELECT count(*)`` and the goals."""
    lines = [
        f"| Step ({figures['records']:,} records on PostgreSQL) | Median | × `SELECT count(*)` | Goal |",
        "|---|---:|---:|---|",
        f"| `SELECT count(*)`, 30 days (baseline) | {figures['count'] * 1000:.0f} ms | 1.0 | |",
        f"| first rollup of every record (once) | {figures['first rollup']:.1f} s | "
        f"{figures['first rollup'] / figures['count']:.0f} | |",
    ]
    for name, label in (
        ("monitoring page", "30-day monitoring page (HTML, 4 charts)"),
        ("monitoring JSON", "30-day monitoring JSON"),
        ("drift", "30-day drift JSON"),
        ("drift over time", "30-day drift JSON with `over_time` (per day)"),
        ("drift page", "30-day drift page (HTML, 2 charts, per day)"),
    ):
        goal = GOALS.get(name)
        verdict = (
            ""
            if goal is None
            else f"< {goal * 1000:.0f} ms: {'PASS' if figures[name] < goal else 'FAIL'}"
        )
        lines.append(
            f"| {label} | {figures[name] * 1000:.0f} ms | {figures[name] / figures['count']:.2f} | {verdict} |"
        )
    minute = figures["rollup of one minute"]
    lines.append(
        f"| rollup of one minute at 1,000/s (60,000 records) | {minute * 1000:.0f} ms | "
        f"{minute / figures['count of one minute']:.0f} × its own count | "
        f"< 1 s: {'PASS' if minute < GOALS['rollup of one minute'] else 'FAIL'} |"
    )
    return "\n".join(lines)
