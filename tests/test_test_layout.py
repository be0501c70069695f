"""The tests' own layout: helpers come from tests/support, never from a conftest or a test.

A conftest.py holds fixtures, hooks and options only; a test module holds tests. Whatever
two files share (factories, HTTP helpers, servers) lives in tests/support and is imported
from there, as the Flask tutorial keeps its test helpers out of conftest.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str) -> list[tuple[int, str]]:
    """(line, module) of every import in the source of module ``name`` (not a package),
    relative ones resolved; for ``from a import b`` both ``a`` and ``a.b`` (``b`` may be a
    module)."""
    package = name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def is_test_or_conftest(module: str) -> bool:
    last = module.rpartition(".")[2]
    return last == "conftest" or last.startswith("test_")


def layout_violations(source: str, name: str, shown: str) -> list[str]:
    """``shown:line: imports module`` for each import of a conftest or a test module."""
    return [
        f"{shown}:{line}: imports {module}"
        for line, module in sorted(set(imported_modules(source, name)))
        if module.split(".")[0] == "tests" and is_test_or_conftest(module)
    ]


def violations_in(path: Path) -> list[str]:
    name = module_name(path)
    if path.name == "__init__.py":
        name += ".__init__"  # relative imports count from the package itself
    return layout_violations(path.read_text(), name, str(path.relative_to(ROOT)))


def test_no_file_imports_from_a_conftest_or_a_test_module() -> None:
    found = [v for path in sorted(TESTS.rglob("*.py")) for v in violations_in(path)]
    assert found == [], "move the helper to tests/support:\n" + "\n".join(found)


def conftest_extras(path: Path) -> list[str]:
    """Top-level statements of a conftest.py other than imports, fixtures and hooks."""
    relative = path.relative_to(ROOT)
    found = []
    for index, node in enumerate(ast.parse(path.read_text(), str(path)).body):
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.FunctionDef):
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if node.name.startswith("pytest_") or any(
                d.startswith(("pytest.fixture", "pytest.hookimpl")) for d in decorators
            ):
                continue
        what = getattr(node, "name", type(node).__name__)
        found.append(f"{relative}:{node.lineno}: {what} is neither a fixture nor a hook")
    return found


def test_conftest_files_hold_only_fixtures_and_hooks() -> None:
    found = [e for path in sorted(TESTS.rglob("conftest.py")) for e in conftest_extras(path)]
    assert found == [], "move it to tests/support:\n" + "\n".join(found)


def test_the_check_sees_every_form_of_import() -> None:
    """The check above catches each spelling of the imports it forbids, and only those."""
    source = (
        "import tests.conftest\n"
        "from tests.api.conftest import bearer\n"
        "from . import test_gunicorn\n"
        "from .conftest import EMAIL\n"
        "def helper():\n"
        "    from tests.test_pages import parse\n"
        "from ..auth.test_redirects import HOSTILE\n"
        "from tests.support.servers import gunicorn\n"
        "from . import conftest_helpers, testing\n"
        "import test_pages_elsewhere\n"
    )
    found = layout_violations(source, "tests.ops.test_probe", "probe.py")
    assert [int(v.split(":")[1]) for v in found] == [1, 2, 3, 4, 6, 7], found
    assert "probe.py:3: imports tests.ops.test_gunicorn" in found
    assert "probe.py:7: imports tests.auth.test_redirects" in found
