"""Modelport's predict endpoint against bare Flask and a hand-written predict endpoint.

One command, one run, the same gunicorn settings for every server (the product's
``modelport/ops/gunicorn_conf.py`` with 2 workers of its class, ``modelport.ops.worker``,
access log off), loopback, wrk:

1. bare Flask hello-world (bench/serving_apps.py), the ceiling of Flask + gunicorn here, and
   (PostgreSQL only) bare Flask doing one durable INSERT per request, the floor under any
   durably recorded answer;
2. a minimal hand-written Flask predict endpoint (JSON → numpy → predict_proba → JSON, native
   scikit-learn, no validation), for the iris logistic regression and a 100-tree random forest;
3. Modelport's ``POST /api/v1/models/<name>/predict`` with an API token, for the same two
   models: recording off (SQLite), recording on (SQLite), recording on (PostgreSQL); and,
   for the logistic regression, recording off without metrics and the request log line
   (MODELPORT_METRICS=false, MODELPORT_REQUEST_LOG=false: what they cost), and recording on
   PostgreSQL with MODELPORT_WORKER_GROUP=1 (each answer waits for its own commit, as on
   gunicorn's sync worker). Every other Modelport row has metrics and the request log on, as
   they are by default.

Each endpoint is measured at 16 connections (req/s, p50, p99, and the server's CPU time per
request from /proc) and at one connection (p50: the latency of one request). Endpoints take
turns within each round; the median of the rounds is shown, with ratios to hello-world from
the same run, then the current goals as PASS/FAIL lines (informational: the exit status is
non-zero only when requests failed). docs/benchmarks.md ("Serving") explains it.

With ``--baseline REF`` the LR rows "recording off (SQLite)" and "recording on, PostgreSQL",
without metrics or the request log (which REF may not have), are also served by the code of
commit REF, checked out into a temporary ``git worktree``
(removed at the end): its gunicorn config, worker and app, first on the server's sys.path,
in the same virtualenv, each on a fresh database that REF's own code migrated and set up.
The two sides alternate within each round (5 rounds by default), and a second table and
two more PASS/FAIL lines compare the server's CPU per request with REF's.

    .venv/bin/python bench/serving.py [--quick] [--duration 5] [--single-duration 3]
        [--runs 3] [--warmup 2] [--connections 16] [--postgres URL | --no-postgres]
        [--generator auto|wrk|python] [--baseline REF]

The models are trained here from scikit-learn's bundled iris data and registered through the
registry service into fresh databases in a temporary folder: a SQLite file, and a new
database ``modelport_bench_<random>`` on the PostgreSQL server of ``--postgres``, else
$MODELPORT_BENCH_POSTGRES_URL, else $MODELPORT_TEST_POSTGRES_URL, else
postgresql+psycopg://postgres@127.0.0.1:5432/test (dropped at the end; PostgreSQL is skipped
with a message when it cannot be reached or the role may not create databases).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(BENCH_DIR))

import app_cpu  # noqa: E402
from deployment import (  # noqa: E402
    GUNICORN_CONFIG,
    USER_LIMIT,
    WORKERS,
    create_bench_token,
    modelport_env,
)
from load import LoadResult, generator_for, run_load  # noqa: E402
from machine import describe, load_average  # noqa: E402
from server import gunicorn  # noqa: E402
from serving_apps import (  # noqa: E402
    ARTIFACTS_VARIABLE,
    DURABLE_VARIABLE,
    SOURCE_FILE_VARIABLE,
    SOURCE_ROOT_VARIABLE,
)

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
BODY = {"inputs": IRIS_ROW}
# name in the registry → what it is
MODELS = {
    "iris": "iris, logistic regression",
    "iris-forest": "iris, random forest of 100 trees",
}
# The current goals (issue 3's, raised since): PASS/FAIL lines, informational.
ACCEPTANCE = {
    "off": 0.80,  # recording off, vs hello-world
    "postgres": 0.50,  # durable recording on PostgreSQL, vs hello-world
    "single_ms": 2.0,  # random forest p50 at one connection, SQLite, recording on
    "baseline": 1.05,  # --baseline: server CPU per request, at most this × the baseline's
    "observed": 1.05,  # metrics and the request log on: server CPU per request, at most this ×
    "shadow": 1.05,  # every request shadowed: p50 at one connection, at most this × no shadow
}
# Rows compared with the row listed before them by a goal's line: they take turns first.
COMPARED = {"quiet-iris": "off-iris", "shadow-iris": "sqlite-iris"}
# Metrics and the request log line off: the rows that show what they cost.
QUIET = {"MODELPORT_METRICS": "false", "MODELPORT_REQUEST_LOG": "false"}
# --baseline REF: the rows served by REF's code too, next to this checkout's.
BASELINE_ROWS = {
    "quiet-iris": ("ref-off", "recording off"),
    "postgres-quiet-iris": ("ref-postgres", "durable on PostgreSQL"),
}


@dataclass
class Endpoint:
    """One row of the table: a server and the request sent to it."""

    key: str
    label: str
    server: str
    path: str
    method: str = "POST"
    body: dict | None = None
    modelport: bool = False
    record: bool = False
    runs: list[LoadResult] = field(default_factory=list)
    single: list[LoadResult] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # server CPU per request, 16 connections
    runtime: str = ""
    baseline_of: str | None = None  # --baseline: the key of this checkout's row it mirrors
    # A row compared with the row listed just before it (a PASS/FAIL line of its own):
    # the two take turns going first (``round_order``).
    compared_with: str | None = None

    def median(self, field_name: str, runs: list[LoadResult] | None = None) -> float:
        return statistics.median(getattr(run, field_name) for run in (runs or self.runs))

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs + self.single)


# ---- models and databases -------------------------------------------------------------------


def train_models(folder: Path) -> tuple[dict[str, Path], Any]:
    """Fit the two iris models, write them as skops files; return the paths and the features."""
    import skops.io
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from modelport.serving.demo import demo_dataset

    features, target = demo_dataset("iris")
    estimators = {
        "iris": LogisticRegression(max_iter=1000),
        "iris-forest": RandomForestClassifier(n_estimators=100, random_state=0),
    }
    paths = {}
    for name, estimator in estimators.items():
        estimator.fit(features, target)
        path = folder / f"{name}.skops"
        path.write_bytes(skops.io.dumps(estimator, compression=zipfile.ZIP_DEFLATED))
        paths[name] = path
    return paths, features


def clean_environ() -> None:
    """Forget MODELPORT_* settings of the calling shell: every server gets only ours."""
    from modelport.config import SETTINGS

    for setting in SETTINGS:
        os.environ.pop(f"MODELPORT_{setting.name}", None)
    os.environ.pop("MODELPORT_WORKER_GROUP", None)  # read by the worker class itself


def prepare_database(
    env: dict[str, str], artifacts: dict[str, Path], features: Any, *, shadow: bool = False
) -> str:
    """Migrate a fresh database, register both models (alias champion), create a user with a
    predict token; return the token. ``shadow``: the random forest is also version 2 of
    ``iris``, its ``shadow`` alias, with a shadow share of 100 %."""
    from flask_migrate import upgrade

    from modelport import create_app
    from modelport.extensions import db
    from modelport.serving import registry

    overrides = {key.removeprefix("MODELPORT_"): value for key, value in env.items()}
    # Quiet set-up: the security log would print the token's creation in the middle of the run.
    app = create_app({**overrides, "LOG_LEVEL": "WARNING"})
    with app.app_context():
        upgrade()
        for name, path in artifacts.items():
            model = registry.create_model(
                name, title=MODELS[name], description=MODELS[name], task="classification"
            )
            registry.register_version(
                model, path, filename=path.name, sample=features, aliases=("champion",)
            )
        if shadow:
            model = registry.get_model("iris")
            forest = artifacts["iris-forest"]
            registry.register_version(
                model, forest, filename=forest.name, sample=features, aliases=("shadow",)
            )
            registry.set_shares(model, shadow=1.0)
        plaintext = create_bench_token()
        db.session.remove()
        db.engine.dispose()
    return plaintext


def postgres_server_url(args: argparse.Namespace) -> str:
    """The PostgreSQL server to create the benchmark's database on."""
    return (
        args.postgres
        or os.environ.get("MODELPORT_BENCH_POSTGRES_URL")
        or os.environ.get("MODELPORT_TEST_POSTGRES_URL")
        or DEFAULT_POSTGRES_URL
    )


