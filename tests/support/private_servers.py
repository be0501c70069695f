"""Database and Redis servers of a test's own, which the test may crash, stop and restart.

The shared servers of ``MODELPORT_TEST_POSTGRES_URL`` and ``MODELPORT_TEST_MYSQL_URL`` serve
every other test at the same time, so they must never go down. These live in a temporary
folder on a free port, with each server's defaults for durability (PostgreSQL: ``fsync`` and
``synchronous_commit`` on; MariaDB: ``innodb_flush_log_at_trx_commit`` 1), and hold one
empty database. Neither server runs as root, so under root their files belong to the
``postgres`` or ``mysql`` user and their programs run through ``runuser``. Debian keeps
PostgreSQL's server programs in ``/usr/lib/postgresql/<version>/bin`` and MariaDB's in
``/usr/bin`` and ``/usr/sbin``; elsewhere they are looked for on ``PATH``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.databases import REQUIRE_SERVICES, server_database
from tests.support.servers import free_port

DATABASE = "modelport"
START_SECONDS = 60


def _postgres_programs() -> Path | None:
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3])
    )
    return debian[-1].parent if debian else None


def _mariadb_programs() -> tuple[str, str] | None:
    install = shutil.which("mariadb-install-db")
    server = shutil.which("mariadbd") or (
        "/usr/sbin/mariadbd" if os.access("/usr/sbin/mariadbd", os.X_OK) else None
    )
    return (install, server) if install and server else None


class PrivateServer:
    """One server in ``folder``, on ``port``; ``url`` names its database."""

    owner = ""  # the system user that runs it when the tests run as root
    server_url = ""
    durability = ""  # a query whose answers are all "1"/"ON" when commits are durable

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(folder, self.owner, self.owner)
        self.url = ""

    def as_owner(self, *command: str) -> list[str]:
        return ["runuser", "-u", self.owner, "--", *command] if self.root else list(command)

    def run(self, *command: str) -> None:
        subprocess.run(self.as_owner(*command), check=True, capture_output=True, timeout=120)

    def create(self) -> None:
        """A new cluster, started, with the empty database of ``url``."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the server; return once it accepts connections (after crash recovery)."""
        raise NotImplementedError

    def crash(self) -> None:
        """Stop the way a crash does: no shutdown work; the next start recovers from its log."""
        raise NotImplementedError

    def durable(self) -> bool:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as connection:
                row = connection.exec_driver_sql(self.durability).one()
        finally:
            engine.dispose()
        return all(str(value).lower() in {"1", "on"} for value in row)


class PrivatePostgres(PrivateServer):
    owner = "postgres"
    durability = "SELECT current_setting('fsync'), current_setting('synchronous_commit')"

    def __init__(self, folder: Path, programs: Path) -> None:
        super().__init__(folder)
        self.programs = programs
        self.data = folder / "data"

    def create(self) -> None:
        # --no-sync speeds up initdb's own files only; the server keeps fsync on.
        initdb = str(self.programs / "initdb")
        self.run(initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.start()
        base = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.url = server_database(base, DATABASE)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        log = str(self.folder / "server.log")
        pg_ctl = str(self.programs / "pg_ctl")
        self.run(pg_ctl, "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def crash(self) -> None:
        # Immediate: every process quits at once, no checkpoint; the next start replays
        # the write-ahead log.
        self.run(str(self.programs / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def stop(self) -> None:
        """Stop as an operator's restart does: sessions are ended, a checkpoint written."""
        self.run(str(self.programs / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


class PrivateMariaDB(PrivateServer):
    owner = "mysql"
    durability = "SELECT @@innodb_flush_log_at_trx_commit"

    def __init__(self, folder: Path, programs: tuple[str, str]) -> None:
        super().__init__(folder)
        self.install, self.server = programs
        self.data = folder / "data"
        self.process: subprocess.Popen | None = None

    def create(self) -> None:
        self.run(
            self.install,
            "--no-defaults",
            f"--datadir={self.data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        )
        self.start()
        self.url = server_database(f"mysql+pymysql://root@127.0.0.1:{self.port}/mysql", DATABASE)

    def start(self) -> None:
        log = (self.folder / "server.log").open("ab")
        self.process = subprocess.Popen(
            self.as_owner(
                self.server,
                "--no-defaults",
                f"--datadir={self.data}",
                f"--socket={self.folder / 'socket'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                f"--pid-file={self.folder / 'server.pid'}",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        engine = sa.create_engine(f"mysql+pymysql://root@127.0.0.1:{self.port}/mysql")
        deadline = time.monotonic() + START_SECONDS
        try:
            while True:
                try:
                    with engine.connect():
                        return
                except sa.exc.OperationalError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise
                    time.sleep(0.1)
        finally:
            engine.dispose()

    def crash(self) -> None:
        pid = int((self.folder / "server.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=START_SECONDS)  # runuser ends with the server
        with contextlib.suppress(FileNotFoundError):
            (self.folder / "server.pid").unlink()


@contextlib.contextmanager
def private_server(backend: str) -> Iterator[PrivateServer]:
    """A new ``postgres`` or ``mysql`` (MariaDB) server with one empty database; stopped
    and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=f"modelport-{backend}-"))
    server: PrivateServer | None = None
    try:
        if backend == "postgres" and (programs := _postgres_programs()):
            server = PrivatePostgres(folder, programs)
        elif backend == "mysql" and (both := _mariadb_programs()):
            server = PrivateMariaDB(folder, both)
        else:
            reason = f"the {backend} server programs are not installed"
            if REQUIRE_SERVICES:
                pytest.fail(reason)
            pytest.skip(reason)
        server.create()
        yield server
    finally:
        if server is not None:
            with contextlib.suppress(subprocess.SubprocessError, OSError, ValueError):
                server.crash()
        shutil.rmtree(folder, ignore_errors=True)


class PrivateRedis:
    """A redis-server of a test's own on a free loopback port, without persistence (as the
    deployments run it); ``stop`` and ``start`` keep the port."""

    def __init__(self, folder: Path, program: str) -> None:
        self.folder = folder
        self.program = program
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the server; return once it answers PING."""
        import redis

        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.program,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + START_SECONDS
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.exceptions.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server and wait until it is gone (its port refuses connections)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=START_SECONDS)


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """A new, started redis-server; stopped and removed afterwards."""
    program = shutil.which("redis-server")
    if program is None:
        reason = "redis-server is not installed"
        if REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="modelport-redis-"))
    server = PrivateRedis(folder, program)
    try:
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            server.stop()
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
