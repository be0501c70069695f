"""The pictures of docs/guide.md: ``make screenshots`` writes docs/images/guide/*.png.

A throwaway Modelport in a temporary folder, made the way a newcomer makes one: the schema by
``flask db upgrade``, the demo models and datasets by ``modelport demo``, an administrator by
``modelport create-admin``; a member and an API token of theirs by the accounts and tokens
services. A few hundred predictions, with the true answers of some, go through the app's own
API (Flask's test client, a member's token), so every record and piece of feedback is the
app's work; only the clock the records read is set back, to spread them over the past week.
Then ``modelport serve`` (gunicorn) serves the folder, and Playwright drives the system's
Chromium (``/usr/bin/chromium``, never a downloaded browser) over each page of ``PAGES``.
Nothing leaves the machine.

    python scripts/screenshots.py [--out DIR] [--only NAME ...] [--keep]

Korean pictures need a font with Hangul (Debian: ``fonts-noto-cjk``); without one the Korean
pages would show boxes, and the script stops with that message instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT = REPO_ROOT / "docs" / "images" / "guide"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
CHROMIUM_ARGS += ["--disable-background-networking", "--disable-component-update"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# A full-page picture stops here: the page's top is what the guide talks about.
TALLEST = 1600
PASSWORD = "copper lantern meadow forty two"  # noqa: S105 - the throwaway accounts
ADMIN = ("ada@example.com", "Ada Lovelace")
MEMBER = ("sam@example.com", "Sam Park")
TIMEOUT_MS = 30_000
# Predictions per model over the past week (iris gets the rest of ``predictions``).
OTHERS = {"breast-cancer": 0.15, "diabetes": 0.2, "digits": 0.1}


class ScreenshotError(RuntimeError):
    """The pictures cannot be made as they should (a missing browser, font or server)."""


# ---- the pages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shot:
    """One page of the guide: its picture is ``<name>.png`` (``-ko``: in Korean, ``-phone``:
    390 px wide). ``route`` is the app's URL rule; its ``<placeholders>`` are filled from
    ``params``, then from what the data made (``record_id``)."""

    name: str
    route: str
    visitor: str = "member"  # "guest", "member" or "admin"
    params: dict[str, str] = field(default_factory=dict)
    query: str = ""
    action: Callable[[Any, dict[str, Any]], None] | None = None  # (page, facts) before it
    full: bool = False  # the whole page (up to TALLEST px), not only the first screen
    korean: bool = False
    phone: bool = False

    def path(self, facts: dict[str, Any]) -> str:
        path = self.route
        for key, value in {**facts, **self.params}.items():
            path = path.replace(f"<{key}>", str(value))
        return path + (f"?{self.query}" if self.query else "")


def _fill_signup(page: Any, facts: dict[str, Any]) -> None:
    form = page.locator('form[action="/auth/signup"]')
    form.locator('[name="email"]').fill("jo@example.com")
    form.locator('[name="name"]').fill("Jo Rivera")


def _fill_login(page: Any, facts: dict[str, Any]) -> None:
    page.locator('form[action="/auth/login"] [name="email"]').fill(MEMBER[0])


def _predict(page: Any, facts: dict[str, Any]) -> None:
    """Press Predict on the model page's form (its example values); the answer is shown."""
    page.locator('form[action$="#result"] button[type=submit]').click()
    page.locator("#result").wait_for(state="visible")
    page.locator("#form-title").scroll_into_view_if_needed()


def _batch(page: Any, facts: dict[str, Any]) -> None:
    """Upload the model's example CSV; the predictions come back as a download."""
    example = page.request.get(page.url.split("?")[0].removesuffix("/batch") + "/example.csv")
    page.locator('#batch-form input[type="file"]').set_input_files(
        {"name": "flowers.csv", "mimeType": "text/csv", "buffer": example.body()}
    )
    with page.expect_download():
        page.locator("#batch-form button[type=submit]").click()
    page.locator("#batch-download").wait_for(state="visible")


