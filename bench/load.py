"""Load generation shared by the benchmarks: wrk when installed, else a Python generator.

wrk is the reference tool (``wrk -t1 -c16 -d10s --latency``, the performance anchors were
measured with it). Without it, a thread-per-connection Python generator with keep-alive
connections runs instead; it is slower than wrk and takes more of the CPU it shares with the
server, so its figures are lower and only its ratios are worth comparing. Every result names
the generator that produced it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

WRK_MISSING = (
    "wrk is not installed; using the Python load generator instead (slower: compare only "
    "ratios). To use wrk: `sudo apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk` "
    "(macOS)."
)

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


@dataclass(frozen=True)
class LoadResult:
    """What one measured load run produced."""

    generator: str
    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx/3xx responses plus socket errors and timeouts


def wrk_path() -> str | None:
    """The wrk executable, or None when it is not installed."""
    return shutil.which("wrk")


def wrk_version() -> str:
    """wrk's version line (wrk prints it in its usage text), or "not installed"."""
    path = wrk_path()
    if path is None:
        return "not installed"
    completed = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    first = (completed.stdout or completed.stderr).splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "wrk (unknown version)"


def load_label(
    generator: str, connections: int, duration: float, single_duration: float | None = None
) -> str:
    """How the load was made, for a report: wrk's version and command lines, or the
    Python fallback (``single_duration``: the one-connection measurement, if any)."""
    if generator != "wrk":
        return f"Python threads with keep-alive connections ({connections}), not wrk"
    label = f"{wrk_version()}, `wrk -t1 -c{connections} -d{duration:g}s --latency`"
    if single_duration is not None:
        label += f" and `-c1 -d{single_duration:g}s`"
    return label


def generator_for(
    requested: str, connections: int, duration: float, single_duration: float | None = None
) -> tuple[str, str] | None:
    """The load generator asked for (``choose_generator``) and how a report names it
    (``load_label``); None, with the reason on stderr, when it cannot be had."""
    try:
        generator = choose_generator(requested)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return None
    return generator, load_label(generator, connections, duration, single_duration)


def choose_generator(requested: str = "auto") -> str:
    """Resolve "auto" to "wrk" when wrk is installed, else "python" (with a printed hint)."""
    if requested not in {"auto", "wrk", "python"}:
        raise ValueError(f"unknown load generator {requested!r}: use auto, wrk or python")
    if requested == "wrk" and wrk_path() is None:
        raise RuntimeError(
            "--generator wrk was asked for, but wrk is not installed: "
            "`sudo apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk` (macOS)."
        )
    if requested == "auto":
        if wrk_path() is None:
            print(WRK_MISSING, flush=True)
            return "python"
        return "wrk"
    return requested


def run_load(
    url: str,
    *,
    duration: float,
    connections: int,
    method: str = "GET",
    body: dict | None = None,
    generator: str = "wrk",
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Load ``url`` for ``duration`` seconds over ``connections`` connections."""
    payload = json.dumps(body).encode() if body is not None else None
    if generator == "wrk":
        return _run_wrk(url, duration, connections, method, payload, headers or {})
    return _run_python(url, duration, connections, method, payload, headers or {})


# --- wrk ------------------------------------------------------------------------------------


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def parse_wrk(output: str) -> tuple[int, float, float, float, float, int]:
    """Read requests, seconds, req/s, p50 ms, p99 ms and errors from ``wrk --latency`` output."""
    p50 = re.search(r"^\s+50%\s+" + _DURATION, output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+" + _DURATION, output, re.MULTILINE)
    total = re.search(r"(\d+) requests in " + _DURATION, output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not (p50 and p99 and total and rate):
        raise RuntimeError(f"could not read wrk's output (was --latency given?):\n{output}")
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return (
        int(total.group(1)),
        _to_ms(total.group(2), total.group(3)) / 1000,
        float(rate.group(1)),
        _to_ms(*p50.groups()),
        _to_ms(*p99.groups()),
        errors,
    )


def _lua_script(method: str, payload: bytes | None, headers: dict[str, str] | None = None) -> str:
    """A wrk script that sets the method, extra headers and, for a body, the JSON body and its
    type."""
    lines = [f'wrk.method = "{method}"']
    if payload is not None:
        # A long bracket string needs no escaping as long as the body has no "]==]".
        lines.append(f"wrk.body = [==[{payload.decode()}]==]")
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[ [==[{name}]==] ] = [==[{value}]==]")
    return "\n".join(lines) + "\n"


def _run_wrk(
    url: str,
    duration: float,
    connections: int,
    method: str,
    payload: bytes | None,
    headers: dict[str, str],
) -> LoadResult:
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError(WRK_MISSING)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua_script(method, payload, headers))
    try:
        command = [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            script.name,
            url,
        ]
        completed = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=duration + 60
        )
    finally:
        os.unlink(script.name)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    requests, seconds, rate, p50, p99, errors = parse_wrk(completed.stdout)
    return LoadResult(f"wrk -t1 -c{connections}", requests, seconds, rate, p50, p99, errors)


# --- Python fallback ------------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 when it is empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(fraction * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _run_python(
    url: str,
    duration: float,
    connections: int,
    method: str,
    payload: bytes | None,
    extra_headers: dict[str, str],
) -> LoadResult:
    parts = urlsplit(url)
    path = parts.path or "/"
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    headers |= extra_headers
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    deadline = time.perf_counter() + duration

    def worker(slot: int) -> None:
        # One keep-alive connection per thread; http.client reopens it when the server closes
        # it (gunicorn's sync workers close after every response).
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    connection.request(method, path, body=payload, headers=headers)
                    response = connection.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException):
                    errors[slot] += 1
                    connection.close()
                    continue
                latencies[slot].append((time.perf_counter() - started) * 1000)
                if response.status >= 400:
                    errors[slot] += 1
                if response.will_close:
                    connection.close()
        finally:
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 30)
    elapsed = time.perf_counter() - started
    merged = sorted(value for slot in latencies for value in slot)
    return LoadResult(
        f"python ({connections} threads)",
        len(merged),
        elapsed,
        len(merged) / elapsed if elapsed else 0.0,
        percentile(merged, 0.50),
        percentile(merged, 0.99),
        sum(errors),
    )
