"""A wheel built from the checkout and installed elsewhere migrates a database and serves.

The wheel is built with ``pip wheel`` and installed in a new virtualenv outside the checkout,
with the dependencies pinned by requirements.txt, from wheels kept in
``~/.cache/modelport-test-wheels`` (``$XDG_CACHE_HOME`` honoured): the first run fills the
folder from the package index, later runs install offline. Every command then runs from a
folder outside the checkout with no PYTHONPATH, so only the installed package can answer.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from alembic.config import Config
from alembic.script import ScriptDirectory

from modelport.config import SETTINGS
from tests.support.servers import free_port
from tests.support.wheels import ROOT, build_wheel, install, ok
from tests.support.wheels import run as run_command

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("packaging")]

PACKAGE_DATA = ("migrations", "templates", "static", "translations")
START_SECONDS = 90
PASSWORD = "a packaging test password, long enough"


def _outside_env(venv: Path, database: str, instance: Path) -> dict[str, str]:
    """The caller's environment without anything that could point Python at the checkout,
    nor the test run's own settings; a fresh database and instance folder."""
    ours = {f"MODELPORT_{s.name}" for s in SETTINGS}
    dropped = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "FLASK_APP"}
    env = {k: v for k, v in os.environ.items() if k not in ours | dropped}
    return env | {
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "MODELPORT_ENV": "development",
        "MODELPORT_DATABASE_URL": database,
        "MODELPORT_INSTANCE_PATH": str(instance),
        "MODELPORT_LOG_FORMAT": "text",
    }


@contextlib.contextmanager
def serving(venv: Path, env: dict[str, str], cwd: Path) -> Iterator[str]:
    """``modelport serve`` from the venv on a free port; stopped (killed if need be) after."""
    port = free_port()
    log = cwd / "serve.log"
    command = [str(venv / "bin" / "modelport"), "serve", "--bind", f"127.0.0.1:{port}"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--workers", "1"],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its group: gunicorn's master and worker
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert process.poll() is None, f"modelport serve exited:\n{log.read_text()}"
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"no answer in time:\n{log.read_text()}"
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _checkout_head() -> str:
    config = Config()
    config.set_main_option("script_location", str(ROOT / "modelport" / "migrations"))
    (head,) = ScriptDirectory.from_config(config).get_heads()
    return head


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, float]]:
    """The wheel, built once for this module, and the seconds the build took."""
    started = time.monotonic()
    built = build_wheel(tmp_path_factory.mktemp("dist"))
    yield built, time.monotonic() - started


def test_the_wheel_holds_the_package_data_and_nothing_stale(wheel: tuple[Path, float]) -> None:
    with zipfile.ZipFile(wheel[0]) as archive:
        names = {n for n in archive.namelist() if n.startswith("modelport/")}
    package = ROOT / "modelport"
    for folder in PACKAGE_DATA:
        for path in (package / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                assert str(path.relative_to(ROOT)) in names, f"the wheel lacks {path}"
    assert "modelport/migrations/alembic.ini" in names
    assert not [n for n in names if n.endswith(".pyc")]
    # setuptools keeps deleted files in build/lib and ships them again.
    stale = sorted(n for n in names if not (ROOT / n).is_file())
    assert not stale, f"the wheel has files the checkout no longer has (rm -rf build/): {stale}"


def test_an_installed_wheel_migrates_a_database_and_serves(
    wheel: tuple[Path, float], tmp_path: Path
) -> None:
    assert ROOT not in tmp_path.parents
    started = time.monotonic()
    venv = tmp_path / "venv"
    install(wheel[0], venv)
    installed = time.monotonic() - started
    work = tmp_path / "work"
    work.mkdir()
    database = work / "modelport.db"
    env = _outside_env(venv, f"sqlite:///{database}", work / "instance")
    bin_ = venv / "bin"

    def run(*command: str, stdin: str | None = None) -> str:
        return ok(
            run_command([str(bin_ / command[0]), *command[1:]], env=env, cwd=work, input=stdin)
        )

    where = run(
        "python", "-c", "import modelport; print(modelport.__file__, modelport.MIGRATIONS_DIR)"
    )
    module, migrations = (Path(p) for p in where.split())
    assert venv in module.parents, f"modelport was imported from {module}, not the venv"
    assert venv in migrations.parents and (migrations / "env.py").is_file()

    run("modelport", "db", "upgrade")
    with contextlib.closing(sqlite3.connect(database)) as connection:
        (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == _checkout_head()
    assert re.search(
        rf"^{version} \(head\)", run("flask", "--app", "modelport", "db", "current"), re.M
    )
    assert "Created administrator" in run(
        "modelport", "create-admin", "--email", "admin@example.com", "--name", "Admin",
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert "iris" in run("modelport", "demo", "--if-empty")

    with serving(venv, env, work) as url:
        ready = requests.get(f"{url}/readyz", timeout=60)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "models": "ok"}
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        # Templates, translations and static files come from the wheel too.
        korean = {"Accept-Language": "ko"}
        page = requests.get(f"{url}/auth/login", headers=korean, timeout=10).text
        assert "csrf_token" in page and "로그인" in page
        assert requests.get(f"{url}/static/css/modelport.css", timeout=10).status_code == 200
    print(
        f"built in {wheel[1]:.0f} s, installed in {installed:.0f} s,"
        f" checked in {time.monotonic() - started - installed:.0f} s"
    )