def create_postgres_database(server_url: str) -> tuple[str, str, Callable[[], None]]:
    """A new, empty database on the server: its URL, the server version, and a drop function."""
    from sqlalchemy import create_engine, make_url, text

    name = f"modelport_bench_{secrets.token_hex(4)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            version = connection.execute(text("SHOW server_version")).scalar_one()
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()

    def drop() -> None:
        engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()

    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    return url, version, drop


# ---- another commit's code (--baseline) ----------------------------------------------------

REPOSITORY = BENCH_DIR.parent


def git(*arguments: str) -> str:
    """Run git in this checkout; its output, stripped."""
    completed = subprocess.run(
        ["git", "-C", str(REPOSITORY), *arguments], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"git {' '.join(arguments)}: {completed.stderr.strip()}")
    return completed.stdout.strip()


def describe_checkout() -> str:
    """This checkout's commit, short, and whether tracked files differ from it."""
    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{head}+changes" if dirty else head


@contextmanager
def baseline_tree(ref: str, folder: Path) -> Iterator[tuple[Path, str]]:
    """``ref`` checked out into a temporary detached worktree under ``folder``: its path and
    short hash. The worktree is removed again at the end, also on Ctrl-C."""
    commit = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    short = git("rev-parse", "--short", commit)
    tree = folder / f"baseline-{short}"
    git("worktree", "add", "--detach", str(tree), commit)
    try:
        yield tree, short
    finally:
        try:
            git("worktree", "remove", "--force", str(tree))
        except RuntimeError as error:
            print(f"could not remove the worktree {tree}: {error}", file=sys.stderr)