def _feedback(page: Any, facts: dict[str, Any]) -> None:
    """Give the record's true answer from its page's form."""
    form = page.locator('form[action$="/feedback"]')
    form.locator('[name="actual"]').fill(facts["record_actual"])
    with page.expect_navigation():
        form.locator("button[type=submit]").click()


def _new_token(page: Any, facts: dict[str, Any]) -> None:
    """Create a token from the form: the page shows it, once."""
    form = page.locator('form[action="/account/tokens"]')
    form.locator('[name="name"]').fill("my first script")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    page.locator("#new-token").wait_for(state="visible")


def _swagger(page: Any, facts: dict[str, Any]) -> None:
    page.locator(".swagger-ui .opblock").first.wait_for(state="visible")


# In the order a newcomer meets them (docs/guide.md follows it). A page added to the app is
# one line here, one section with its picture in the guide.
PAGES: tuple[Shot, ...] = (
    Shot("home", "/", visitor="guest", korean=True, phone=True),
    Shot("signup", "/auth/signup", visitor="guest", action=_fill_signup),
    Shot("signin", "/auth/login", visitor="guest", action=_fill_login),
    Shot("models", "/models"),
    Shot("model", "/models/<name>", params={"name": "iris"}, action=_predict, korean=True),
    Shot("batch", "/models/<name>/batch", params={"name": "iris"}, action=_batch),
    Shot("predictions", "/predictions"),
    Shot("record", "/predictions/<record_id>", action=_feedback, full=True),
    Shot("account", "/account"),
    Shot("tokens", "/account/tokens", action=_new_token, full=True),
    Shot("api-docs", "/api/docs", action=_swagger),
    Shot("datasets", "/datasets"),
    Shot("dataset", "/datasets/<name>", params={"name": "iris-train"}),
    Shot("monitoring", "/monitoring", korean=True),
    Shot(
        "model-monitoring",
        "/models/<name>/monitoring",
        params={"name": "iris"},
        query="range=7d",
        full=True,
        korean=True,
        phone=True,
    ),
    Shot("drift", "/models/<name>/drift", params={"name": "iris"}, full=True),
    Shot("report", "/models/<name>/report", params={"name": "iris"}, full=True),
    Shot("admin-users", "/admin/users", visitor="admin"),
    Shot("admin-models", "/admin/models", visitor="admin"),
    Shot("admin-upload", "/admin/models/<name>/upload", visitor="admin", params={"name": "iris"}),
    Shot(
        "admin-schema",
        "/admin/models/<name>/versions/<number>/schema",
        visitor="admin",
        params={"name": "iris", "number": "1"},
    ),
)


def picture_names(shots: tuple[Shot, ...] = PAGES) -> list[str]:
    """The file names ``capture`` writes for ``shots``."""
    names = []
    for shot in shots:
        names.append(f"{shot.name}.png")
        if shot.korean:
            names.append(f"{shot.name}-ko.png")
        if shot.phone:
            names.append(f"{shot.name}-phone.png")
    return names


# ---- the data -------------------------------------------------------------------------------


