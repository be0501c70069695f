"""Run a server for a benchmark (a WSGI app under gunicorn, or any command), and always stop
it again, with every process it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _group_alive(group: int) -> bool:
    """Whether any process of the process group ``group`` still exists."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the server's whole process group, then SIGKILL what is left after ``grace``
    seconds. Waits for the group to be gone, not only for its leader: a server whose leader
    is a launcher (``mlflow models serve`` runs uvicorn, which runs its workers) leaves its
    children behind for a moment after the leader exits."""
    group = process.pid  # start_new_session: the leader's pid is the group's id
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        process.poll()
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        process.poll()  # reap the leader, so that it does not count as alive
        if not _group_alive(group):
            return
        time.sleep(0.1)
    with suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait(timeout=10)


@contextmanager
def process_group(
    command: list[str],
    *,
    base_url: str,
    env: dict[str, str],
    log_path: Path,
    ready_path: str = "/health",
    startup_timeout: float = 30.0,
    cwd: Path | None = None,
    name: str | None = None,
) -> Iterator[str]:
    """Run ``command``, a server listening at ``base_url``, in a session of its own with its
    output in ``log_path``; yield ``base_url`` once ``ready_path`` answers 200. On the way out
    (also on Ctrl-C or an error) the whole process group is stopped."""
    name = name or Path(command[0]).name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        # A session of its own: Ctrl-C in the terminal reaches only this script, which then
        # stops the server group itself in the finally below.
        process = subprocess.Popen(  # noqa: S603 - the benchmark's own command
            command,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{_tail(log_path)}")
            try:
                url = base_url + ready_path
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - http only
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer in time:\n{_tail(log_path)}")
            time.sleep(0.1)
        yield base_url
    finally:
        _stop(process)


@contextmanager
def gunicorn(
    app: str,
    *,
    env: dict[str, str],
    log_path: Path,
    workers: int = 2,
    ready_path: str = "/health",
    startup_timeout: float = 30.0,
    config: str | None = None,
    options: tuple[str, ...] = (),
    cwd: Path | None = None,
) -> Iterator[str]:
    """Serve ``app`` (a gunicorn app spec importable from bench/) and yield its base URL.

    ``config`` is a gunicorn config (``python:modelport.ops.gunicorn_conf``); the worker
    count, the address and the log settings given here override it. Without one the
    workers are gunicorn's sync workers. ``options`` are more gunicorn options, which
    override the config too (``--worker-class gthread --threads 8``). ``cwd`` is the
    folder gunicorn starts in, first on its ``sys.path`` (``python -m`` puts it there):
    a checkout of another commit, say, whose package must be the one imported.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        # The config's worker class (the product's), else gunicorn's sync worker.
        *(["--config", config] if config else ["--worker-class", "sync"]),
        *options,
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(BENCH_DIR),
        "--log-level",
        "warning",
        "--error-logfile",
        "-",
        app,
    ]
    if os.path.isdir("/dev/shm"):
        # The heartbeat file on tmpfs, as the product's gunicorn settings do.
        command[-1:-1] = ["--worker-tmp-dir", "/dev/shm"]
    with process_group(
        command,
        base_url=f"http://127.0.0.1:{port}",
        env=env,
        log_path=log_path,
        ready_path=ready_path,
        startup_timeout=startup_timeout,
        cwd=cwd,
        name="gunicorn",
    ) as base_url:
        yield base_url