def prepare_in(tree: Path, env: dict[str, str], artifacts: dict[str, Path], folder: Path) -> str:
    """``prepare_database`` run by the code of the checkout ``tree``, in a process of its own
    with ``tree`` first on ``sys.path``: that commit's migrations, registry and tokens.
    Returns the token."""
    spec = folder / "prepare.json"
    token_file = folder / "token.txt"
    spec.write_text(
        json.dumps(
            {
                "env": env,
                "artifacts": {name: str(path) for name, path in artifacts.items()},
                "root": str(tree),
                "token_file": str(token_file),
            }
        )
    )
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--prepare", str(spec)],
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tree,
        check=True,
    )
    return token_file.read_text()


def prepare_from_spec(spec_path: str) -> int:
    """The other end of ``prepare_in``: set up one database with the code imported here."""
    import modelport
    from modelport.serving.demo import demo_dataset

    spec = json.loads(Path(spec_path).read_text())
    source = Path(modelport.__file__).resolve()
    if not source.is_relative_to(Path(spec["root"]).resolve()):
        print(f"modelport came from {source}, not from {spec['root']}", file=sys.stderr)
        return 1
    features, _target = demo_dataset("iris")
    artifacts = {name: Path(path) for name, path in spec["artifacts"].items()}
    token = prepare_database(spec["env"], artifacts, features)
    Path(spec["token_file"]).write_text(token)
    return 0


# ---- measuring -----------------------------------------------------------------------------


def server_cpu_seconds(base_url: str) -> float | None:
    """User + system CPU seconds used so far by the gunicorn serving ``base_url`` (master and
    workers, whose command lines all name the address), or None where /proc is missing."""
    bind = base_url.removeprefix("http://")
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # NUL-terminated: port 8000 must not match 80001, nor wrk's http://…:8000/path.
            if bind.encode() + b"\0" not in (entry / "cmdline").read_bytes():
                continue
            # Fields after the command name in parentheses: utime and stime are 12th and 13th.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while being read
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def request_json(
    url: str, method: str, body: dict | None, headers: dict[str, str]
) -> tuple[int, dict]:
    """One request (urllib), its status and JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - an http URL on loopback
        url, data=data, method=method, headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def check_endpoint(endpoint: Endpoint, base: str, headers: dict[str, str]) -> None:
    """One request before any load: an endpoint that fails must not be timed."""
    status, answer = request_json(base + endpoint.path, endpoint.method, endpoint.body, headers)
    if status != 200:
        raise RuntimeError(f"{endpoint.label} answered {status}: {answer}")
    if endpoint.modelport:
        endpoint.runtime = answer["model"]["runtime"]
        recorded = answer.get("record_id") is not None
        if recorded != endpoint.record:
            raise RuntimeError(f"{endpoint.label}: record_id is {answer.get('record_id')!r}")
    elif endpoint.server == "minimal":
        endpoint.runtime = "sklearn"


def build_endpoints(postgres: bool, baseline: str | None = None) -> list[Endpoint]:
    """The table's rows, in order; with ``baseline`` (a short commit hash), each row of
    ``BASELINE_ROWS`` is measured, followed by the same row served by that commit's code."""
    rows = [Endpoint("hello", "Flask hello-world", "hello", "/hello", method="GET")]
    if postgres:
        rows.append(
            Endpoint(
                "durable",
                "Minimal Flask: one durable INSERT, PostgreSQL",
                "durable",
                "/record",
                body=BODY,
            )
        )
    for name in MODELS:
        short = "LR" if name == "iris" else "RF"
        rows.append(
            Endpoint(
                f"minimal-{name}",
                f"{short}: minimal Flask predict",
                "minimal",
                f"/predict/{name}",
                body=BODY,
            )
        )
        setups = [("off", "recording off (SQLite)", False)]
        if name == "iris":
            setups.append(("quiet", "recording off, no metrics or request log (SQLite)", False))
        setups.append(("sqlite", "recording on, SQLite", True))
        if name == "iris":
            # Every request also run on a shadow version (the random forest) after its answer.
            setups.append(("shadow", "recording on, SQLite, shadow 100 % (RF)", True))
        if postgres:
            setups.append(("postgres", "recording on, PostgreSQL", True))
            if name == "iris" and baseline:
                setups.append(
                    ("postgres-quiet", "recording on, PostgreSQL, no metrics or request log", True)
                )
            if name == "iris":
                # What the product's worker gains by answering waiting predictions as a group.
                setups.append(
                    ("postgres-one", "recording on, PostgreSQL, MODELPORT_WORKER_GROUP=1", True)
                )
        for server, words, record in setups:
            rows.append(
                Endpoint(
                    f"{server}-{name}",
                    f"{short}: Modelport, {words}",
                    server,
                    f"/api/v1/models/{name}/predict",
                    body=BODY,
                    modelport=True,
                    record=record,
                    compared_with=COMPARED.get(f"{server}-{name}"),
                )
            )
            if baseline and rows[-1].key in BASELINE_ROWS:
                rows.append(
                    Endpoint(
                        f"ref-{server}-{name}",
                        f"{short}: Modelport at {baseline}, {words}",
                        BASELINE_ROWS[rows[-1].key][0],
                        f"/api/v1/models/{name}/predict",
                        body=BODY,
                        modelport=True,
                        record=record,
                        baseline_of=rows[-1].key,
                    )
                )
    return rows


