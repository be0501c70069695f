"""A PostgreSQL server of a test's own, which the test may crash and restart.

The shared server of ``MODELPORT_TEST_POSTGRES_URL`` serves every other test at the same
time, so it must never go down; this one lives in a temporary folder (``initdb``) on a free
port, with the server's defaults for durability (``fsync`` and ``synchronous_commit`` on).
Debian keeps the server programs in ``/usr/lib/postgresql/<version>/bin``; elsewhere they
are looked for on ``PATH``. PostgreSQL refuses to run as root, so under root the cluster
belongs to the ``postgres`` user and its commands run through ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES
from tests.ops.test_gunicorn import _free_port


def server_programs() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None when they are not installed."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3])
    )
    return debian[-1].parent if debian else None


@dataclass
class PrivatePostgres:
    programs: Path
    data: Path
    port: int
    as_owner: list[str]  # the command prefix that runs a program as the cluster's owner

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self.as_owner, str(self.programs / program), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections (after crash recovery)."""
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        log = str(self.data / "server.log")
        self.run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def crash(self) -> None:
        """Stop the way a crash does: every process quits at once, no checkpoint; the next
        start replays the write-ahead log."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A new cluster, started; stopped and removed afterwards."""
    programs = server_programs()
    if programs is None:
        reason = "PostgreSQL's server programs (initdb, pg_ctl) are not installed"
        if REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)
    root = os.geteuid() == 0
    data = Path(tempfile.mkdtemp(prefix="modelport-pg-"))
    if root:
        shutil.chown(data, "postgres", "postgres")
    cluster = PrivatePostgres(
        programs, data, _free_port(), ["runuser", "-u", "postgres", "--"] if root else []
    )
    try:
        # --no-sync speeds up initdb's own files only; the server keeps fsync on.
        cluster.run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            cluster.crash()
        shutil.rmtree(data, ignore_errors=True)