def _environment(folder: Path) -> dict[str, str]:
    """The throwaway instance's settings, and nothing from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    env |= {
        "MODELPORT_ENV": "development",
        "MODELPORT_INSTANCE_PATH": str(folder / "instance"),
        "MODELPORT_DATABASE_URL": f"sqlite:///{folder / 'modelport.db'}",
        "MODELPORT_ARTIFACTS_DIR": str(folder / "artifacts"),
        "MODELPORT_SECRET_KEY": secrets.token_urlsafe(36),
        "MODELPORT_MAIL_SERVER": "",
        "MODELPORT_LOG_FORMAT": "text",
        "MODELPORT_METRICS": "false",
    }
    return env


def _flask(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    done = subprocess.run(  # noqa: S603 - our own interpreter and CLI
        [sys.executable, "-m", "flask", "--app", "modelport", *args],
        env=env,
        cwd=env["MODELPORT_INSTANCE_PATH"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise ScreenshotError(f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


@contextlib.contextmanager
def _clock(at: datetime) -> Iterator[None]:
    """Records written inside read ``at`` as the time (the app cannot be asked for the past)."""
    from modelport.serving import records

    real = records.utcnow
    records.utcnow = lambda: at
    try:
        yield
    finally:
        records.utcnow = real


def _moment(rng: random.Random, now: datetime) -> datetime:
    """A time in the past week, busier lately and in the working day."""
    days = min(rng.expovariate(0.45), 6.9)
    when = now - timedelta(days=days)
    hour = rng.choice([8, 9, 10, 10, 11, 13, 14, 14, 15, 16, 17, 20])
    when = when.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))
    return min(when, now - timedelta(minutes=rng.randrange(2, 90)))


def _rows(
    features: Any, target: Any, rng: random.Random, count: int, recent: bool, name: str
) -> tuple[list[dict[str, Any]], list[Any]]:
    """``count`` rows of the model's own data and their true answers. The last day's iris
    flowers are never setosa, so iris's recent inputs drift from its training sample."""
    if name == "iris" and recent:
        pool = [i for i in range(len(target)) if target.iloc[i] != "setosa"]
    else:
        pool = list(range(len(target)))
    picked = [rng.choice(pool) for _ in range(count)]
    rows = []
    for i in picked:
        row = {k: float(v) for k, v in features.iloc[i].items()}
        if name == "iris":
            row = {k: round(v * rng.uniform(0.96, 1.04), 1) for k, v in row.items()}
        rows.append(row)
    return rows, target.iloc[picked].tolist()  # tolist: plain Python values, for JSON


def seed(env: dict[str, str], predictions: int = 320, seed_value: int = 11) -> dict[str, Any]:
    """The member, the administrator, a token and ``predictions`` prediction requests with
    feedback on some; what the pages need to know (``record_id`` and its true answer)."""
    import modelport
    from modelport.auth import accounts, tokens
    from modelport.extensions import db
    from modelport.models import Role, User
    from modelport.serving.demo import demo_dataset

    _flask(env, "create-admin", "--email", ADMIN[0], "--name", ADMIN[1], "--password-stdin",
           stdin=PASSWORD + "\n")  # fmt: skip
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env | {"MODELPORT_LOG_LEVEL": "WARNING"})  # not a line per request
    try:
        app = modelport.create_app()
        with app.app_context():
            member = accounts.create_user(MEMBER[0], MEMBER[1], PASSWORD, role=Role.USER)
            _, secret = tokens.create_token(member, "analysis notebook")
            tokens.create_token(member, "nightly scoring job", scopes=["predict"])
            member_id = member.id
            db.session.remove()
        client = app.test_client()
        auth = {"Authorization": f"Bearer {secret}"}
        rng = random.Random(seed_value)
        now = datetime.now(UTC)
        data = {name: demo_dataset(name) for name in ["iris", *OTHERS]}
        plan = [(name, round(predictions * share)) for name, share in OTHERS.items()]
        plan.insert(0, ("iris", predictions - sum(n for _, n in plan)))
        facts: dict[str, Any] = {}
        for name, count in plan:
            features, target = data[name]
            for _ in range(count):
                at = _moment(rng, now)
                recent = now - at < timedelta(hours=24)
                rows, actuals = _rows(
                    features, target, rng, rng.choice([1, 1, 1, 2, 3]), recent, name
                )
                with _clock(at):
                    answer = client.post(
                        f"/api/v1/models/{name}/predict", json={"inputs": rows}, headers=auth
                    )
                if answer.status_code != 200:
                    continue
                record_id = answer.get_json()["record_id"]
                if len(rows) == 1 and recent and name == "iris":
                    facts = {"record_id": record_id, "record_actual": str(actuals[0])}
                    continue  # the record page gives this one its true answer
                if rng.random() < 0.55 and not (recent and rng.random() < 0.6):
                    given = client.post(
                        f"/api/v1/predictions/{record_id}/feedback",
                        json={"actuals": actuals},
                        headers=auth,
                    )
                    if given.status_code != 200:
                        raise ScreenshotError(f"feedback refused: {given.get_data(as_text=True)}")
        with app.app_context():
            if db.session.get(User, member_id) is None:
                raise ScreenshotError("the member vanished")
            db.session.remove()
            db.engines[None].dispose()
        if not facts:
            raise ScreenshotError("no recent one-row iris prediction for the record page")
        return facts
    finally:
        os.environ.clear()
        os.environ.update(saved)