def round_order(endpoints: list[Endpoint], round_number: int) -> list[Endpoint]:
    """The order of one round: as listed, except that in every second round each run of
    rows compared with one another (a baseline row and the row it mirrors, a row and the one
    it is ``compared_with``) goes in reverse, so that none of them is always measured first.
    What a row leaves behind (a database's background writes after the durable rows, say)
    then weighs on each side of a comparison alike."""
    if round_number % 2:
        return list(endpoints)
    order: list[Endpoint] = []
    run: list[Endpoint] = []
    for endpoint in endpoints:
        partner = endpoint.baseline_of or endpoint.compared_with
        if run and partner in {row.key for row in run}:
            run.append(endpoint)
            continue
        order.extend(reversed(run))
        run = [endpoint]
    order.extend(reversed(run))
    return order


def measure(
    endpoints: list[Endpoint],
    bases: dict[str, str],
    headers: Callable[[Endpoint], dict[str, str]],
    args: argparse.Namespace,
    generator: str,
    *,
    order: Callable[[list[Endpoint], int], list[Endpoint]] | None = None,
    probe: Callable[[Endpoint], Callable[[LoadResult], None] | None] | None = None,
) -> None:
    """Warm every endpoint up, then measure each in turn, ``args.runs`` rounds.

    ``headers`` gives each endpoint's extra request headers. ``order`` gives the order of
    each round (``round_order`` unless given). ``probe``, when given, is called just before
    each measurement at ``args.connections`` connections and may return a function that
    is called with its result just after it (bench/group_commit.py reads the database's
    figures so).
    """

    def load(endpoint: Endpoint, duration: float, connections: int) -> LoadResult:
        return run_load(
            bases[endpoint.server] + endpoint.path,
            duration=duration,
            connections=connections,
            method=endpoint.method,
            body=endpoint.body,
            generator=generator,
            headers=headers(endpoint) or None,
        )

    for endpoint in endpoints:
        load(endpoint, args.warmup, args.connections)
    for round_number in range(1, args.runs + 1):
        for endpoint in (order or round_order)(endpoints, round_number):
            # CPU per request is what req/s hides on a machine that does other work too: a
            # process preempted by something else uses no CPU while it waits.
            cpu_before = server_cpu_seconds(bases[endpoint.server])
            after = probe(endpoint) if probe else None
            many = load(endpoint, args.duration, args.connections)
            cpu_after = server_cpu_seconds(bases[endpoint.server])
            if after is not None:
                after(many)
            if cpu_before is not None and cpu_after is not None and many.requests:
                endpoint.cpu_ms.append((cpu_after - cpu_before) / many.requests * 1000)
            one = load(endpoint, args.single_duration, 1)
            endpoint.runs.append(many)
            endpoint.single.append(one)
            print(
                f"  round {round_number}  {endpoint.label:<42} {many.requests_per_second:7.0f} "
                f"req/s  p50 {many.p50_ms:5.1f} ms  p99 {many.p99_ms:5.1f} ms  "
                f"1 conn p50 {one.p50_ms:5.2f} ms"
                + (f"  ERRORS {many.errors + one.errors}" if many.errors + one.errors else ""),
                file=sys.stderr,
                flush=True,
            )


# ---- report --------------------------------------------------------------------------------


