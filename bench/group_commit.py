"""Durable records on PostgreSQL: the product's group commit against its alternatives.

The measurements behind docs/adr/0001-group-commit.md. One command, one run, PostgreSQL,
every answer waiting for its own record to be durable (``synchronous_commit`` as the
server has it), loopback, wrk; the rows take turns within each round:

1. bare Flask hello-world: the ceiling of Flask + gunicorn on the machine, the ratios' base;
2. Modelport's ``POST /api/v1/models/iris/predict`` (the logistic regression, recording on,
   a Bearer token): as shipped (the product's gunicorn config, 2 workers of
   ``modelport.ops.worker.GroupWorker``, groups of up to 8), and with
   ``MODELPORT_WORKER_GROUP=1`` (each answer waits for a commit of its own, as on gunicorn's
   sync worker) at 2, 4 and 8 workers; and on gunicorn's ``gthread`` worker (2 × threads),
   each request thread committing its own record;
3. bare Flask inserting one row into Modelport's ``predictions`` table per request
   (bench/serving_apps.py), committed four ways: one commit per request on gunicorn's sync
   worker; one per request on ``gthread`` (each thread its own connection); group commit
   across threads on ``gthread``, a writer thread per process committing whatever has
   queued as one transaction while each request waits for its own record (``writer_app``);
   and grouped by the product's worker, as Modelport's records are (``grouped_app``).

Each row is measured at 16 connections (req/s, p50, p99, the server's CPU time per request,
the CPU time of the PostgreSQL backends serving its database per request, and records per
commit, from the rows' ``xmin``) and at one connection (p50). Each server has a database of
its own on the PostgreSQL server of ``--postgres``, else $MODELPORT_BENCH_POSTGRES_URL, else
$MODELPORT_TEST_POSTGRES_URL, else postgresql+psycopg://postgres@127.0.0.1:5432/test, all
dropped at the end. The order of the rows is reversed in every second round.

    .venv/bin/python bench/group_commit.py [--quick] [--duration 5] [--single-duration 3]
        [--runs 5] [--warmup 2] [--connections 16] [--threads 8] [--postgres URL]
        [--generator auto|wrk|python]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from load import LoadResult, generator_for  # noqa: E402
from machine import load_average  # noqa: E402
from server import gunicorn  # noqa: E402
from serving import (  # noqa: E402
    BODY,
    GUNICORN_CONFIG,
    RESULTS_DIR,
    Endpoint,
    check_endpoint,
    clean_environ,
    create_postgres_database,
    machine,
    measure,
    modelport_env,
    postgres_server_url,
    prepare_database,
    train_models,
)
from serving_apps import DURABLE_VARIABLE  # noqa: E402

PREDICT_PATH = "/api/v1/models/iris/predict"


@dataclass
class Row:
    """One server, and what the table shows about it besides the Endpoint's figures."""

    key: str
    label: str
    app: str  # gunicorn app spec, importable from bench/
    workers: int = 2
    options: tuple[str, ...] = ()  # more gunicorn options (worker class, threads)
    env: dict[str, str] = field(default_factory=dict)
    modelport: bool = False
    database: bool = True  # a PostgreSQL database of its own
    path: str = "/record"
    # Filled in while measuring, one per round at 16 connections:
    database_cpu_ms: list[float] = field(default_factory=list)
    per_commit: list[float] = field(default_factory=list)
    ended: int = 0  # backends of its database that ended while measured


