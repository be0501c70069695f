"""Three ways to reach the database, measured under gunicorn (one command: ``make bench``).

Serves a primary-key read and a one-row insert three ways (see bench/db_app.py): (1) a new
DBAPI connection per request, (2) a pooled SQLAlchemy engine with text() SQL, (3) the
Flask-SQLAlchemy session on that same pool, as the product does. Runs against SQLite and
PostgreSQL with gunicorn (2 sync workers) and wrk, and prints req/s, p50 and p99 with the ratio
to stage 1, measured in the same run. Stages are interleaved within each round so that a
slow spell of the machine does not land on one stage only; the median of the rounds is shown.

    .venv/bin/python bench/db_stages.py [--duration 4] [--connections 16] [--runs 3]
        [--backends sqlite,postgres] [--generator auto|wrk|python]

PostgreSQL URL: $MODELPORT_BENCH_POSTGRES_URL, else $MODELPORT_TEST_POSTGRES_URL, else
postgresql+psycopg://postgres@127.0.0.1:5432/test. The benchmark creates, seeds and drops a
table of its own (bench_items) and touches no other table.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, delete, insert, make_url, text
from sqlalchemy.engine import Engine

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(BENCH_DIR))

from db_app import SEED_ROWS, TABLE, URL_VARIABLE, BenchItem  # noqa: E402
from load import LoadResult, generator_for, run_load  # noqa: E402
from server import gunicorn  # noqa: E402

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
STAGES = {
    0: "no database (reference)",
    1: "new connection per request",
    2: "pooled engine + text()",
    3: "ORM session (product)",
}
OPERATIONS = {
    "read": ("GET", None),
    "insert": ("POST", {"name": "bench row", "score": 42}),
}
# Stage 0 has no database, so it has a read only: it shows how much of a request the
# database costs, and whether the machine was as fast as usual during the run.
ENDPOINTS = [("read", 0), ("read", 1), ("read", 2), ("read", 3)] + [
    ("insert", stage) for stage in (1, 2, 3)
]


@dataclass
class Row:
    """All rounds of one backend × operation × stage."""

    backend: str
    operation: str
    stage: int
    runs: list[LoadResult]

    def median(self, field: str) -> float:
        return statistics.median(getattr(run, field) for run in self.runs)

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)


def postgres_url() -> str:
    """The PostgreSQL URL to benchmark against."""
    return (
        os.environ.get("MODELPORT_BENCH_POSTGRES_URL")
        or os.environ.get("MODELPORT_TEST_POSTGRES_URL")
        or DEFAULT_POSTGRES_URL
    )


def prepare_table(engine: Engine) -> None:
    """(Re)create bench_items and seed it with SEED_ROWS rows, ids 1..SEED_ROWS."""
    BenchItem.__table__.drop(engine, checkfirst=True)
    BenchItem.__table__.create(engine)
    rows = [{"id": n, "name": f"item {n}", "score": n % 100} for n in range(1, SEED_ROWS + 1)]
    with engine.begin() as connection:
        connection.execute(insert(BenchItem.__table__), rows)
        if engine.dialect.name == "postgresql":
            # Explicit ids do not advance the serial sequence; the inserts need it past them.
            connection.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), :last)"),
                {"last": SEED_ROWS},
            )
            connection.execute(text(f"ANALYZE {TABLE}"))


def trim_table(engine: Engine) -> None:
    """Delete the rows the inserts added, so every insert round starts from the same table."""
    with engine.begin() as connection:
        connection.execute(delete(BenchItem.__table__).where(BenchItem.__table__.c.id > SEED_ROWS))


def check_endpoints(base_url: str) -> None:
    """One request per endpoint before any load: a stage that fails must not be timed."""
    for operation, stage in ENDPOINTS:
        method, body = OPERATIONS[operation]
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - an http URL on loopback
            f"{base_url}/stage{stage}/{operation}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            answer = json.load(response)
        if "id" not in answer:
            raise RuntimeError(f"stage {stage} {operation} answered {answer!r}")


def bench_backend(
    backend: str, url: str, args: argparse.Namespace, generator: str, workdir: Path
) -> list[Row]:
    """Seed the table, serve the app, warm up, and measure every stage ``args.runs`` times."""
    engine = create_engine(url)
    rows = {endpoint: Row(backend, *endpoint, []) for endpoint in ENDPOINTS}
    try:
        prepare_table(engine)
        log_path = workdir / f"gunicorn-{backend}.log"
        with gunicorn("db_app:create_app()", env={URL_VARIABLE: url}, log_path=log_path) as base:
            check_endpoints(base)
            for operation, stage in ENDPOINTS:
                method, body = OPERATIONS[operation]
                run_load(
                    f"{base}/stage{stage}/{operation}",
                    duration=args.warmup,
                    connections=args.connections,
                    method=method,
                    body=body,
                    generator=generator,
                )
            for round_number in range(1, args.runs + 1):
                for operation, stage in ENDPOINTS:
                    method, body = OPERATIONS[operation]
                    if operation == "insert":
                        trim_table(engine)
                    result = run_load(
                        f"{base}/stage{stage}/{operation}",
                        duration=args.duration,
                        connections=args.connections,
                        method=method,
                        body=body,
                        generator=generator,
                    )
                    rows[operation, stage].runs.append(result)
                    print(
                        f"  {backend:<8} round {round_number}  {operation:<6} stage {stage}: "
                        f"{result.requests_per_second:8.0f} req/s  p50 {result.p50_ms:6.1f} ms"
                        f"  p99 {result.p99_ms:6.1f} ms"
                        + (f"  ERRORS {result.errors}" if result.errors else ""),
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        try:
            BenchItem.__table__.drop(engine, checkfirst=True)
        finally:
            engine.dispose()
    return list(rows.values())


def table(rows: list[Row]) -> str:
    """The results as a Markdown table, ratios against stage 1 of the same backend/operation."""
    lines = [
        "| backend | operation | stage | req/s (median) | req/s range | p50 ms | p99 ms "
        "| req/s vs stage 1 | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    baseline = {
        (r.backend, r.operation): r.median("requests_per_second") for r in rows if r.stage == 1
    }
    for row in rows:
        rate = row.median("requests_per_second")
        rates = [run.requests_per_second for run in row.runs]
        base = baseline[row.backend, row.operation]
        lines.append(
            f"| {row.backend} | {row.operation} | {row.stage}. {STAGES[row.stage]} "
            f"| {rate:,.0f} | {min(rates):,.0f}–{max(rates):,.0f} "
            f"| {row.median('p50_ms'):.1f} | {row.median('p99_ms'):.1f} "
            f"| {rate / base:.2f}× | {row.errors} |"
        )
    return "\n".join(lines)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def machine(postgres: str | None) -> list[str]:
    """Lines describing the machine and software the numbers came from."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or cpu
    libraries = ", ".join(
        f"{name} {_version(name)}"
        for name in ("flask", "flask-sqlalchemy", "sqlalchemy", "psycopg", "gunicorn")
    )
    lines = [
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {cpu}, {os.cpu_count()} cores (shared by server, database and load generator)",
        f"- OS: {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; {libraries}",
        f"- SQLite {sqlite3.sqlite_version}",
    ]
    if postgres:
        lines.append(f"- PostgreSQL {postgres} on the same machine, over TCP 127.0.0.1")
    return lines


