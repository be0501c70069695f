"""The serving pages in a real browser: batch.js uploads with progress and hands over the
CSV as a download; a refused file shows its problems in place; the form predicts. The CSP
(no inline script) holds: nothing is reported on the console.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _csv(path: Path, rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", *IRIS])
        writer.writerows(rows)
    return path


def test_batch_page_downloads_predictions_and_shows_problems(
    page: Any, console_errors: list[str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page.goto("/models/iris/batch")
    rows = [[f"r{i}", 5.1, 3.5, 1.4, 0.2] for i in range(500)]
    page.set_input_files("#file", str(_csv(tmp_path / "rows.csv", rows)))
    with page.expect_download() as download_info:
        page.locator("#batch-form button[type=submit]").click()
    download = download_info.value
    assert download.suggested_filename == "iris-predictions.csv"
    answer = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert len(answer) == 500 and answer[0]["prediction"] == "setosa"
    assert answer[499]["id"] == "r499"
    link = page.locator("#batch-download")
    expect(link).to_be_visible()
    assert link.get_attribute("href").startswith("blob:")
    expect(page.locator("#batch-status")).to_contain_text("Done")
    assert not console_errors, console_errors

    # A bad row: the page stays, the problem table appears in place with the row number.
    page.set_input_files("#file", str(_csv(tmp_path / "bad.csv", [["a", 5.1, "wide", 1.4, 0.2]])))
    page.locator("#batch-form button[type=submit]").click()
    problems = page.locator("#batch-problems")
    expect(problems).to_contain_text("The file has 1 problem")
    expect(problems.locator("tbody td").first).to_have_text("1")
    expect(link).to_be_hidden()
    assert page.url.endswith("/models/iris/batch")
    # The browser reports the refused upload itself, and nothing else (no CSP violation).
    assert [e for e in console_errors if "422" not in e] == [], console_errors


def test_model_form_predicts_in_the_browser(page: Any, console_errors: list[str]) -> None:
    from playwright.sync_api import expect

    page.goto("/models/iris")
    page.fill("#feature-2", "1.4")
    page.fill("#feature-3", "0.2")
    page.locator('form[action="/models/iris#result"] button[type=submit]').click()
    expect(page.locator("#result .predicted")).to_have_text("setosa")
    expect(page.locator("#result meter")).to_have_count(3)
    assert not console_errors, console_errors


def test_signed_in_member_predicts_uploads_and_finds_both_in_history(
    page: Any, console_errors: list[str], tmp_path: Path
) -> None:
    """The acceptance journey: sign in, predict from the form, see the result, upload a CSV
    and download the predictions, then find both requests in the history."""
    import secrets

    from playwright.sync_api import expect

    from tests.support.browser import sign_in, sign_up

    email = f"predict-{secrets.token_hex(4)}@example.com"
    sign_up(page, email)
    page.goto("/")
    sign_in(page, email, remember=False)

    page.goto("/models")
    page.locator('a[href="/models/iris"]').first.click()
    page.wait_for_url("**/models/iris")
    page.fill("#feature-0", "6.7")
    page.fill("#feature-1", "3.0")
    page.fill("#feature-2", "5.2")
    page.fill("#feature-3", "2.3")
    page.locator('form[action="/models/iris#result"] button[type=submit]').click()
    expect(page.locator("#result .predicted")).to_have_text("virginica")

    page.goto("/models/iris/batch")
    rows = [[f"r{i}", 5.1, 3.5, 1.4, 0.2] for i in range(20)]
    page.set_input_files("#file", str(_csv(tmp_path / "mine.csv", rows)))
    with page.expect_download() as download_info:
        page.locator("#batch-form button[type=submit]").click()
    answer = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert [row["prediction"] for row in answer] == ["setosa"] * 20

    page.goto("/predictions")
    table = page.locator("main table")
    expect(table.locator("tbody tr")).to_have_count(2)
    first, second = table.locator("tbody tr").nth(0), table.locator("tbody tr").nth(1)
    # Newest first: the CSV upload (20 rows), then the form (1 row).
    expect(first).to_contain_text("iris")
    expect(first.locator("td").nth(5)).to_have_text("20")
    expect(second.locator("td").nth(5)).to_have_text("1")
    second.locator("a").click()
    expect(page.locator("main")).to_contain_text("virginica")
    assert not console_errors, console_errors
