"""Layers point one way: web → domain services → models and storage.

Domain modules raise domain errors and never speak HTTP: they import no view code, no HTTP
error and not the request. Only the two modules that are the browser's session by nature
read the request (docs/architecture.md says why).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "modelport"

DOMAIN = (
    "modelport/serving/",
    "modelport/auth/",
    "modelport/models/",
    "modelport/analytics/",
    "modelport/mlops/",
)
WEB = ("modelport.api", "modelport.errors", "modelport.pages", "modelport.responses")
HTTP = {("werkzeug.exceptions", "*"), ("flask", "abort"), ("flask", "request")}
HTTP |= {("flask", "session"), ("flask", "g"), ("flask", "Response"), ("flask", "make_response")}
# The server-checked session behind the cookie, and the device cookie: request-bound by
# nature, and still no HTTP errors or views.
REQUEST_BOUND = {"modelport/auth/sessions.py", "modelport/auth/devices.py"}


def _domain_modules() -> list[Path]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(DOMAIN) and "/web/" not in relative:
            found.append(path)
    return found


def _imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, name) for every import in the file, inside functions too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, "*") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
    return found


def _violations(path: Path) -> list[str]:
    relative = path.relative_to(ROOT).as_posix()
    found = []
    for line, module, name in _imports(path):
        target = f"{module}.{name}"
        web = any(target == w or target.startswith(f"{w}.") for w in WEB)
        if web or (target.startswith("modelport.") and ".web." in f"{target}."):
            found.append(f"{relative}:{line} imports the web layer ({target})")
        elif (module, name) in HTTP or (module, "*") in HTTP:
            if relative not in REQUEST_BOUND or module == "werkzeug.exceptions" or name == "abort":
                found.append(f"{relative}:{line} speaks HTTP ({module}.{name})")
        elif relative.startswith("modelport/models/") and module.startswith(
            ("modelport.serving", "modelport.auth", "modelport.analytics")
        ):
            found.append(f"{relative}:{line}: models import a service ({module})")
    return found


def test_the_checker_finds_each_kind_of_violation(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    source = tmp_path / "modelport" / "serving" / "bad.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "from flask import request\n"
        "def f():\n"
        "    from werkzeug.exceptions import NotFound\n"
        "    from modelport.serving.web import forms\n"
        "    from modelport import errors\n"
    )
    found = _violations(source)
    assert [entry.split(" ", 1)[0] for entry in found] == [
        "modelport/serving/bad.py:1",
        "modelport/serving/bad.py:3",
        "modelport/serving/bad.py:4",
        "modelport/serving/bad.py:5",
    ]


def test_domain_modules_import_no_web_code_and_speak_no_http() -> None:
    modules = _domain_modules()
    assert len(modules) > 30  # the walk found the package
    found = [entry for path in modules for entry in _violations(path)]
    assert not found, "\n".join(found)
