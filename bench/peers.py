"""Modelport and MLflow's own model server, serving the same logged model, side by side.

One command, one run, loopback, the load of bench/serving.py (wrk, closed loop):

1. a throwaway Modelport instance in a temporary folder (SQLite database, MLflow's default
   SQLite tracking store and artifact folder in the instance folder), where the iris data set
   is added (``modelport dataset add``) and a logistic regression trained on it and logged to
   MLflow (``modelport train --recipe logistic-regression``): MLflow registers it as
   ``models:/iris/1``;
2. **MLflow**: ``mlflow models serve -m models:/iris/1 --env-manager local --workers 2``, run
   from the MLflow virtualenv (``make mlflow-venv``: the full ``mlflow`` package, which
   Modelport's own environment cannot hold), ``POST /invocations`` with
   ``{"dataframe_split": ...}``; no authentication, no record, uvicorn as MLflow runs it;
3. **Modelport**: that MLflow model imported with ``modelport register models:/iris/1``
   (``MODELPORT_MLFLOW_TRUSTED=true``), served by gunicorn with the product's config and 2
   workers, ``POST /api/v1/models/iris-mlflow/predict`` with a Bearer token, its input
   validated against the model's schema, every prediction recorded in SQLite.

Both are checked first to give the same label for the same rows. Then each is warmed up
and measured in interleaved rounds (5 by default; every second round the other server goes
first): 16 connections (req/s, p50, p99), then one connection (p50: the latency of one
request). The medians of the rounds are shown, with the ratios Modelport / MLflow and the
goals (issue 13) as PASS/FAIL lines; the exit status is non-zero only when requests failed.
docs/benchmarks.md ("Side by side with MLflow's own server") explains it.

    .venv/bin/python bench/peers.py [--rounds 5] [--duration 5] [--single-duration 3]
        [--warmup 2] [--connections 16] [--generator auto|wrk|python] [--mlflow-venv DIR]
        [--results DIR]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(BENCH_DIR))

from deployment import (  # noqa: E402
    BENCH_EMAIL,
    GUNICORN_CONFIG,
    USER_LIMIT,
    WORKERS,
    create_bench_token,
    modelport_env,
)
from load import generator_for  # noqa: E402
from machine import describe, load_average  # noqa: E402
from server import free_port, gunicorn, process_group  # noqa: E402
from serving import (  # noqa: E402
    Endpoint,
    check_endpoint,
    clean_environ,
    measure,
    request_json,
)

# Made by `make mlflow-venv` (tests/support/mlflow_server.py, whose MLFLOW_VERSION it names).
MLFLOW_VENV = Path.home() / ".cache" / "modelport" / "mlflow-venv" / "3.17.2"
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
ROW = (5.1, 3.5, 1.4, 0.2)
TRAINED = "iris"  # the model `modelport train` logs to MLflow (models:/iris/1)
IMPORTED = "iris-mlflow"  # that MLflow model, imported into Modelport
# The goals (issue 13), Modelport / MLflow: at least this × the throughput, at most this ×
# the p99 at 16 connections and the p50 at one connection. Informational PASS/FAIL lines.
GOALS = {"throughput": 3.0, "p99": 1 / 5, "single_p50": 1 / 3}
MLFLOW_LIBRARIES = ("mlflow", "scikit-learn", "pandas", "fastapi", "uvicorn")
MODELPORT_LIBRARIES = ("flask", "gunicorn", "scikit-learn", "onnxruntime", "sqlalchemy")


def mlflow_body(rows: list[tuple[float, ...]]) -> dict:
    """MLflow's /invocations body for ``rows`` (pandas' split orientation)."""
    return {"dataframe_split": {"columns": list(FEATURES), "data": [list(row) for row in rows]}}


def modelport_body(rows: list[tuple[float, ...]]) -> dict:
    """Modelport's predict body for ``rows``: one object per row, or the object for one."""
    objects = [dict(zip(FEATURES, row, strict=True)) for row in rows]
    return {"inputs": objects[0] if len(objects) == 1 else objects}


