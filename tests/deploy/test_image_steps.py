"""The image's steps, run by CI without Docker: the entrypoint script from the built wheel.

The wheel is built as ``make wheel`` does and installed in a new virtualenv outside the
checkout with the pins of requirements.txt, from the wheel folder tests/test_packaging.py
fills (``~/.cache/modelport-test-wheels``, ``$XDG_CACHE_HOME`` honoured; the same lock).
Then ``deploy/docker/entrypoint.sh`` runs migrate, create-admin, purge, rollup, serve and
healthcheck with the environment the Dockerfile sets: its ENV lines, with the image's
writable places (/data, /tmp) moved to folders of the test, the venv in place of
/opt/modelport, and a free loopback port. The secret key and base URL are what an operator
supplies at run time. The venv is made read-only while the script runs, as the image's root
file system is.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests.support.servers import free_port
from tests.support.wheels import build_wheel, install, ok, run

from .dockerfile import DOCKERFILE, ENTRYPOINT, ROOT, stages

# With tests/test_packaging.py on one worker: both fill the same wheel folder.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("packaging")]

START_SECONDS = 90
STOP_SECONDS = 40  # gunicorn's graceful_timeout is 30 s
PASSWORD = "an image test password, long enough"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _image_env(venv: Path, data: Path, tmp: Path, port: int) -> dict[str, str]:
    """The Dockerfile's ENV, with its paths moved into the test's folders."""
    image = stages(DOCKERFILE.read_text())[-1].env()
    moved = {}
    for name, value in image.items():
        moves = (("/opt/modelport", venv), ("/data", data), ("/tmp", tmp))  # noqa: S108
        for inside, outside in moves:
            if value == inside or value.startswith(f"{inside}/"):
                value = str(outside) + value[len(inside) :]
                break
        # The python image's PATH, which the Dockerfile's ENV PATH extends.
        value = value.replace("$PATH", BASE_PATH)
        moved[name] = value
    assert moved["MODELPORT_BIND"] == "0.0.0.0:8000"  # the image's; a free port here
    moved["MODELPORT_BIND"] = f"127.0.0.1:{port}"
    assert moved["PATH"].startswith(f"{venv}/bin:")
    # Nothing of the test run's own: no MODELPORT_* setting, nothing pointing at the checkout.
    dropped = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "FLASK_APP"}
    outer = {
        k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_") and k not in dropped
    }
    given = {
        # What the operator gives the container (compose's env file, a Kubernetes Secret).
        "MODELPORT_SECRET_KEY": secrets.token_urlsafe(48),
        "MODELPORT_BASE_URL": "https://models.example.com",
        # One worker on a shared CI machine; the count from the CPUs: test_docker.py.
        "MODELPORT_WORKERS": "1",
        "MODELPORT_LOG_FORMAT": "text",
    }
    # The image compiles its modules when it installs them; compiling them here would take a
    # minute more than the steps save. The steps share bytecode through a folder of the test
    # instead, so that each need not compile pandas & co. again; the venv stays untouched.
    bytecode = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(tmp / "pycache")}
    assert moved["PYTHONDONTWRITEBYTECODE"] == "1"
    return outer | moved | given | bytecode


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """No one may write in ``folder`` (as the image's read-only root), until the end."""
    modes = {}
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            modes[path] = path.stat().st_mode
            path.chmod(modes[path] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def _schema_head() -> str:
    config = Config()
    config.set_main_option("script_location", str(ROOT / "modelport" / "migrations"))
    (head,) = ScriptDirectory.from_config(config).get_heads()
    return head


def test_the_entrypoint_runs_the_image_steps_from_the_wheel(tmp_path: Path) -> None:
    assert ROOT not in tmp_path.parents
    started = time.monotonic()
    venv = tmp_path / "venv"
    install(build_wheel(tmp_path / "dist"), venv, extras="postgres")
    installed = time.monotonic() - started
    data, tmp = tmp_path / "data", tmp_path / "tmp"
    data.mkdir()
    tmp.mkdir()
    port = free_port()
    env = _image_env(venv, data, tmp, port)
    script = tmp_path / "modelport-entrypoint"  # as the image has it: a copy, on its own
    shutil.copy2(ENTRYPOINT, script)

    def step(*args: str, stdin: str | None = None) -> str:
        return ok(run([str(script), *args], env=env, cwd=data, input=stdin, timeout=120))

    with _read_only(venv):
        step("migrate")
        # The image's default database: SQLite in the instance folder, on the volume.
        with contextlib.closing(sqlite3.connect(data / "modelport.db")) as connection:
            (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        assert version == _schema_head()
        assert "Created administrator admin@example.com" in step(
            "create-admin", "--email", "admin@example.com", "--name", "Admin",
            "--password-stdin", stdin=PASSWORD + "\n",
        )  # fmt: skip
        step("purge")
        assert "Rolled up 0 records" in step("rollup")
        assert run([str(script), "healthcheck"], env=env, timeout=30).returncode == 1

        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [str(script), "serve"], env=env, cwd=data, stdout=out, stderr=subprocess.STDOUT
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_SECONDS
            while True:
                assert server.poll() is None, f"serve exited:\n{log.read_text()}"
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline, f"no answer in time:\n{log.read_text()}"
                time.sleep(0.2)
            ready = requests.get(f"{url}/readyz", timeout=30)
            assert ready.status_code == 200, ready.text
            # The image's HEALTHCHECK command, as Docker runs it.
            check = run([str(script), "healthcheck"], env=env, timeout=30)
            assert check.returncode == 0, check.stderr
            # exec all the way down: the script's process is gunicorn's master itself, and
            # the SIGTERM that docker stop sends it stops the server cleanly.
            command = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
            assert b"gunicorn" in command, command
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=STOP_SECONDS) == 0, log.read_text()
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(timeout=10)
        text = log.read_text()
        assert "Shutting down: Master" in text, text
    assert not list(venv.rglob("*.pyc")), "the venv was written to"
    # What the steps wrote on the volume: the database (and SQLite's WAL files).
    written = {p.name for p in data.iterdir()}
    assert written <= {"modelport.db", "modelport.db-wal", "modelport.db-shm", "artifacts"}
    steps = time.monotonic() - started - installed
    print(f"built and installed in {installed:.0f} s, steps in {steps:.0f} s")
