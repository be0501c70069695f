"""Checklist 34: SQL is parameterised everywhere; hostile strings are data, not SQL."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.databases import table_counts
from tests.support.html import csrf_token
from tests.support.users import PASSWORD, login, make_user

ROOT = Path(__file__).resolve().parent.parent
INJECTIONS = ["' OR 1=1--", "' OR '1'='1", '" OR ""="', "%' OR 1=1 #", "1; DROP TABLE users; --"]


def test_no_sql_is_built_from_formatted_strings():
    """No text() or execute() call is fed an f-string, % or .format() string."""
    pattern = re.compile(
        r"""(text|execute|exec_driver_sql)\(\s*(f["']|["'][^"']*["']\s*(%|\.format))"""
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "modelport").rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_ruff_bandit_sql_rules_pass():
    """flake8-bandit's S608 (SQL built from strings) finds nothing in the package."""
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run(
        [str(ruff), "check", "--select", "S608,S610,S611", "--no-cache", str(ROOT / "modelport")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.db
@pytest.mark.parametrize("hostile", INJECTIONS)
def test_hostile_strings_in_login_signup_and_search_are_plain_data(app, client, hostile):
    make_user(app, "admin@example.com", role="admin", name="Admin")
    make_user(app, "ann@example.com", name="Ann")
    before = table_counts(app)

    # Sign-in with an injection as the e-mail or password: refused like any wrong password.
    for email, password in ((hostile, PASSWORD), ("ann@example.com", hostile)):
        response = client.post(
            "/auth/login",
            data={"email": email, "password": password, "csrf_token": csrf_token(client)},
        )
        assert response.status_code == 400
    assert table_counts(app) == before

    # The admin search treats it as text to look for: nobody matches, nobody extra shows up.
    login(client, "admin@example.com")
    page = client.get("/admin/users", query_string={"q": hostile}).get_data(as_text=True)
    assert "ann@example.com" not in page
    assert "admin@example.com" not in page.split("<tbody>", 1)[-1]
