"""The project's wheel, built from the checkout and installed in a virtualenv of its own
(tests/test_packaging.py, tests/deploy/test_image_steps.py).

Dependencies come from wheels kept in ``~/.cache/modelport-test-wheels``
(``$XDG_CACHE_HOME`` honoured): the first run fills the folder from the package index with
the pins of requirements.txt, later runs install offline.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:  # noqa: ANN003
    """A command's result, its output captured; never raises for its exit code."""
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)


def ok(result: subprocess.CompletedProcess) -> str:
    """The output of a command that must have succeeded (else its output's tail fails the test)."""
    assert result.returncode == 0, (
        f"{' '.join(map(str, result.args))} exited with {result.returncode}:\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout


def build_wheel(destination: Path) -> Path:
    """``pip wheel . --no-deps`` from the checkout, after removing build/ as ``make wheel``
    does: setuptools would ship again what an earlier build left there of since moved or
    deleted modules. One process builds in the checkout's build/ folder at a time, whatever
    the xdist groups do."""
    key = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    with (Path(tempfile.gettempdir()) / f"modelport-build-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(ROOT / "build", ignore_errors=True)
        ok(
            run(
                [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-w", str(destination)],
                cwd=ROOT,
            )
        )
    (wheel,) = destination.glob("modelport-*.whl")
    return wheel


def install(wheel: Path, venv: Path, extras: str = "") -> None:
    """A new virtualenv with the wheel (and ``extras``, e.g. ``postgres``) and its pinned
    dependencies, offline once the wheel folder holds them."""
    ok(run([sys.executable, "-m", "venv", "--without-pip", str(venv)]))
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    cache = Path(base) / "modelport-test-wheels"
    cache.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    wanted = [f"{wheel}[{extras}]" if extras else str(wheel), "-c", str(ROOT / "requirements.txt")]
    # Compiling every module of scipy, pandas & co. would take 20 s; imports compile lazily.
    offline = [*pip, "install", "--no-compile", "--no-index", "--find-links", str(cache)]
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be filling the folder
        if run([*offline, *wanted]).returncode == 0:
            return
        # A cold folder, or the pins changed: fetch the missing wheels (needs the index).
        ok(run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(cache), *wanted]))
        for stale in cache.glob("modelport-*.whl"):  # never install an old build of ours
            stale.unlink()
        ok(run([*offline, *wanted]))