def build_rows(threads: int) -> list[Row]:
    """The table's rows, in order."""
    gthread = ("--worker-class", "gthread", "--threads", str(threads))
    sync = ("--worker-class", "sync")
    rows = [
        Row(
            "hello", "Flask hello-world", "serving_apps:hello_app()", database=False, path="/hello"
        ),
        Row(
            "shipped",
            "Modelport as shipped: GroupWorker, groups of up to 8",
            "serving_apps:modelport_app()",
            modelport=True,
            path=PREDICT_PATH,
        ),
    ]
    for workers in (2, 4, 8):
        rows.append(
            Row(
                f"one-{workers}",
                "Modelport, MODELPORT_WORKER_GROUP=1 (a commit per answer)",
                "serving_apps:modelport_app()",
                workers=workers,
                env={"MODELPORT_WORKER_GROUP": "1"},
                modelport=True,
                path=PREDICT_PATH,
            )
        )
    rows += [
        Row(
            "modelport-gthread",
            "Modelport on gthread, a commit per request thread",
            "serving_apps:modelport_app()",
            options=gthread,
            # A pooled connection for every thread: no connection opened per request.
            env={"MODELPORT_DB_POOL_SIZE": str(threads)},
            modelport=True,
            path=PREDICT_PATH,
        ),
        Row(
            "floor-sync",
            "Bare Flask, one INSERT: a commit per request (sync worker)",
            "serving_apps:durable_app()",
            options=sync,
        ),
        Row(
            "floor-gthread",
            "Bare Flask, one INSERT: a commit per request thread (gthread)",
            "serving_apps:durable_app()",
            options=gthread,
        ),
        Row(
            "writer",
            "Bare Flask, one INSERT: (a) writer thread, group commit across threads (gthread)",
            "serving_apps:writer_app()",
            options=gthread,
        ),
        Row(
            "grouped",
            "Bare Flask, one INSERT: grouped by GroupWorker, groups of up to 8",
            "serving_apps:grouped_app()",
            path=PREDICT_PATH,
        ),
    ]
    return rows


def describe_server(row: Row) -> str:
    """Workers (× threads) and worker class, for the table."""
    options = dict(zip(row.options[::2], row.options[1::2], strict=True))
    kind = options.get("--worker-class", "GroupWorker")
    threads = f" × {options['--threads']} threads" if "--threads" in options else ""
    return f"{row.workers}{threads}, {kind}"


# ---- the database's side -------------------------------------------------------------------


def backend_cpu_seconds(database: str, exclude: int) -> dict[int, float]:
    """User + system CPU seconds used so far by each PostgreSQL backend connected to
    ``database`` (their process titles name it), except the backend ``exclude`` (ours)."""
    ticks = os.sysconf("SC_CLK_TCK")
    marker = f" {database} ".encode()
    used = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == exclude:
            continue
        try:
            title = (entry / "cmdline").read_bytes()
            if not title.startswith(b"postgres: ") or marker not in title:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return used


@dataclass
class Mark:
    """A row's database just before a measurement."""

    last_id: int
    sessions: int
    cpu: dict[int, float] | None  # by backend, when PostgreSQL runs on this machine


