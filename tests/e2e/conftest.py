"""Browser tests: a real gunicorn server and the system's Chromium driven by Playwright.

The server runs as production does (gunicorn, two worker processes sharing one SQLite file),
only with the testing configuration's cheap password hashing. Chromium is the Debian package
at ``/usr/bin/chromium``; Playwright never downloads a browser here. Without Chromium the
tests skip with the reason, unless ``MODELPORT_TEST_REQUIRE_BROWSER=1`` (CI) makes that a
failure.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def _missing(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (MODELPORT_TEST_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The system Chromium, or skip (fail in CI) with the reason."""
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing: install the Debian package `chromium`")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("Playwright for Python is not installed (pip install -e '.[dev]')")
    return str(CHROMIUM)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LiveServer:
    """A running gunicorn serving Modelport."""

    url: str
    database_url: str
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _server_environment(instance: Path, database_url: str) -> dict[str, str]:
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


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
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


def _no_control_socket() -> list[str]:
    """gunicorn 27 opens a control socket at one fixed path in $HOME; two servers at once
    (an xdist worker, `make run`, a benchmark) would fight over it."""
    from importlib.metadata import version

    major = int(version("gunicorn").split(".")[0])
    return ["--no-control-socket"] if major >= 27 else []


@pytest.fixture(scope="session")
def live_server(
    chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """gunicorn with two workers on a free port, on a freshly migrated SQLite file."""
    base = tmp_path_factory.mktemp("live")
    instance = base / "instance"
    database_url = f"sqlite:///{base / 'live.db'}"
    env = _server_environment(instance, database_url)
    # The schema comes from the migrations, exactly as `make run` does it.
    migrated = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "modelport", "db", "upgrade"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if migrated.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed:\n{migrated.stdout}{migrated.stderr}")
    # The demo models, as `make run` loads them on an empty database.
    demo = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "modelport", "demo", "--if-empty"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if demo.returncode != 0:
        raise RuntimeError(f"modelport demo failed:\n{demo.stdout}{demo.stderr}")
    port = free_port()
    log = base / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                "2",
                "-b",
                f"127.0.0.1:{port}",
                "--graceful-timeout",
                "5",
                *_no_control_socket(),
                "modelport:create_app()",
            ],
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", database_url, log)
    try:
        _wait_healthy(server.url, process, log)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """A failing browser test shows the end of the server's log beside the traceback."""
    report = yield
    server = getattr(item, "funcargs", {}).get("live_server")
    if report.failed and isinstance(server, LiveServer) and server.log.exists():
        report.sections.append(("gunicorn log (last lines)", server.log_tail()))
    return report


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    """One headless Chromium for the session (a fresh context per test keeps tests apart)."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
    except Exception as exc:
        playwright.stop()
        _missing(f"Chromium at {chromium_path} did not start: {exc}")
    yield chromium
    chromium.close()
    playwright.stop()


def open_context(browser: Any, server: LiveServer) -> Any:
    """A new browser profile (no cookies, asking for English) whose relative URLs go to
    ``server``; the caller closes it."""
    made = browser.new_context(base_url=server.url, locale="en-US")
    made.set_default_timeout(ACTION_TIMEOUT_MS)
    return made


@pytest.fixture
def context(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    made = open_context(browser, live_server)
    yield made
    made.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


@pytest.fixture
def other_site() -> Iterator[Any]:
    """A second web site (http://localhost:<port>, another site than 127.0.0.1) that serves
    one attacker-controlled HTML page, set with ``other_site.serve(html)``."""

    class Site:
        html = "<!doctype html><title>empty</title>"
        url = ""

        def serve(self, html: str) -> str:
            self.html = html
            return f"{self.url}/attack.html"

    site = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = site.html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.url = f"http://localhost:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


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


@pytest.fixture
def console_errors(page: Any) -> list[str]:
    """Console errors of ``page`` (a CSP violation by our own pages would show up here)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


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
