"""The documentation keeps the promises the code makes."""

from __future__ import annotations

import functools
import inspect
import re
from pathlib import Path

import pytest

from modelport.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DOC = (ROOT / "docs" / "configuration.md").read_text()


def test_every_setting_is_documented_with_its_default():
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "(empty)"
        row = f"| `MODELPORT_{setting.name}` | {default} |"
        assert row in CONFIG_DOC, f"docs/configuration.md lacks the row: {row}"


def test_every_variable_the_code_reads_is_documented():
    used: set[str] = set()
    tests = [*(ROOT / "tests").rglob("conftest.py"), *(ROOT / "tests" / "support").rglob("*.py")]
    for path in [*(ROOT / "modelport").rglob("*.py"), *tests]:
        used |= set(re.findall(r"MODELPORT_[A-Z][A-Z0-9_]*[A-Z0-9]", path.read_text()))
    documented = set(re.findall(r"`(MODELPORT_[A-Z0-9_]+)`", CONFIG_DOC))
    # MODELPORT_REMEMBER_COOKIE is a Flask config key, not an environment variable.
    missing = sorted(used - documented - {"MODELPORT_REMEMBER_COOKIE"})
    assert not missing, f"undocumented variables: {missing}"


def test_readme_first_screen_has_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    first_screen = "\n".join(readme.splitlines()[:40])
    commands = re.findall(r"^\s*(make \w+)\s*$", first_screen, flags=re.M)
    assert commands == ["make run", "make test"], commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M), ".ci/run must call the README's make test"


# ---- docs/api.md and docs/inference-protocol.md ---------------------------------------------

API_DOC = ROOT / "docs" / "api.md"
V2_DOC = ROOT / "docs" / "inference-protocol.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# A path in a code span, with an optional method before it: `POST /api/v1/tokens`. The
# prefix `/api/v1` alone names the API, not a route.
DOCUMENTED_PATH = re.compile(
    r"`(?:(" + "|".join(METHODS) + r") )?(/(?:api/v1[/?]|v2(?=[/?`]))[^`\s]*)`"
)


@functools.cache
def _api_app():  # noqa: ANN202
    import modelport

    return modelport.create_app({"ENV": "testing", "DATABASE_URL": "sqlite://"})


def _documented(text: str) -> list[tuple[str | None, str]]:
    """(method or None, path) of every /api/v1 and /v2 path in a code span, placeholders
    such as ``<name>`` or ``<n>`` filled with ``1``."""
    found = []
    for method, path in DOCUMENTED_PATH.findall(text):
        path = re.sub(r"<[^>/]+>", "1", path.split("?", 1)[0])
        found.append((method or None, path))
    return found


def _match(adapter, method: str | None, path: str):  # noqa: ANN001, ANN202
    """The rule ``path`` reaches (with ``method``, if given), or None."""
    from werkzeug.exceptions import MethodNotAllowed, NotFound
    from werkzeug.routing import RequestRedirect

    try:
        rule, _args = adapter.match(path, method=method or "GET", return_rule=True)
    except MethodNotAllowed:
        return None if method else "path only"
    except (NotFound, RequestRedirect):
        return None
    return rule


def _api_rules(app, prefix: str) -> set[tuple[str, str]]:  # noqa: ANN001
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule == prefix or rule.rule.startswith(prefix + "/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_every_documented_api_path_is_a_route():
    app = _api_app()
    adapter = app.url_map.bind("localhost")
    for doc in (API_DOC, V2_DOC):
        paths = _documented(doc.read_text())
        assert paths, f"{doc.name} documents no path"
        wrong = [(m, p) for m, p in paths if _match(adapter, m, p) is None]
        assert not wrong, f"{doc.name} documents paths the app does not route: {wrong}"


@pytest.mark.parametrize(("doc", "prefix"), [(API_DOC, "/api/v1"), (V2_DOC, "/v2")])
def test_every_api_route_is_documented(doc: Path, prefix: str):
    app = _api_app()
    adapter = app.url_map.bind("localhost")
    reached = set()
    for method, path in _documented(doc.read_text()):
        if method:
            rule = _match(adapter, method, path)
            if rule is not None:
                reached.add((method, rule.rule))
    missing = sorted(_api_rules(app, prefix) - reached)
    assert not missing, f"{doc.name} lacks `METHOD path` for the routes {missing}"


def _error_codes_in_code() -> set[str]:
    """Every ``code`` an /api error body can carry, read from the code that raises it."""
    from modelport import errors

    patterns = [
        r'ApiError\(\s*\w+,\s*"([a-z_]+)"',  # also errors.domain_http_error's codes
        r'_body_error\(\s*\d+,\s*"([a-z_]+)"',  # api/parser.py
        r'Registry(?:Error|Conflict|NotFound)\(\s*"([a-z_]+)"',  # errors.registry_status
        r'AuthError\(\s*(?:"[^"]*"\s*)+,\s*"([a-z_]+)"',
        r'\berror_code = "([a-z_]+)"',
        r'ReportError\(\s*"([a-z_]+)"',  # errors.report_status
    ]
    codes = set(errors.CODES.values())
    codes |= set(re.findall(r'return "([a-z_]+)"', inspect.getsource(errors._code)))
    for path in (ROOT / "modelport").rglob("*.py"):
        text = path.read_text()
        for pattern in patterns:
            codes |= set(re.findall(pattern, text))
    # register_mlflow/configure_mlflow are the CLI's; a model that needs mlflow and lacks
    # it is 503 model_not_ready on the API.
    return codes - {"mlflow_missing"}


def _error_table_codes(text: str) -> set[str]:
    section = text.split("\n## Errors", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if re.match(r"\|\s*`", line)]
    return {code for row in rows for code in re.findall(r"`([a-z_]+)`", row.split("|")[1])}


def test_every_api_error_code_is_in_the_error_table():
    documented = _error_table_codes(API_DOC.read_text())
    collected = _error_codes_in_code()
    # The patterns must keep finding what they were written for.
    assert {"bad_request", "model_not_found", "invalid_json", "model_exists"} <= collected
    assert {"basic_not_allowed", "csrf_failed", "database_unavailable"} <= collected
    assert {"prediction_failed", "invalid_content_type", "same_version"} <= collected
    missing = sorted(collected - documented)
    assert not missing, f"docs/api.md's error table lacks the codes {missing}"


def test_docs_send_no_one_to_files_outside_the_repository():
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = doc.read_text()
        for banned in ("../shared", "DESIGN.md", "reference/open-inference-protocol.md"):
            assert banned not in text, f"{doc.relative_to(ROOT)} refers to {banned}"