class Watcher:
    """One connection to a row's database: the records written and the commits they took,
    and the database's CPU time, around a measurement."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.connection = psycopg.connect(url, autocommit=True)
        self.name = self.connection.info.dbname
        self.pid = self.connection.info.backend_pid
        self.local = Path("/proc").is_dir()

    def sessions(self) -> int:
        """Connections opened to the database so far (as far as statistics have it)."""
        return self.connection.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]

    def start(self) -> Mark:
        last = self.connection.execute("SELECT coalesce(max(id), 0) FROM predictions").fetchone()
        cpu = backend_cpu_seconds(self.name, self.pid) if self.local else None
        return Mark(last[0], self.sessions(), cpu)

    def finish(self, mark: Mark, requests: int, row: Row) -> None:
        if mark.cpu is not None and requests:
            now = backend_cpu_seconds(self.name, self.pid)
            used = sum(seconds - mark.cpu.get(pid, 0.0) for pid, seconds in now.items())
            row.database_cpu_ms.append(used / requests * 1000)
            # Backends that ended meanwhile took their CPU time along: those there before
            # and gone now, and those opened since (the statistics' count) and gone too.
            opened = self.sessions() - mark.sessions
            row.ended += len(mark.cpu.keys() - now.keys())
            row.ended += max(0, opened - len(now.keys() - mark.cpu.keys()))
        records, commits = self.connection.execute(
            "SELECT count(*), count(DISTINCT xmin::text) FROM predictions WHERE id > %s",
            (mark.last_id,),
        ).fetchone()
        if commits:
            row.per_commit.append(records / commits)

    def close(self) -> None:
        self.connection.close()


# ---- report --------------------------------------------------------------------------------


def table(rows: list[Row], endpoints: dict[str, Endpoint]) -> str:
    """The results as Markdown, ratios against hello-world of the same run."""
    hello = endpoints["hello"].median("requests_per_second")
    lines = [
        "| row | workers | req/s (median) | req/s range | p50 ms | p99 ms | × hello-world "
        "| p50 ms, 1 connection | server CPU ms/request | PostgreSQL CPU ms/request "
        "| records per commit | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def median(values: list[float], digits: int) -> str:
        return f"{statistics.median(values):.{digits}f}" if values else "–"

    churned = False

    for row in rows:
        endpoint = endpoints[row.key]
        rate = endpoint.median("requests_per_second")
        rates = [run.requests_per_second for run in endpoint.runs]
        lines.append(
            f"| {row.label} | {describe_server(row)} | {rate:,.0f} "
            f"| {min(rates):,.0f}–{max(rates):,.0f} | {endpoint.median('p50_ms'):.1f} "
            f"| {endpoint.median('p99_ms'):.1f} | {rate / hello:.2f}× "
            f"| {endpoint.median('p50_ms', endpoint.single):.2f} "
            f"| {median(endpoint.cpu_ms, 2)} | {median(row.database_cpu_ms, 2)}"
            f"{' †' if row.ended else ''} | {median(row.per_commit, 1)} | {endpoint.errors} |"
        )
        churned = churned or bool(row.ended)
    if churned:
        lines += [
            "",
            "† Backends serving the row's database ended while it was measured (its server "
            "closed connections): their CPU time went with them, so the figure is too low.",
        ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test")
    parser.add_argument("--duration", type=int, default=None, help="seconds per measurement (5)")
    parser.add_argument(
        "--single-duration", type=int, default=None, help="seconds at one connection (3)"
    )
    parser.add_argument("--runs", type=int, default=None, help="rounds; medians shown (5)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up seconds (2)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--threads", type=int, default=8, help="threads per gthread worker")
    parser.add_argument("--postgres", default=None, help="PostgreSQL server URL (SQLAlchemy)")
    parser.add_argument("--generator", default="auto", choices=("auto", "wrk", "python"))
    args = parser.parse_args(argv)
    defaults = (
        {"duration": 2, "single_duration": 1, "runs": 1, "warmup": 1}
        if args.quick
        else {"duration": 5, "single_duration": 3, "runs": 5, "warmup": 2}
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    numbers = (args.duration, args.single_duration, args.warmup, args.runs, args.connections)
    if min(*numbers, args.threads) < 1:
        parser.error("durations, --runs, --connections and --threads must be at least 1")
    return args


def migrate(env: dict[str, str]) -> None:
    """Modelport's schema in a fresh database, nothing in it (for the bare Flask rows)."""
    from flask_migrate import upgrade

    from modelport import create_app
    from modelport.extensions import db

    overrides = {key.removeprefix("MODELPORT_"): value for key, value in env.items()}
    app = create_app({**overrides, "LOG_LEVEL": "WARNING"})
    with app.app_context():
        upgrade()
        db.engine.dispose()


def reversed_every_second_round(endpoints: list[Endpoint], round_number: int) -> list[Endpoint]:
    return list(endpoints if round_number % 2 else reversed(endpoints))


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one run, start to end
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = generator_for(args.generator, args.connections, args.duration, args.single_duration)
    if chosen is None:
        return 2
    generator, generator_label = chosen
    started = time.monotonic()
    load_before = load_average()
    clean_environ()
    secret = secrets.token_urlsafe(48)
    rows = build_rows(args.threads)
    server_url = postgres_server_url(args)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mp-group-")))
        print("training the model and preparing the databases", file=sys.stderr, flush=True)
        artifacts, features = train_models(workdir)
        artifacts = {"iris": artifacts["iris"]}
        urls: dict[str, str] = {}
        tokens: dict[str, str] = {}
        watchers: dict[str, Watcher] = {}
        pg_version = None
        for row in rows:
            if not row.database:
                continue
            try:
                url, pg_version, drop = create_postgres_database(server_url)
            except Exception as error:  # noqa: BLE001 - any failure means "not reachable"
                reason = str(getattr(error, "orig", None) or error).splitlines()[0]
                print(f"cannot create a database on PostgreSQL: {reason}", file=sys.stderr)
                return 2
            stack.callback(drop)
            urls[row.key] = url
            env = modelport_env(url, workdir, record=True, secret=secret)
            env["MODELPORT_WORKERS"] = str(row.workers)
            if row.modelport:
                tokens[row.key] = prepare_database(env, artifacts, features)
                row.env = env | row.env
            else:
                migrate(env)
                libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
                row.env = {DURABLE_VARIABLE: libpq} | row.env
            watcher = Watcher(url.replace("postgresql+psycopg://", "postgresql://", 1))
            stack.callback(watcher.close)  # before the database is dropped
            watchers[row.key] = watcher

        print(f"starting the servers ({generator_label})", file=sys.stderr, flush=True)
        bases: dict[str, str] = {}
        for row in rows:
            bases[row.key] = stack.enter_context(
                gunicorn(
                    row.app,
                    env={"MODELPORT_ACCESS_LOG": "false", **row.env},
                    log_path=workdir / f"gunicorn-{row.key}.log",
                    workers=row.workers,
                    ready_path="/healthz" if row.modelport else "/health",
                    config=GUNICORN_CONFIG,
                    options=row.options,
                    startup_timeout=60,
                )
            )
        endpoints = {
            row.key: Endpoint(
                row.key,
                f"{row.label} [{describe_server(row)}]",
                row.key,
                row.path,
                method="GET" if row.key == "hello" else "POST",
                body=None if row.key == "hello" else BODY,
                modelport=row.modelport,
                record=row.modelport,
            )
            for row in rows
        }
        by_key = {row.key: row for row in rows}

        def headers(endpoint: Endpoint) -> dict[str, str]:
            if endpoint.path != PREDICT_PATH:
                return {}
            # The bare grouped app needs a request that looks like a hot-path prediction
            # (modelport.api.fastpath.may_answer); it checks no token.
            return {"Authorization": f"Bearer {tokens.get(endpoint.key, 'bench')}"}

        def probe(endpoint: Endpoint) -> Callable[[LoadResult], None] | None:
            watcher = watchers.get(endpoint.key)
            if watcher is None:
                return None
            before = watcher.start()
            return lambda result: watcher.finish(before, result.requests, by_key[endpoint.key])

        for endpoint in endpoints.values():
            check_endpoint(endpoint, bases[endpoint.server], headers(endpoint))
        try:
            measure(
                list(endpoints.values()),
                bases,
                headers,
                args,
                generator,
                order=reversed_every_second_round,
                probe=probe,
            )
        except KeyboardInterrupt:
            print("interrupted: servers stopped, databases dropped", file=sys.stderr)
            return 130

    command = "python bench/group_commit.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = [
        "## Group commit and its alternatives",
        "",
        *machine(pg_version, load_before),
        "- Servers: gunicorn with `modelport/ops/gunicorn_conf.py` (keep-alive 5 s, which only "
        "the gthread worker uses), the worker class and count the row gives, access log off, "
        "127.0.0.1; Modelport: MODELPORT_ENV=production, recording on, the iris logistic "
        "regression (onnxruntime), a Bearer token (scope predict); each server on a "
        "PostgreSQL database of its own",
        f"- Load: {generator_label}; {args.warmup} s warm-up per row, {args.runs} "
        "interleaved rounds (every second one in reverse order), medians shown; body: one iris "
        "row as JSON",
        f"- Command: `{command.strip()}` (took {time.monotonic() - started:.0f} s)",
        "",
        table(rows, endpoints),
        "",
    ]
    text_out = "\n".join(report)
    print(text_out)
    RESULTS_DIR.mkdir(exist_ok=True)
    saved = RESULTS_DIR / f"group-commit-{datetime.now().strftime('%Y%m%d-%H%M%S')}.md"
    saved.write_text(text_out)
    print(f"saved to {saved.relative_to(BENCH_DIR.parent)}", file=sys.stderr)
    if any(endpoint.errors for endpoint in endpoints.values()):
        print("some requests failed: see the errors column", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