def postgres_version(url: str) -> str:
    """The server version, which also proves PostgreSQL answers before any work starts."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SHOW server_version")).scalar_one()
    finally:
        engine.dispose()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--runs", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per endpoint")
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated list")
    parser.add_argument("--generator", default="auto", choices=("auto", "wrk", "python"))
    args = parser.parse_args(argv)
    args.backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(args.backends) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    if min(args.duration, args.warmup, args.runs, args.connections) < 1:
        parser.error("--duration, --warmup, --runs and --connections must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so gunicorn is stopped and the table dropped either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = generator_for(args.generator, args.connections, args.duration)
    if chosen is None:
        return 2
    generator, generator_label = chosen
    started = time.monotonic()
    load_before = load_average()

    targets: list[tuple[str, str]] = []
    skipped: list[str] = []
    pg_version = None
    workdir = Path(tempfile.mkdtemp(prefix="modelport-bench-"))
    for backend in args.backends:
        if backend == "sqlite":
            targets.append(("sqlite", f"sqlite:///{workdir / 'bench.db'}"))
        else:
            url = postgres_url()
            try:
                pg_version = postgres_version(url)
            except Exception as error:  # noqa: BLE001 - any failure means "not reachable"
                reason = str(getattr(error, "orig", None) or error).splitlines()[0]
                # str() of a SQLAlchemy URL masks the password.
                skipped.append(f"postgres skipped: cannot connect to {make_url(url)}: {reason}")
                continue
            targets.append(("postgres", url))

    rows: list[Row] = []
    try:
        for backend, url in targets:
            print(f"benchmarking {backend} ({generator_label})", file=sys.stderr, flush=True)
            rows += bench_backend(backend, url, args, generator, workdir)
    except KeyboardInterrupt:
        print("interrupted: server stopped, bench table dropped", file=sys.stderr)
        return 130
    finally:
        for path in sorted(workdir.iterdir(), reverse=True):
            path.unlink()
        workdir.rmdir()

    command = "python bench/db_stages.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = [
        "## Three ways to reach the database",
        "",
        *machine(pg_version),
        "- Server: gunicorn, 2 sync workers, 127.0.0.1; app: bench/db_app.py",
        f"- Load: {generator_label}; {args.warmup:g} s warm-up per endpoint, "
        f"{args.runs} interleaved rounds, medians shown",
        f"- Command: `{command.strip()}` (took {time.monotonic() - started:.0f} s; "
        f"1-minute load average {load_before} before it started)",
        *(f"- {note}" for note in skipped),
        "",
        table(rows) if rows else "(no backend could be measured)",
        "",
    ]
    text_out = "\n".join(report)
    print(text_out)
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    saved = RESULTS_DIR / f"db_stages-{stamp}.md"
    saved.write_text(text_out)
    print(f"saved to {saved.relative_to(BENCH_DIR.parent)}", file=sys.stderr)
    if any(row.errors for row in rows):
        print("some requests failed: see the errors column", file=sys.stderr)
        return 1
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
