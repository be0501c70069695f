"""Browser tests: the system's Chromium, the gunicorn it talks to, and what a visitor does.

Chromium is the Debian package at ``/usr/bin/chromium``; Playwright never downloads a
browser here. Without Chromium the tests skip with the reason, unless
``MODELPORT_TEST_REQUIRE_BROWSER=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from modelport.config import SETTINGS

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("MODELPORT_TEST_REQUIRE_BROWSER") == "1"
REPO_ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = REPO_ROOT / "modelport" / "translations"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Playwright waits this long (ms) for an element or a navigation before failing a test.
ACTION_TIMEOUT_MS = 15_000
SERVER_START_SECONDS = 30
HANGUL = re.compile(r"[\uac00-\ud7a3]")
# Long, uncommon and not built from the e-mail or name: the password policy accepts it.
PASSWORD = "violet tractor harbour nineteen"


def missing(reason: str) -> None:
    """Skip with ``reason``, or fail where the browser is required (CI)."""
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (MODELPORT_TEST_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@dataclass
class LiveServer:
    """A running gunicorn serving Modelport."""

    url: str
    database_url: str
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def server_environment(instance: Path, database_url: str) -> dict[str, str]:
    """The live server's environment: the testing configuration, nothing from the shell."""
    # Settings from the developer's shell or a .env must not leak into the server under test.
    ours = {f"MODELPORT_{s.name}" for s in SETTINGS}
    env = {k: v for k, v in os.environ.items() if k not in ours}
    env |= {
        "MODELPORT_ENV": "testing",
        "MODELPORT_INSTANCE_PATH": str(instance),
        "MODELPORT_DATABASE_URL": database_url,
        # One key for both workers: testing would otherwise pick one per process, and each
        # worker would reject the cookies the other signed.
        "MODELPORT_SECRET_KEY": secrets.token_urlsafe(36),  # 48 characters
        "MODELPORT_MAIL_SERVER": "",  # e-mails go to the log
        "MODELPORT_LOG_FORMAT": "text",
        # Every test signs up from 127.0.0.1: far more often than one visitor would.
        "MODELPORT_SIGNUP_LIMIT": "1000 per hour",
    }
    return env


def wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer /healthz in time:\n{log.read_text()}")


def no_control_socket() -> list[str]:
    """gunicorn 27 opens a control socket at one fixed path in $HOME; two servers at once
    (an xdist worker, `make run`, a benchmark) would fight over it."""
    from importlib.metadata import version

    major = int(version("gunicorn").split(".")[0])
    return ["--no-control-socket"] if major >= 27 else []


def open_context(browser: Any, server: LiveServer) -> Any:
    """A new browser profile (no cookies, asking for English) whose relative URLs go to
    ``server``; the caller closes it."""
    made = browser.new_context(base_url=server.url, locale="en-US")
    made.set_default_timeout(ACTION_TIMEOUT_MS)
    return made


@cache
def catalogue(locale: str) -> Any:
    """The compiled catalogue the server uses for ``locale`` (English: none)."""
    from babel.support import NullTranslations, Translations

    if locale == "en":
        return NullTranslations()
    folder = TRANSLATIONS / locale / "LC_MESSAGES"
    if (folder / "messages.po").exists() and not (folder / "messages.mo").exists():
        # The server would show English to everyone who picked this language.
        pytest.fail(f"{folder}/messages.mo is missing: run `make translations`")
    return Translations.load(str(TRANSLATIONS), [locale])


def translate(locale: str, msgid: str, **values: Any) -> str:
    """``msgid`` as the server shows it in ``locale``, with %(name)s values filled in."""
    text = catalogue(locale).gettext(msgid)
    return text % values if values else text


def translated(locale: str, msgid: str) -> bool:
    """Whether the page text for ``msgid`` in ``locale`` can be asserted: English always,
    another language once its catalogue translates the message."""
    return locale == "en" or catalogue(locale).gettext(msgid) != msgid


def submit(page: Any, action: str, **fields: str) -> None:
    """Fill the form posting to ``action`` and press its submit button."""
    form = page.locator(f'form[action="{action}"]')
    for name, value in fields.items():
        form.locator(f'[name="{name}"]').fill(value)
    form.locator('button[type="submit"]').click()


def sign_up(page: Any, email: str, password: str = PASSWORD) -> None:
    """Create an account through the signup page; ends on the sign-in page."""
    page.goto("/auth/signup")
    submit(page, "/auth/signup", email=email, name="Test", password=password, password2=password)
    page.wait_for_url("**/auth/login")


def sign_in(page: Any, email: str, *, remember: bool) -> None:
    """Sign in from the navigation's link; ends on the account page."""
    page.locator('nav a[href="/auth/login"]').click()
    page.wait_for_url("**/auth/login")
    if remember:
        page.locator('form[action="/auth/login"] [name="remember"]').check()
    submit(page, "/auth/login", email=email, password=PASSWORD)
    page.wait_for_url("**/account")


def user_rows(server: LiveServer, email: str) -> int:
    """How many accounts the live server's database holds for ``email``."""
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT count(*) FROM users WHERE email = :email"), {"email": email}
            ).scalar_one()
    finally:
        engine.dispose()