def modelport(*arguments: str, env: dict[str, str]) -> None:
    """Run the ``modelport`` command of this virtualenv as a user would; raise on failure."""
    command = [str(Path(sys.executable).with_name("modelport")), *arguments]
    done = subprocess.run(  # noqa: S603 - our own command line
        command, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"`modelport {' '.join(arguments)}` failed:\n{done.stdout}{done.stderr}")


def prepare(workdir: Path, env: dict[str, str]) -> tuple[str, list[tuple[float, ...]]]:
    """A fresh Modelport instance with the iris model trained, logged to MLflow and imported
    back from it; return the benchmark member's token and a few rows to check answers with."""
    from flask_migrate import upgrade

    from modelport import create_app
    from modelport.extensions import db
    from modelport.serving.demo import demo_dataset

    overrides = {key.removeprefix("MODELPORT_"): value for key, value in env.items()}
    app = create_app({**overrides, "LOG_LEVEL": "WARNING"})  # no token line in the output
    with app.app_context():
        upgrade()
        token = create_bench_token()
        db.session.remove()
        db.engine.dispose()
    features, target = demo_dataset("iris")
    table = features.assign(species=target)
    table.to_csv(workdir / "iris.csv", index=False)
    modelport("dataset", "add", str(workdir / "iris.csv"), "--name", "iris", env=env)
    modelport("train", "iris", "--recipe", "logistic-regression", "--name", TRAINED, env=env)
    modelport(
        "register",
        f"models:/{TRAINED}/1",
        "--name",
        IMPORTED,
        "--task",
        "classification",
        "--alias",
        "champion",
        env=env,
    )
    # One row of each species, and two near the border between versicolor and virginica.
    picks = [0, 50, 100, 70, 133]
    rows = [tuple(float(v) for v in features.iloc[i][list(FEATURES)]) for i in picks]
    return token, rows


def venv_versions(venv: Path, libraries: tuple[str, ...]) -> str:
    """``name version`` of each library in the MLflow virtualenv, comma-separated."""
    script = (
        "import importlib.metadata as m, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try: print(name, m.version(name))\n"
        "    except m.PackageNotFoundError: print(name, 'not installed')\n"
    )
    done = subprocess.run(  # noqa: S603 - the virtualenv's own python
        [str(venv / "bin" / "python"), "-c", script, *libraries],
        capture_output=True,
        text=True,
        check=True,
    )
    return ", ".join(done.stdout.split("\n")[:-1])


def check_same_answers(
    mlflow_url: str, modelport_url: str, token: str, rows: list[tuple[float, ...]]
) -> list[str]:
    """Both servers' labels for ``rows``; raise unless they are the same."""
    status, theirs = request_json(mlflow_url, "POST", mlflow_body(rows), {})
    if status != 200:
        raise RuntimeError(f"mlflow models serve answered {status}: {theirs}")
    status, ours = request_json(
        modelport_url, "POST", modelport_body(rows), {"Authorization": f"Bearer {token}"}
    )
    if status != 200:
        raise RuntimeError(f"Modelport answered {status}: {ours}")
    mlflow_labels = [str(label) for label in theirs["predictions"]]
    modelport_labels = [str(prediction["label"]) for prediction in ours["predictions"]]
    if mlflow_labels != modelport_labels:
        raise RuntimeError(
            f"the servers disagree on {rows}: MLflow {mlflow_labels}, Modelport {modelport_labels}"
        )
    return mlflow_labels


def ratio_of(ours: Endpoint, theirs: Endpoint, name: str, single: bool = False) -> float:
    """Modelport's median over MLflow's, for ``name`` (a LoadResult field)."""
    return ours.median(name, ours.single if single else None) / theirs.median(
        name, theirs.single if single else None
    )


