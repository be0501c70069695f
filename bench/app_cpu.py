"""The application's own CPU per hot-path request, in process, for two checkouts side by side.

bench/serving.py measures the whole server (gunicorn, sockets, the application) under wrk,
where the other work on a shared 2-core machine moves the CPU per request by ±25 % from one
round to the next. This part asks a narrower question, with far less noise: how much CPU
does Modelport's WSGI application spend on one token prediction (recording off), with this
checkout's code against another commit's? Each checkout runs in a process of its own, with
that checkout first on ``sys.path``, and calls its ``create_app()`` directly with a WSGI
environ, no sockets; the two processes take turns, round by round, so both see the same
machine. ``python bench/serving.py --baseline REF`` runs it after its wrk rounds.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN_VARIABLE = "MODELPORT_BENCH_TOKEN"
PATH = "/api/v1/models/iris/predict"


@dataclass
class Side:
    """One checkout: where its code is, the MODELPORT_* settings of its database, a token."""

    label: str
    tree: Path
    env: dict[str, str]
    token: str
    cpu_ms: list[float] = field(default_factory=list)


def compare(sides: Iterable[Side], body: dict[str, Any], rounds: int, calls: int) -> None:
    """Fill each side's ``cpu_ms`` with ``rounds`` figures of ``calls`` predictions each,
    the sides taking turns (and changing who goes first every round)."""
    sides = list(sides)
    processes = []
    for side in sides:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
        env |= side.env | {
            "PYTHONPATH": str(side.tree),
            TOKEN_VARIABLE: side.token,
            "MODELPORT_LOG_LEVEL": "WARNING",
        }
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), json.dumps(body)],
            env=env,
            cwd=side.tree,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
    try:
        for process in processes:
            _ask(process, calls)  # warm-up: caches, the model's first runs
        for number in range(rounds):
            order = list(zip(sides, processes, strict=True))
            for side, process in order if number % 2 == 0 else reversed(order):
                side.cpu_ms.append(_ask(process, calls))
    finally:
        for process in processes:
            process.stdin.close()
            process.wait(timeout=30)


def _ask(process: subprocess.Popen, calls: int) -> float:
    process.stdin.write(f"{calls}\n")
    process.stdin.flush()
    answer = process.stdout.readline()
    if not answer:
        raise RuntimeError("the measuring process ended; its error is above")
    return float(answer)


def _serve(body: bytes) -> None:
    """The measuring process: answers each number N on stdin with CPU ms per prediction."""
    import modelport

    app = modelport.create_app()
    token = os.environ[TOKEN_VARIABLE]
    statuses: list[str] = []

    def start_response(status: str, _headers: Any, _exc_info: Any = None) -> None:
        statuses.append(status)

    def predict() -> None:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": PATH,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "5000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_AUTHORIZATION": f"Bearer {token}",
            "HTTP_HOST": "127.0.0.1:5000",
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        answer = app(environ, start_response)
        b"".join(answer)
        getattr(answer, "close", lambda: None)()

    for line in sys.stdin:
        calls = int(line)
        statuses.clear()
        started = time.process_time()
        for _ in range(calls):
            predict()
        spent = time.process_time() - started
        if any(not status.startswith("200") for status in statuses):
            raise SystemExit(f"{PATH} answered {sorted(set(statuses))}, not 200")
        print(f"{spent / calls * 1000:.5f}", flush=True)


def table(sides: list[Side], rounds: int, calls: int) -> str:
    """A Markdown table of both sides and the ratio of the first to the second."""
    head, ref = sides
    ratios = [a / b for a, b in zip(head.cpu_ms, ref.cpu_ms, strict=True)]
    return "\n".join(
        [
            f"| LR predict, recording off, in process ({rounds} rounds × {calls} calls) "
            f"| app CPU ms/request, {head.label} | app CPU ms/request, {ref.label} "
            f"| {head.label} / {ref.label} | per round |",
            "|---|---:|---:|---:|---:|",
            f"| WSGI app, no sockets | {_spread(head.cpu_ms)} | {_spread(ref.cpu_ms)} "
            f"| {ratio(sides):.3f}× | {min(ratios):.2f}–{max(ratios):.2f}× |",
        ]
    )


def ratio(sides: list[Side]) -> float:
    """The first side's median CPU per request over the second's."""
    return statistics.median(sides[0].cpu_ms) / statistics.median(sides[1].cpu_ms)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


if __name__ == "__main__":
    _serve(sys.argv[1].encode())
