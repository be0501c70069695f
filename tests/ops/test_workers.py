"""gunicorn's process model under stress: fork safety and killed workers (reliability 2 and 3).

Workers are found through /proc (the master's children, and which of them holds a given
client connection), so that a test kills exactly the worker it means to.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from flask import Flask
from sqlalchemy import text

from modelport import create_app
from modelport.auth import accounts, tokens
from modelport.extensions import db
from tests.support.databases import empty_database_url
from tests.support.html import csrf_from
from tests.support.processes import alive, processes, wait_for
from tests.support.servers import (
    GRACEFUL_SECONDS,
    HeldLogin,
    Master,
    gunicorn_master,
    wait_for_workers,
)
from tests.support.users import PASSWORD

pytestmark = pytest.mark.slow

LOAD_EMAIL = "load@example.com"
THREADS = 16
REQUESTS_PER_THREAD = 25
# What a connection shared by two processes shows up as in the log (psycopg / libpq wording).
BAD_LOG_LINE = re.compile(r"error|traceback|protocol|out of sync|lost synchronization", re.I)


def preloaded_app() -> Flask:
    """The app as ``create_app`` builds it, having used its database before gunicorn forks.

    Loading code that touches the database (a model registry, a warm-up query) leaves a
    connection in the master's pool; without ``post_fork`` every worker would inherit that
    one socket, and concurrent requests would interleave on it.
    """
    app = create_app()
    with app.app_context():
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        assert db.engine.pool.checkedin() == 1, "the master's pool should hold a connection"
    return app


def _in_group(group: int) -> set[int]:
    """Live processes of process group ``group`` (the master started a session of its own)."""
    return {pid for pid, state, _, pgid in processes() if pgid == group and state != "Z"}


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """Inode of the server's end of the loopback connection from ``client_port``, once accepted.

    A connection still in the listen queue has inode 0: no process holds it yet.
    """
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        remote_port = int(fields[2].split(":")[1], 16)
        if (local_port, remote_port) == (server_port, client_port) and fields[9] != "0":
            return fields[9]
    return None


def _holder(pids: set[int], inode: str) -> int | None:
    """The process among ``pids`` that has socket ``inode`` open."""
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(FileNotFoundError, OSError):
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return pid
    return None


def _worker_holding(master: Master, held: HeldLogin) -> int:
    """The worker that accepted ``held``'s connection and now waits for its body."""
    client_port = held.connection.sock.getsockname()[1]

    def find() -> int | None:
        inode = _socket_inode(master.server.port, client_port)
        return _holder(master.workers(), inode) if inode else None

    return wait_for(find, "a worker to accept the held request")


@pytest.fixture
def postgres_with_token(tmp_path: Path) -> tuple[str, str]:
    """A fresh migrated PostgreSQL database with one member and a full-scope token."""
    from flask_migrate import upgrade

    url = empty_database_url("postgres", tmp_path, "forks")
    app = create_app({"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        upgrade()
        user = accounts.create_user(LOAD_EMAIL, "Load", PASSWORD)
        _, plaintext = tokens.create_token(user, "load test", scopes=["full"])
        db.session.remove()
        db.engine.dispose()
    return url, plaintext


def test_preloaded_workers_do_not_share_database_connections(
    tmp_path: Path, postgres_with_token: tuple[str, str]
) -> None:
    """Reliability 2: --preload, 4 workers, concurrent DB reads: no protocol errors."""
    url, token = postgres_with_token

    def calls(_: int) -> list[tuple[int, str | None]]:
        results = []
        for _ in range(REQUESTS_PER_THREAD):
            response = requests.get(
                f"{master.server.url}/api/v1/me",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            email = response.json().get("email") if response.status_code == 200 else None
            results.append((response.status_code, email))
        return results

    with gunicorn_master(
        tmp_path, url, "--preload", "-w", "4", app="tests.ops.test_workers:preloaded_app()"
    ) as master:
        wait_for_workers(master, 4)
        with ThreadPoolExecutor(THREADS) as pool:
            results = [r for batch in pool.map(calls, range(THREADS)) for r in batch]

    # Read the log once the server has stopped: a worker logs a request after answering it.
    log = master.server.text()
    assert len(results) == THREADS * REQUESTS_PER_THREAD
    assert set(results) == {(200, LOAD_EMAIL)}, {r for r in results if r != (200, LOAD_EMAIL)}
    bad = [line for line in log.splitlines() if BAD_LOG_LINE.search(line)]
    assert bad == [], "\n".join(bad)
    pids = master.served_pids("/api/v1/me")
    assert len(pids) == THREADS * REQUESTS_PER_THREAD
    assert len(set(pids)) > 1, "one worker served everything: the load was not concurrent"


def test_killed_worker_is_replaced_and_sigterm_drains(tmp_path: Path, database: str) -> None:
    """Reliability 3: kill -9 a worker mid-request, then SIGTERM the master."""
    with gunicorn_master(tmp_path, database, "-w", "2") as master:
        first = wait_for_workers(master, 2)
        browser = requests.Session()
        csrf = csrf_from(browser.get(f"{master.server.url}/auth/login", timeout=30).text)

        # A request in flight on one worker: its headers are in, its body is not.
        held = HeldLogin(master.server, browser, csrf)
        victim = _worker_holding(master, held)
        booted = len(master.booted())
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not alive(victim), "the killed worker to die")

        # That one request fails: the connection dies with its worker.
        with pytest.raises((OSError, http.client.HTTPException)):
            held.finish()
        held.connection.close()
        # The master notices and boots a replacement.
        wait_for(lambda: len(master.booted()) > booted, "a new 'Booting worker' line")
        now = wait_for_workers(master, 2)
        assert victim not in now
        assert len(now - first) == 1
        # Everything else keeps working.
        statuses = [
            requests.get(f"{master.server.url}/readyz", timeout=30).status_code for _ in range(20)
        ]
        assert statuses == [200] * 20

        # Graceful stop: a request in flight when SIGTERM arrives is still answered.
        held = HeldLogin(master.server, browser, csrf)
        busy = _worker_holding(master, held)
        idle = (now - {busy}).pop()
        os.kill(master.pid, signal.SIGTERM)
        # The idle worker has exited on the master's SIGTERM, so the busy one has it too.
        wait_for(lambda: not alive(idle), "the idle worker to exit")
        assert alive(busy)
        status, body = held.finish()
        assert status == 400
        assert "Wrong e-mail or password." in body
        master.process.wait(timeout=GRACEFUL_SECONDS)

    assert master.process.returncode == 0
    assert not any(alive(pid) for pid in now | first), "a worker outlived its master"
    assert _in_group(master.pid) == set()
    log = master.server.text()
    assert f"Worker (pid:{victim}) was sent SIGKILL!" in log
    assert "Handling signal: term" in log
    # The only error the log may show is the report of the worker killed on purpose.
    errors = [
        line
        for line in log.splitlines()
        if BAD_LOG_LINE.search(line) and f"(pid:{victim}) was sent SIGKILL" not in line
    ]
    assert errors == [], "\n".join(errors)
