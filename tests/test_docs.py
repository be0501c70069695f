"""The documentation keeps the promises the code makes."""

from __future__ import annotations

import re
from pathlib import Path

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
    for path in [*(ROOT / "modelport").rglob("*.py"), *(ROOT / "tests").rglob("conftest.py")]:
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
