"""Browser tests: a real gunicorn server and the system's Chromium driven by Playwright.

The server runs as production does (gunicorn, two worker processes sharing one SQLite file),
only with the testing configuration's cheap password hashing. The helpers (Chromium's path,
the server's environment, signing up and in) live in tests/support/browser.py.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO_ROOT,
    LiveServer,
    missing,
    no_control_socket,
    open_context,
    server_environment,
    wait_healthy,
)
from tests.support.servers import free_port


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The system Chromium, or skip (fail in CI) with the reason."""
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing: install the Debian package `chromium`")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("Playwright for Python is not installed (pip install -e '.[dev]')")
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def live_server(
    chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """gunicorn with two workers on a free port, on a freshly migrated SQLite file."""
    base = tmp_path_factory.mktemp("live")
    instance = base / "instance"
    database_url = f"sqlite:///{base / 'live.db'}"
    env = server_environment(instance, database_url)
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
                *no_control_socket(),
                "modelport:create_app()",
            ],
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", database_url, log)
    try:
        wait_healthy(server.url, process, log)
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
        missing(f"Chromium at {chromium_path} did not start: {exc}")
    yield chromium
    chromium.close()
    playwright.stop()


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


@pytest.fixture
def console_errors(page: Any) -> list[str]:
    """Console errors of ``page`` (a CSP violation by our own pages would show up here)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors
