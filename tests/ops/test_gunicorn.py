"""A real gunicorn with two workers: login throttling is shared through Redis (checklist 10).

To be sure that both workers count the same account, every other attempt is sent while the
other worker is held busy: a request whose headers are sent but whose body is not keeps the
sync worker that accepted it waiting, so the next connection must go to the other worker.
The access log (``%(p)s`` is the worker's pid) shows which worker served what.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest
import redis
import requests

from modelport.config import SETTINGS
from tests.conftest import csrf_from, service_url
from tests.ops.conftest import EMAIL

pytestmark = pytest.mark.slow


WRONG = "not the right password at all"
START_SECONDS = 60
ACCESS_FORMAT = "%(p)s %(m)s %(U)s %(s)s"
# A Redis database of this test's own: other tests reset the limiter in database 0.
REDIS_DB = 11


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _redis_url() -> str:
    parts = urlsplit(service_url("redis"))
    return urlunsplit(parts._replace(path=f"/{REDIS_DB}"))


@dataclass
class Server:
    url: str
    port: int
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def login_pids(self) -> list[str]:
        """The worker pid of every POST /auth/login, in the order they were answered."""
        return re.findall(r"^<(\d+)> POST /auth/login \d+$", self.text(), re.MULTILINE)


def launch(
    tmp_path: Path,
    database: str,
    *options: str,
    app: str = "modelport:create_app()",
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen, Server]:
    """Start gunicorn with the production config on a free port and wait until it answers.

    The caller stops it. The process leads a session of its own, so that its whole group
    (master and workers) can be killed at once.
    """
    ours = {f"MODELPORT_{s.name}" for s in SETTINGS}
    environment = {k: v for k, v in os.environ.items() if k not in ours}
    environment |= {
        "MODELPORT_ENV": "testing",
        "MODELPORT_DATABASE_URL": database,
        "MODELPORT_INSTANCE_PATH": str(tmp_path / "instance"),
        # One key for all workers, or each would refuse the others' session cookies.
        "MODELPORT_SECRET_KEY": secrets.token_urlsafe(36),
        "MODELPORT_LOG_FORMAT": "text",
        **(env or {}),
    }
    port = _free_port()
    log = tmp_path / f"gunicorn-{port}.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:modelport.ops.gunicorn_conf",
        "-b",
        f"127.0.0.1:{port}",
        "--access-logformat",
        ACCESS_FORMAT,
        *options,
        app,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env=environment,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", port, log)
    try:
        _wait_until_up(server, process)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        raise
    return process, server


@contextlib.contextmanager
def gunicorn(tmp_path: Path, database: str, **settings: str) -> Iterator[Server]:
    """gunicorn with two workers on a free port; stopped (killed if need be) afterwards."""
    env = {
        "MODELPORT_LOGIN_LIMIT_ACCOUNT": "5 per 15 minutes",
        "MODELPORT_LOGIN_LIMIT_IP": "1000 per 15 minutes",  # only the account limit is tested
        **{f"MODELPORT_{k}": v for k, v in settings.items()},
    }
    process, server = launch(tmp_path, database, "-w", "2", env=env)
    try:
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the master and its workers
            process.wait(timeout=10)


def _wait_until_up(server: Server, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{server.text()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer /healthz in time:\n{server.text()}")


class HeldLogin:
    """A bad login whose body is held back, so the worker that took it stays busy."""

    def __init__(self, server: Server, browser: requests.Session, token: str) -> None:
        self.body = urlencode({"email": EMAIL, "password": WRONG, "csrf_token": token}).encode()
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        self.connection.putrequest("POST", "/auth/login")
        self.connection.putheader("Content-Type", "application/x-www-form-urlencoded")
        self.connection.putheader("Content-Length", str(len(self.body)))
        cookies = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
        self.connection.putheader("Cookie", cookies)
        self.connection.endheaders()

    def finish(self) -> tuple[int, str]:
        self.connection.send(self.body)
        response = self.connection.getresponse()
        result = response.status, response.read().decode()
        self.connection.close()
        return result


def _bad_logins_on_alternating_workers(server: Server, attempts: int) -> list[tuple[int, str]]:
    """``attempts`` wrong-password logins for one account, half on each worker."""
    browser = requests.Session()
    token = csrf_from(browser.get(f"{server.url}/auth/login", timeout=30).text)
    results: list[tuple[int, str]] = []
    for _ in range(attempts // 2):
        held = HeldLogin(server, browser, token)  # worker A waits for this body
        try:
            response = browser.post(
                f"{server.url}/auth/login",
                data={"email": EMAIL, "password": WRONG, "csrf_token": token},
                headers={"Connection": "close"},
                allow_redirects=False,
                timeout=30,
            )  # so worker B answers this one
            results.append((response.status_code, response.text))
        finally:
            results.append(held.finish())  # then worker A answers
    return results


@pytest.mark.parametrize(
    ("storage", "sixth_status"),
    [("redis", 429), ("memory", 400)],
    ids=["redis-shared", "memory-per-worker"],
)
def test_login_throttle_counts_across_workers(
    tmp_path: Path, database: str, storage: str, sixth_status: int
) -> None:
    settings = {}
    if storage == "redis":
        settings["REDIS_URL"] = _redis_url()
        redis.Redis.from_url(settings["REDIS_URL"]).flushdb()
    try:
        with gunicorn(tmp_path, database, **settings) as server:
            results = _bad_logins_on_alternating_workers(server, 6)
    finally:
        if storage == "redis":
            redis.Redis.from_url(settings["REDIS_URL"]).flushdb()

    # A worker logs a request after answering it: read the log once the server has stopped.
    pids = server.login_pids()
    # Both workers answered, one attempt of each pair each: three failures per worker.
    assert len(pids) == 6
    assert len(set(pids)) == 2
    assert all(len(set(pids[i : i + 2])) == 2 for i in range(0, 6, 2)), pids
    for status, body in results[:5]:
        assert status == 400
        assert "Wrong e-mail or password." in body
    status, body = results[5]
    # With Redis the sixth failure is refused although its worker saw only two before it;
    # with per-process memory each worker has counted three, and the limit of 5 is not hit.
    assert status == sixth_status
    if storage == "redis":
        assert "Too many failed sign-ins" in body


def test_health_and_readiness_through_gunicorn(tmp_path: Path, database: str) -> None:
    with gunicorn(tmp_path, database) as server:
        health = requests.get(f"{server.url}/healthz", timeout=30)
        ready = requests.get(f"{server.url}/readyz", timeout=30)

    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
