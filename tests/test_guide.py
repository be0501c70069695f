"""docs/guide.md and its pictures (docs/images/guide, made by ``make screenshots``) stay in
step with each other, with scripts/screenshots.py's list of pages and with the app's routes."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.screenshots import GUIDE, IMAGES, REPO_ROOT, screenshots_script

IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def referenced_images() -> list[Path]:
    return [(GUIDE.parent / target).resolve() for target in IMAGE.findall(GUIDE.read_text())]


def test_every_picture_the_guide_shows_exists():
    missing = [str(p.relative_to(REPO_ROOT)) for p in referenced_images() if not p.is_file()]
    assert referenced_images(), "docs/guide.md shows no picture"
    assert not missing, f"docs/guide.md shows pictures that are not there: {missing}"


def test_every_picture_in_the_folder_is_in_the_guide():
    shown = set(referenced_images())
    unused = sorted(p.name for p in IMAGES.glob("*.png") if p.resolve() not in shown)
    assert not unused, f"docs/images/guide holds pictures the guide does not show: {unused}"


def test_the_folder_holds_what_the_script_writes():
    written = set(screenshots_script().picture_names())
    there = {p.name for p in IMAGES.glob("*.png")}
    assert there == written, (
        f"run `make screenshots`: missing {sorted(written - there)}, "
        f"no longer made {sorted(there - written)}"
    )


def test_every_page_of_the_script_is_in_the_guide():
    guide = GUIDE.read_text()
    missing = [s.route for s in screenshots_script().PAGES if f"`{s.route}`" not in guide]
    assert not missing, f"docs/guide.md does not name the pages {missing}"


def test_every_page_of_the_script_is_a_route_of_the_app():
    import modelport

    app = modelport.create_app({"ENV": "testing", "DATABASE_URL": "sqlite://"})
    # <int(max=2147483647):token_id> → <token_id>
    rules = {
        re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"<\1>", rule.rule)
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods
    }
    unknown = [s.route for s in screenshots_script().PAGES if s.route not in rules]
    assert not unknown, f"scripts/screenshots.py lists pages the app does not serve: {unknown}"


def test_the_readme_lists_the_guide():
    assert "(docs/guide.md)" in (REPO_ROOT / "README.md").read_text()