def prepare(folder: Path, predictions: int = 320) -> tuple[dict[str, str], dict[str, Any]]:
    """A migrated SQLite database in ``folder`` with the demo models and the data above; its
    environment and the facts the pages need."""
    env = _environment(folder)
    Path(env["MODELPORT_INSTANCE_PATH"]).mkdir(parents=True, exist_ok=True)
    _flask(env, "db", "upgrade")
    _flask(env, "demo")
    return env, seed(env, predictions)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve(env: dict[str, str], folder: Path) -> Iterator[str]:
    """``modelport serve`` on a free loopback port; its URL, and the server stopped after."""
    url = f"http://127.0.0.1:{_free_port()}"
    log = folder / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "flask", "--app", "modelport", "serve"]
            + ["--bind", url.removeprefix("http://"), "--workers", "2"],
            env=env,
            cwd=env["MODELPORT_INSTANCE_PATH"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise ScreenshotError(f"modelport serve exited:\n{log.read_text()}")
            with (
                contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
                urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer,  # noqa: S310
            ):
                if answer.status == 200:
                    break
            if time.monotonic() > deadline:
                raise ScreenshotError(f"modelport serve did not get ready:\n{log.read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# ---- the browser ----------------------------------------------------------------------------

# Every chart of the page drawn by plotly.js (it sets ``element.data`` as it draws).
CHARTS_DRAWN = """() => Array.from(document.querySelectorAll('[data-chart]'))
    .every(e => e.data !== undefined && e.querySelector('.main-svg'))"""

# Each text drawn alone on a canvas in the page's own font, as a data URL.
GLYPHS = """(texts) => {
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 40;
  const pen = canvas.getContext('2d');
  pen.font = '28px ' + getComputedStyle(document.body).fontFamily;
  return texts.map((text) => {
    pen.clearRect(0, 0, 64, 40);
    pen.fillText(text, 2, 30);
    return canvas.toDataURL();
  });
}"""
# Characters no font draws (private use): Chromium shows each as the same empty box.
NO_GLYPH = ["\ue000", "\ue001"]


def glyph_images(page: Any, texts: list[str]) -> list[str]:
    """How ``page`` draws each of ``texts`` (PNG data URLs)."""
    return page.evaluate(GLYPHS, texts)


def hangul_drawn(page: Any) -> bool:
    """Whether ``page`` draws Hangul with real glyphs: two syllables differ from each other
    and from the box drawn for a character no font has. Without a Hangul font all three
    are the same box."""
    first, second, box = glyph_images(page, ["한", "글", NO_GLYPH[0]])
    return len({first, second, box}) == 3


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """The system's headless Chromium under Playwright."""
    if not CHROMIUM.exists():
        raise ScreenshotError(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


class Visitors:
    """Browser profiles by (visitor, language, viewport); a signed-in visitor signs in once
    through the sign-in page and the other profiles reuse the cookie."""

    def __init__(self, browser: Any, url: str, accounts: dict[str, tuple[str, str]]) -> None:
        self.browser, self.url, self.accounts = browser, url, accounts
        self.states: dict[str, Any] = {}

    def page(self, visitor: str, language: str, viewport: dict[str, int]) -> Any:
        state = self._state(visitor) if visitor != "guest" else None
        context = self.browser.new_context(
            base_url=self.url,
            locale="ko-KR" if language == "ko" else "en-US",
            viewport=viewport,
            device_scale_factor=1,
            storage_state=state,
            color_scheme="light",
            timezone_id="UTC",
        )
        context.set_default_timeout(TIMEOUT_MS)
        return context.new_page()

    def _state(self, visitor: str) -> Any:
        if visitor not in self.states:
            email, password = self.accounts[visitor]
            context = self.browser.new_context(base_url=self.url, locale="en-US")
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            page.goto("/auth/login")
            form = page.locator('form[action="/auth/login"]')
            form.locator('[name="email"]').fill(email)
            form.locator('[name="password"]').fill(password)
            form.locator("button[type=submit]").click()
            page.wait_for_url("**/account")
            self.states[visitor] = context.storage_state()
            context.close()
        return self.states[visitor]


def shoot(page: Any, shot: Shot, facts: dict[str, Any], language: str, out: Path) -> Path:
    """Open ``shot``'s page, do its action, wait for its charts and write the picture."""
    answer = page.goto(shot.path(facts))
    if answer is None or answer.status != 200:
        status = answer.status if answer else "no answer"
        raise ScreenshotError(f"{shot.path(facts)} answered {status}")
    if shot.action:
        shot.action(page, facts)
    page.wait_for_load_state("networkidle")
    page.wait_for_function(CHARTS_DRAWN)
    if language == "ko" and not hangul_drawn(page):
        raise ScreenshotError(
            "Chromium draws Hangul as boxes: install a Korean font (apt-get install fonts-noto-cjk)"
        )
    page.evaluate("() => document.fonts.ready")
    width = page.viewport_size["width"]
    options: dict[str, Any] = {"animations": "disabled", "caret": "hide", "scale": "css"}
    if shot.full:
        height = min(page.evaluate("() => document.documentElement.scrollHeight"), TALLEST)
        options |= {"full_page": True, "clip": {"x": 0, "y": 0, "width": width, "height": height}}
    out.mkdir(parents=True, exist_ok=True)
    suffix = {"ko": "-ko"}.get(language, "") + ("-phone" if width == PHONE["width"] else "")
    target = out / f"{shot.name}{suffix}.png"
    page.screenshot(path=str(target), **options)
    return target


def capture(
    browser: Any,
    url: str,
    shots: tuple[Shot, ...],
    out: Path,
    facts: dict[str, Any],
    accounts: dict[str, tuple[str, str]],
) -> list[Path]:
    """Pictures of ``shots`` served at ``url`` into ``out``: each in English at desktop width,
    and in Korean or at phone width where the shot asks; the files written."""
    visitors = Visitors(browser, url, accounts)
    written = []
    for shot in shots:
        variants = [("en", DESKTOP)]
        variants += [("ko", DESKTOP)] if shot.korean else []
        variants += [("en", PHONE)] if shot.phone else []
        for language, viewport in variants:
            page = visitors.page(shot.visitor, language, viewport)
            try:
                written.append(shoot(page, shot, facts, language, out))
            finally:
                page.context.close()
            print(f"  {written[-1].relative_to(out.parent)}", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNGs go")
    parser.add_argument("--only", nargs="*", default=None, help="these pages (names) only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary instance")
    parser.add_argument("--predictions", type=int, default=320)
    options = parser.parse_args(argv)
    shots = tuple(s for s in PAGES if options.only is None or s.name in options.only)
    unknown = set(options.only or ()) - {s.name for s in PAGES}
    if unknown:
        parser.error(f"no such page: {', '.join(sorted(unknown))}")
    folder = Path(tempfile.mkdtemp(prefix="modelport-screenshots-"))
    try:
        print(f"Preparing a demo instance in {folder}", flush=True)
        env, facts = prepare(folder, options.predictions)
        accounts = {"member": (MEMBER[0], PASSWORD), "admin": (ADMIN[0], PASSWORD)}
        with serve(env, folder) as url, chromium() as browser:
            print(f"Capturing {len(shots)} pages from {url}", flush=True)
            if options.only is None:
                for stale in options.out.glob("*.png"):
                    stale.unlink()
            capture(browser, url, shots, options.out, facts, accounts)
    except ScreenshotError as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 1
    finally:
        if options.keep:
            print(f"Kept {folder}")
        else:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