def table(endpoints: list[Endpoint]) -> str:
    """Both servers, then the ratios Modelport / MLflow, as Markdown."""
    lines = [
        "| server | runtime | req/s (median) | req/s range | p50 ms | p99 ms "
        "| p50 ms, 1 connection | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for endpoint in endpoints:
        rates = [run.requests_per_second for run in endpoint.runs]
        lines.append(
            f"| {endpoint.label} | {endpoint.runtime} "
            f"| {endpoint.median('requests_per_second'):,.0f} "
            f"| {min(rates):,.0f}–{max(rates):,.0f} | {endpoint.median('p50_ms'):.1f} "
            f"| {endpoint.median('p99_ms'):.1f} "
            f"| {endpoint.median('p50_ms', endpoint.single):.2f} | {endpoint.errors} |"
        )
    theirs, ours = endpoints
    lines.append(
        f"| Modelport / MLflow | | {ratio_of(ours, theirs, 'requests_per_second'):.2f}× | "
        f"| {ratio_of(ours, theirs, 'p50_ms'):.2f}× | {ratio_of(ours, theirs, 'p99_ms'):.2f}× "
        f"| {ratio_of(ours, theirs, 'p50_ms', single=True):.2f}× | |"
    )
    return "\n".join(lines)


def goals(endpoints: list[Endpoint]) -> list[str]:
    """The goals as PASS/FAIL lines."""
    theirs, ours = endpoints
    checks = [
        ("throughput (req/s, 16 connections)", "requests_per_second", False, "≥", "throughput"),
        ("p99 at 16 connections", "p99_ms", False, "≤", "p99"),
        ("p50 at 1 connection", "p50_ms", True, "≤", "single_p50"),
    ]
    lines = []
    for words, name, single, sign, goal in checks:
        ratio = ratio_of(ours, theirs, name, single)
        limit = GOALS[goal]
        met = ratio >= limit if sign == "≥" else ratio <= limit
        lines.append(
            f"{'PASS' if met else 'FAIL'}  Modelport {words} {sign} {limit:.2f}× "
            f"mlflow models serve: {ratio:.2f}×"
        )
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", dest="runs", type=int, default=5, help="rounds (5)")
    parser.add_argument("--duration", type=int, default=5, help="seconds at 16 connections (5)")
    parser.add_argument(
        "--single-duration", type=int, default=3, help="seconds at one connection (3)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per server (2)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--generator", default="auto", choices=("auto", "wrk", "python"))
    parser.add_argument(
        "--mlflow-venv",
        type=Path,
        default=MLFLOW_VENV,
        help=f"the virtualenv with mlflow (`make mlflow-venv`; {MLFLOW_VENV})",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS_DIR,
        help="the folder the report is also written to (bench/results)",
    )
    args = parser.parse_args(argv)
    if min(args.duration, args.single_duration, args.warmup, args.runs, args.connections) < 1:
        parser.error("durations, --rounds and --connections must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    venv = args.mlflow_venv
    if not (venv / "bin" / "mlflow").exists():
        print(
            f"no MLflow virtualenv at {venv}: `make mlflow-venv` makes it (needs the package "
            "index), or give --mlflow-venv DIR",
            file=sys.stderr,
        )
        return 2
    # SIGTERM unwinds like Ctrl-C, so both servers are stopped and the folder removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = generator_for(args.generator, args.connections, args.duration, args.single_duration)
    if chosen is None:
        return 2
    generator, generator_label = chosen
    started = time.monotonic()
    load_before = load_average()
    clean_environ()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mp-peers-")))
        env = modelport_env(
            f"sqlite:///{workdir / 'modelport.db'}",
            workdir,
            record=True,
            secret=secrets.token_urlsafe(48),
        )
        env["MODELPORT_MLFLOW_TRUSTED"] = "true"
        # MLflow's store is Modelport's default: a SQLite file in the instance folder.
        tracking_uri = f"sqlite:///{workdir / 'instance' / 'mlflow.db'}"
        try:
            print("training iris, logging it to MLflow, importing it", file=sys.stderr)
            token, rows = prepare(workdir, env)
            print(f"starting the servers ({generator_label})", file=sys.stderr, flush=True)
            port = free_port()
            mlflow_base = stack.enter_context(
                process_group(
                    [
                        str(venv / "bin" / "mlflow"),
                        "models",
                        "serve",
                        "-m",
                        f"models:/{TRAINED}/1",
                        "--env-manager",
                        "local",
                        "--workers",
                        str(WORKERS),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                    ],
                    base_url=f"http://127.0.0.1:{port}",
                    # The virtualenv's bin first on PATH, as activating it would: the command
                    # starts `uvicorn` from there.
                    env={
                        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                        "MLFLOW_TRACKING_URI": tracking_uri,
                        # mlflow.set_registry_uri() exports this for child processes: a
                        # caller that used MLflow (a test process) would point it elsewhere.
                        "MLFLOW_REGISTRY_URI": tracking_uri,
                        # No usage reports leave the machine (Modelport sets the same).
                        "MLFLOW_DISABLE_TELEMETRY": "true",
                    },
                    log_path=workdir / "mlflow-serve.log",
                    ready_path="/ping",
                    startup_timeout=120,
                    name="mlflow models serve",
                )
            )
            modelport_base = stack.enter_context(
                gunicorn(
                    "serving_apps:modelport_app()",
                    env=env,
                    log_path=workdir / "gunicorn.log",
                    workers=WORKERS,
                    ready_path="/healthz",
                    config=GUNICORN_CONFIG,
                    startup_timeout=60,
                )
            )
            endpoints = [
                Endpoint(
                    "mlflow",
                    f"`mlflow models serve`, {WORKERS} workers",
                    "mlflow",
                    "/invocations",
                    body=mlflow_body([ROW]),
                    runtime="sklearn (pyfunc)",
                ),
                Endpoint(
                    "modelport",
                    f"Modelport, {WORKERS} workers, token, recording on (SQLite)",
                    "modelport",
                    f"/api/v1/models/{IMPORTED}/predict",
                    body=modelport_body([ROW]),
                    modelport=True,
                    record=True,
                    # serving.round_order: every second round, Modelport goes first.
                    baseline_of="mlflow",
                ),
            ]
            bases = {"mlflow": mlflow_base, "modelport": modelport_base}

            def headers(endpoint: Endpoint) -> dict[str, str]:
                return {"Authorization": f"Bearer {token}"} if endpoint.modelport else {}

            for endpoint in endpoints:
                check_endpoint(endpoint, bases[endpoint.server], headers(endpoint))
            labels = check_same_answers(
                mlflow_base + "/invocations",
                modelport_base + f"/api/v1/models/{IMPORTED}/predict",
                token,
                rows,
            )
            print(f"  both answer {labels} for {len(rows)} rows", file=sys.stderr)
            measure(endpoints, bases, headers, args, generator)
        except KeyboardInterrupt:
            print("interrupted: servers stopped, temporary folder removed", file=sys.stderr)
            return 130

    command = "python bench/peers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = [
        "## Side by side with MLflow's own server",
        "",
        *describe(load_before, MODELPORT_LIBRARIES, cpu_note="(shared by both servers and wrk)"),
        f"- MLflow virtualenv ({venv}): {venv_versions(venv, MLFLOW_LIBRARIES)}; SQLite "
        f"{sqlite3.sqlite_version}",
        f"- Model: logistic regression on iris, trained by `modelport train` and logged to "
        f"MLflow as `models:/{TRAINED}/1`; MLflow serves it with `mlflow models serve "
        f"--env-manager local --workers {WORKERS}` (uvicorn, its access log on), Modelport "
        f"imports it with `modelport register models:/{TRAINED}/1` and serves it with gunicorn, "
        f"`modelport/ops/gunicorn_conf.py`, {WORKERS} workers, MODELPORT_ENV=production, a "
        f"Bearer token (scope predict, PREDICT_LIMIT_USER={USER_LIMIT!r}, member "
        f"{BENCH_EMAIL}), every prediction recorded in SQLite, metrics and the request log on",
        f"- Load: {generator_label}; {args.warmup} s warm-up per server, {args.runs} "
        "interleaved rounds, medians shown; body: one iris row as JSON",
        f"- Command: `{command.strip()}` (took {time.monotonic() - started:.0f} s)",
        "",
        table(endpoints),
        "",
        *goals(endpoints),
        "",
    ]
    text_out = "\n".join(report)
    print(text_out)
    args.results.mkdir(parents=True, exist_ok=True)
    saved = args.results / f"peers-{datetime.now().strftime('%Y%m%d-%H%M%S')}.md"
    saved.write_text(text_out)
    print(f"saved to {saved}", file=sys.stderr)
    if any(endpoint.errors for endpoint in endpoints):
        print("some requests failed: see the errors column", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