def table(endpoints: list[Endpoint]) -> str:
    """The results as Markdown, ratios against hello-world of the same run."""
    hello = endpoints[0].median("requests_per_second")
    lines = [
        "| endpoint | runtime | req/s (median) | req/s range | p50 ms | p99 ms | × hello-world "
        "| p50 ms, 1 connection | server CPU ms/request | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for endpoint in endpoints:
        rate = endpoint.median("requests_per_second")
        rates = [run.requests_per_second for run in endpoint.runs]
        lines.append(
            f"| {endpoint.label} | {endpoint.runtime or '–'} | {rate:,.0f} "
            f"| {min(rates):,.0f}–{max(rates):,.0f} | {endpoint.median('p50_ms'):.1f} "
            f"| {endpoint.median('p99_ms'):.1f} | {rate / hello:.2f}× "
            f"| {endpoint.median('p50_ms', endpoint.single):.2f} "
            f"| {f'{statistics.median(endpoint.cpu_ms):.2f}' if endpoint.cpu_ms else '–'} "
            f"| {endpoint.errors} |"
        )
    return "\n".join(lines)


def baseline_table(endpoints: list[Endpoint], head: str, ref: str) -> str:
    """--baseline: server CPU per request of this checkout's rows against the baseline's."""
    by_key = {endpoint.key: endpoint for endpoint in endpoints}
    lines = [
        f"| LR predict, hot path | server CPU ms/request, {head} (median, range) "
        f"| server CPU ms/request, {ref} (median, range) | {head} / {ref} "
        f"| per round | req/s, {head} | req/s, {ref} |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for endpoint in endpoints:
        if not endpoint.baseline_of:
            continue
        ours = by_key[endpoint.baseline_of]
        if not (ours.cpu_ms and endpoint.cpu_ms):
            continue
        rounds = [a / b for a, b in zip(ours.cpu_ms, endpoint.cpu_ms, strict=True)]
        lines.append(
            f"| {BASELINE_ROWS[ours.key][1]} "
            f"| {statistics.median(ours.cpu_ms):.3f} ({min(ours.cpu_ms):.3f}–{max(ours.cpu_ms):.3f}) "
            f"| {statistics.median(endpoint.cpu_ms):.3f} "
            f"({min(endpoint.cpu_ms):.3f}–{max(endpoint.cpu_ms):.3f}) "
            f"| {baseline_ratio(ours, endpoint):.3f}× | {min(rounds):.2f}–{max(rounds):.2f}× "
            f"| {ours.median('requests_per_second'):,.0f} "
            f"| {endpoint.median('requests_per_second'):,.0f} |"
        )
    return "\n".join(lines)


def baseline_ratio(ours: Endpoint, theirs: Endpoint) -> float:
    """This checkout's median server CPU per request over the baseline's."""
    return statistics.median(ours.cpu_ms) / statistics.median(theirs.cpu_ms)


def acceptance(endpoints: list[Endpoint], ref: str | None = None) -> list[str]:
    """The current goals as PASS/FAIL lines (SKIP when a row was not measured)."""
    by_key = {endpoint.key: endpoint for endpoint in endpoints}
    hello = by_key["hello"].median("requests_per_second")

    def ratio_line(key: str, minimum: float, words: str) -> str:
        endpoint = by_key.get(key)
        if endpoint is None:
            return f"SKIP  {words} ≥ {minimum:.2f}× hello-world: not measured"
        ratio = endpoint.median("requests_per_second") / hello
        verdict = "PASS" if ratio >= minimum else "FAIL"
        return f"{verdict}  {words} ≥ {minimum:.2f}× hello-world: {ratio:.2f}×"

    lines = [
        ratio_line("off-iris", ACCEPTANCE["off"], "LR predict, recording off,"),
        ratio_line(
            "postgres-iris", ACCEPTANCE["postgres"], "LR predict, durable recording on PostgreSQL,"
        ),
    ]
    if "durable" in by_key:
        floor = by_key["durable"].median("requests_per_second") / hello
        lines[-1] += f" (one durable INSERT and nothing else: {floor:.2f}×)"
    forest = by_key["sqlite-iris-forest"]
    p50 = forest.median("p50_ms", forest.single)
    verdict = "PASS" if p50 <= ACCEPTANCE["single_ms"] else "FAIL"
    lines.append(
        f"{verdict}  RF p50 at 1 connection (SQLite, recording on) ≤ "
        f"{ACCEPTANCE['single_ms']:g} ms: {p50:.2f} ms (runtime {forest.runtime})"
    )
    limit = ACCEPTANCE["observed"]
    name = f"hot path CPU per request, metrics and request log on, ≤ {limit:.2f}× off"
    on, off = by_key.get("off-iris"), by_key.get("quiet-iris")
    if on is None or off is None or not (on.cpu_ms and off.cpu_ms):
        lines.append(f"SKIP  {name}: not measured")
    else:
        ratio = baseline_ratio(on, off)
        verdict = "PASS" if ratio <= limit else "FAIL"
        lines.append(
            f"{verdict}  {name}: {ratio:.3f}× ({statistics.median(on.cpu_ms):.3f} against "
            f"{statistics.median(off.cpu_ms):.3f} ms, recording off, {len(on.cpu_ms)} rounds)"
        )
    if ref is None:
        return lines
    limit = ACCEPTANCE["baseline"]
    for key, (_server, words) in BASELINE_ROWS.items():
        name = f"hot path CPU per request, {words}, ≤ {limit:.2f}× {ref}"
        theirs = by_key.get(f"ref-{key}")
        ours = by_key.get(key)
        if theirs is None or ours is None or not (ours.cpu_ms and theirs.cpu_ms):
            lines.append(f"SKIP  {name}: not measured")
            continue
        ratio = baseline_ratio(ours, theirs)
        verdict = "PASS" if ratio <= limit else "FAIL"
        lines.append(
            f"{verdict}  {name}: {ratio:.3f}× ({statistics.median(ours.cpu_ms):.3f} against "
            f"{statistics.median(theirs.cpu_ms):.3f} ms)"
        )
    return lines


def shadow_records(path: Path, settle: float = 30.0) -> dict[str, int]:
    """The shadow server's records once its workers' queues are done: requests answered
    (primary records), their shadow runs' records, primaries without one, and primaries
    with more than one. Read while the server still runs: a queued run is lost with its
    worker."""

    def count() -> dict[str, int]:
        with sqlite3.connect(path) as connection:
            one = connection.execute
            return {
                "primary": one(
                    "SELECT count(*) FROM predictions WHERE shadow_of IS NULL"
                ).fetchone()[0],
                "shadow": one(
                    "SELECT count(*) FROM predictions WHERE shadow_of IS NOT NULL"
                ).fetchone()[0],
                "without": one(
                    "SELECT count(*) FROM predictions p WHERE p.shadow_of IS NULL AND NOT EXISTS "
                    "(SELECT 1 FROM predictions s WHERE s.shadow_of = p.id)"
                ).fetchone()[0],
                "twice": one(
                    "SELECT count(*) FROM (SELECT shadow_of FROM predictions WHERE shadow_of IS "
                    "NOT NULL GROUP BY shadow_of HAVING count(*) > 1)"
                ).fetchone()[0],
            }

    deadline = time.monotonic() + settle
    last = count()
    while time.monotonic() < deadline and last["without"]:
        time.sleep(1)
        now = count()
        if now == last:
            break  # nothing moved in a second: what is missing was dropped
        last = now
    return last


def shadow_lines(
    endpoints: list[Endpoint], counts: dict[str, int] | None, connections: int
) -> list[str]:
    """Issue 13's shadow goals: the answer's p50 at one connection with every request also
    run on a shadow, against the same server without one; the cost at 16 connections; each
    request's shadow record, one to one."""
    by_key = {endpoint.key: endpoint for endpoint in endpoints}
    on, off = by_key.get("shadow-iris"), by_key.get("sqlite-iris")
    name = f"shadow 100 %: p50 at 1 connection ≤ {ACCEPTANCE['shadow']:.2f}× shadowing off"
    if on is None or off is None or counts is None:
        return [f"SKIP  {name}: not measured"]
    p50_on, p50_off = on.median("p50_ms", on.single), off.median("p50_ms", off.single)
    ratio = p50_on / p50_off
    verdict = "PASS" if ratio <= ACCEPTANCE["shadow"] else "FAIL"
    throughput = on.median("requests_per_second") / off.median("requests_per_second")
    cpu = baseline_ratio(on, off) if on.cpu_ms and off.cpu_ms else float("nan")
    matched = counts["primary"] - counts["without"]
    one_to_one = counts["without"] == 0 and counts["twice"] == 0
    return [
        f"{verdict}  {name} (LR, recording on, SQLite): {ratio:.3f}× ({p50_on:.2f} against "
        f"{p50_off:.2f} ms)",
        f"INFO  shadow 100 %: throughput at {connections} connections "
        f"{throughput:.2f}× shadowing off, server CPU per request {cpu:.2f}× (the shadow's "
        "run is done by the worker, after the answer)",
        f"{'PASS' if one_to_one else 'FAIL'}  shadow records one to one: {counts['primary']} "
        f"requests recorded, {counts['shadow']} shadow records, {matched} requests with "
        f"theirs, {counts['without']} without, {counts['twice']} with more than one",
    ]


def app_line(sides: list[app_cpu.Side]) -> str:
    """The in-process comparison as a PASS/FAIL line, with the same limit as the server's."""
    limit = ACCEPTANCE["baseline"]
    ratio = app_cpu.ratio(sides)
    verdict = "PASS" if ratio <= limit else "FAIL"
    head, ref = sides
    return (
        f"{verdict}  application CPU per hot-path request in process, recording off, "
        f"≤ {limit:.2f}× {ref.label}: {ratio:.3f}× ({statistics.median(head.cpu_ms):.3f} "
        f"against {statistics.median(ref.cpu_ms):.3f} ms)"
    )


def machine(postgres: str | None, load: str) -> list[str]:
    """Lines describing the machine and software the numbers came from."""
    libraries = (
        "flask",
        "gunicorn",
        "scikit-learn",
        "onnxruntime",
        "skl2onnx",
        "sqlalchemy",
        "psycopg",
        "flask-limiter",
        "flask-smorest",
    )
    return [
        *describe(load, libraries, cpu_note="(shared by the servers, the databases and wrk)"),
        f"- SQLite {sqlite3.sqlite_version}"
        + (f"; PostgreSQL {postgres} on the same machine over TCP 127.0.0.1" if postgres else ""),
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, ~1 min")
    parser.add_argument("--duration", type=int, default=None, help="seconds per measurement (5)")
    parser.add_argument(
        "--single-duration", type=int, default=None, help="seconds at one connection (3)"
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="rounds; medians shown (3; 5 with --baseline)"
    )
    parser.add_argument("--warmup", type=int, default=None, help="warm-up seconds (2)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--postgres", default=None, help="PostgreSQL server URL (SQLAlchemy)")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL rows")
    parser.add_argument("--generator", default="auto", choices=("auto", "wrk", "python"))
    parser.add_argument(
        "--baseline",
        metavar="REF",
        default=None,
        help="also serve the LR rows 'recording off' and 'recording on, PostgreSQL' with the "
        "code of this commit (a temporary git worktree), and compare server CPU per request",
    )
    parser.add_argument(
        "--app-rounds",
        type=int,
        default=20,
        help="--baseline: interleaved rounds of the in-process comparison (bench/app_cpu.py)",
    )
    parser.add_argument(
        "--app-calls", type=int, default=1000, help="predictions per in-process round (1000)"
    )
    # Internal: the set-up of a database by another checkout's code (prepare_in).
    parser.add_argument("--prepare", metavar="SPEC", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = (
        {"duration": 2, "single_duration": 1, "runs": 1, "warmup": 1}
        if args.quick
        else {
            "duration": 5,
            "single_duration": 3,
            "runs": 5 if args.baseline else 3,
            "warmup": 2,
        }
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if min(args.duration, args.single_duration, args.warmup, args.runs, args.connections) < 1:
        parser.error("durations, --runs and --connections must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare:
        return prepare_from_spec(args.prepare)
    # SIGTERM unwinds like Ctrl-C, so every gunicorn is stopped and the database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = generator_for(args.generator, args.connections, args.duration, args.single_duration)
    if chosen is None:
        return 2
    generator, generator_label = chosen
    started = time.monotonic()
    load_before = load_average()
    clean_environ()
    secret = secrets.token_urlsafe(48)
    notes: list[str] = []
    head = ref = None
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mp-serving-")))
        if args.baseline:
            head = describe_checkout()
            try:
                ref_tree, ref = stack.enter_context(baseline_tree(args.baseline, workdir))
            except RuntimeError as error:
                print(f"--baseline {args.baseline}: {error}", file=sys.stderr)
                return 2
            notes.append(
                f"Baseline: rows 'Modelport at {ref}' run the code of commit {ref} (a temporary "
                f"git worktree, first on the server's sys.path, its own gunicorn config and "
                f"migrations, the same virtualenv); the other Modelport rows run this "
                f"checkout, {head}"
            )
        print("training the models and preparing the databases", file=sys.stderr, flush=True)
        artifacts, features = train_models(workdir)
        sqlite_url = f"sqlite:///{workdir / 'bench.db'}"
        envs = {
            "off": modelport_env(sqlite_url, workdir, record=False, secret=secret),
            "sqlite": modelport_env(sqlite_url, workdir, record=True, secret=secret),
        }
        envs["quiet"] = envs["off"] | QUIET
        token = prepare_database(envs["sqlite"], artifacts, features)
        # The databases with a user and token of their own: server → token.
        tokens: dict[str, str] = {}
        # A database of its own: the shadow share is the model's, and the records are counted.
        shadow_url = f"sqlite:///{workdir / 'shadow.db'}"
        envs["shadow"] = modelport_env(shadow_url, workdir, record=True, secret=secret)
        tokens["shadow"] = prepare_database(envs["shadow"], artifacts, features, shadow=True)
        # Where the Modelport servers of another checkout run from: server → tree.
        trees: dict[str, Path] = {}
        if ref:
            refdir = workdir / "baseline"
            refdir.mkdir()
            env = modelport_env(
                f"sqlite:///{refdir / 'bench.db'}", refdir, record=False, secret=secret
            )
            envs["ref-off"] = env
            tokens["ref-off"] = prepare_in(ref_tree, env, artifacts, refdir)
            trees["ref-off"] = ref_tree
        pg_version = None
        if args.no_postgres:
            notes.append("PostgreSQL rows skipped (--no-postgres)")
        else:
            server_url = postgres_server_url(args)
            try:
                pg_url, pg_version, drop = create_postgres_database(server_url)
            except Exception as error:  # noqa: BLE001 - any failure means "not reachable"
                from sqlalchemy import make_url

                reason = str(getattr(error, "orig", None) or error).splitlines()[0]
                notes.append(
                    f"PostgreSQL rows skipped: cannot create a database on "
                    f"{make_url(server_url)}: {reason}"
                )
                print(notes[-1], file=sys.stderr)
            else:
                stack.callback(drop)
                envs["postgres"] = modelport_env(pg_url, workdir, record=True, secret=secret)
                tokens["postgres"] = prepare_database(envs["postgres"], artifacts, features)
                envs["postgres-one"] = envs["postgres"] | {"MODELPORT_WORKER_GROUP": "1"}
                tokens["postgres-one"] = tokens["postgres"]
                if ref:
                    envs["postgres-quiet"] = envs["postgres"] | QUIET
                    tokens["postgres-quiet"] = tokens["postgres"]
                if ref:
                    ref_url, _version, ref_drop = create_postgres_database(server_url)
                    stack.callback(ref_drop)
                    env = modelport_env(ref_url, refdir, record=True, secret=secret)
                    envs["ref-postgres"] = env
                    tokens["ref-postgres"] = prepare_in(ref_tree, env, artifacts, refdir)
                    trees["ref-postgres"] = ref_tree
        endpoints = build_endpoints("postgres" in envs, ref)

        print(f"starting the servers ({generator_label})", file=sys.stderr, flush=True)
        bases = {}
        apps = {
            "hello": ("serving_apps:hello_app()", {}, "/health"),
            "minimal": (
                "serving_apps:predict_app()",
                {ARTIFACTS_VARIABLE: ";".join(f"{n}={p}" for n, p in artifacts.items())},
                "/health",
            ),
            **{
                name: ("serving_apps:modelport_app()", env, "/healthz")
                for name, env in envs.items()
            },
        }
        if "postgres" in envs:
            libpq_url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
            apps["durable"] = (
                "serving_apps:durable_app()",
                {DURABLE_VARIABLE: libpq_url},
                "/health",
            )
        sources: dict[str, Path] = {}
        for name, (spec, env, ready) in apps.items():
            tree = trees.get(name)
            if spec == "serving_apps:modelport_app()":
                # Which checkout's modelport each server imported, checked by the server.
                sources[name] = workdir / f"source-{name}.txt"
                env = env | {SOURCE_FILE_VARIABLE: str(sources[name])}
                if ref:
                    root = tree or REPOSITORY
                    env = env | {"PYTHONPATH": str(root), SOURCE_ROOT_VARIABLE: str(root)}
            bases[name] = stack.enter_context(
                gunicorn(
                    spec,
                    env={"MODELPORT_ACCESS_LOG": "false", **env},
                    log_path=workdir / f"gunicorn-{name}.log",
                    workers=WORKERS,
                    ready_path=ready,
                    config=GUNICORN_CONFIG,
                    startup_timeout=60,
                    cwd=tree,
                )
            )
        if ref:
            for name, path in sources.items():
                print(f"  {name}: modelport from {path.read_text()}", file=sys.stderr)

        def headers(endpoint: Endpoint) -> dict[str, str]:
            if not endpoint.modelport:
                return {}
            return {"Authorization": f"Bearer {tokens.get(endpoint.server, token)}"}

        for endpoint in endpoints:
            check_endpoint(endpoint, bases[endpoint.server], headers(endpoint))
        try:
            measure(endpoints, bases, headers, args, generator)
            counts = shadow_records(workdir / "shadow.db")
            if ref:
                print("the application alone, in process (bench/app_cpu.py)", file=sys.stderr)
                sides = [
                    app_cpu.Side(head, REPOSITORY, envs["quiet"], token),
                    app_cpu.Side(ref, ref_tree, envs["ref-off"], tokens["ref-off"]),
                ]
                app_cpu.compare(sides, BODY, args.app_rounds, args.app_calls)
        except KeyboardInterrupt:
            print("interrupted: servers stopped, databases dropped", file=sys.stderr)
            return 130

    command = "python bench/serving.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = [
        "## Serving",
        "",
        *machine(pg_version, load_before),
        f"- Servers: gunicorn with `modelport/ops/gunicorn_conf.py`, {WORKERS} workers of its "
        "class (`modelport.ops.worker.GroupWorker`, MODELPORT_WORKER_GROUP 8 unless the row "
        "says otherwise), gunicorn's access log off, 127.0.0.1; Modelport with "
        "MODELPORT_ENV=production, metrics and the request log line (to the server's log "
        "file) on unless the row says otherwise, "
        f"a Bearer token (scope predict), PREDICT_LIMIT_USER={USER_LIMIT!r}",
        f"- Load: {generator_label}; {args.warmup} s warm-up per endpoint, {args.runs} "
        "interleaved rounds, medians shown; body: one iris row as JSON",
        f"- Command: `{command.strip()}` (took {time.monotonic() - started:.0f} s)",
        *(f"- {note}" for note in notes),
        "",
        table(endpoints),
        "",
        *([baseline_table(endpoints, head, ref), ""] if ref else []),
        *([app_cpu.table(sides, args.app_rounds, args.app_calls), ""] if ref else []),
        *acceptance(endpoints, ref),
        *shadow_lines(endpoints, counts, args.connections),
        *([app_line(sides)] if ref else []),
        "",
    ]
    text_out = "\n".join(report)
    print(text_out)
    RESULTS_DIR.mkdir(exist_ok=True)
    saved = RESULTS_DIR / f"serving-{datetime.now().strftime('%Y%m%d-%H%M%S')}.md"
    saved.write_text(text_out)
    print(f"saved to {saved.relative_to(BENCH_DIR.parent)}", file=sys.stderr)
    if any(endpoint.errors for endpoint in endpoints):
        print("some requests failed: see the errors column", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
