"""``/api/v1/datasets`` and the dataset pages for each kind of caller (issue 11, items 1–2)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.databases import table_counts
from tests.support.datasets import GOOD_CSV, parquet_bytes, small_frame, stored_files, upload
from tests.support.html import csrf_token, parse, visible_text
from tests.support.tokens import issue_token
from tests.support.users import login, make_user


@pytest.fixture
def app(app_factory: Any, tmp_path: Path) -> Flask:
    app = app_factory(ARTIFACTS_DIR=str(tmp_path / "artifacts"), DATASET_MAX_BYTES="100000")
    make_user(app, "admin@example.com", name="Admin", role="admin")
    make_user(app, "ann@example.com", name="Ann")
    return app


def signed_in(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def admin_token(app: Flask, scopes: list[str]) -> dict[str, str]:
    from modelport.auth.accounts import find_user_by_email

    with app.app_context():
        admin_id = find_user_by_email("admin@example.com").id
    return {"Authorization": f"Bearer {issue_token(app, admin_id, scopes)}"}


@pytest.mark.db
def test_an_admin_token_uploads_and_members_read(app: Flask) -> None:
    token = admin_token(app, ["full"])
    created = upload(app.test_client(), GOOD_CSV, headers=token)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["name"] == "people" and body["latest_version"] == 1
    assert body["owner"] == "admin@example.com"
    assert body["versions"][0]["rows"] == 4 and body["versions"][0]["format"] == "csv"
    assert body["profile"]["overview"]["duplicate_rows"] == 1
    score = next(c for c in body["profile"]["columns"] if c["name"] == "score")
    assert score["kind"] == "numeric" and score["mean"] == pytest.approx(6.25 / 3)

    again = upload(app.test_client(), parquet_bytes(small_frame()), "p.parquet", headers=token)
    assert again.status_code == 201 and again.get_json()["latest_version"] == 2

    member = signed_in(app, "ann@example.com")
    listed = member.get("/api/v1/datasets?page=1&page_size=10").get_json()
    assert listed["total"] == 1 and listed["items"][0]["rows"] == 200
    detail = member.get("/api/v1/datasets/people").get_json()
    assert [v["number"] for v in detail["versions"]] == [1, 2]
    assert detail["profile"]["version"] == 2


def test_an_admin_session_uploads_with_csrf(app: Flask) -> None:
    admin = signed_in(app, "admin@example.com")
    refused = upload(admin, GOOD_CSV)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "csrf_failed"
    token = csrf_token(admin, "/datasets")
    assert upload(admin, GOOD_CSV, headers={"X-CSRFToken": token}).status_code == 201


def test_who_may_upload(app: Flask) -> None:
    member = signed_in(app, "ann@example.com")
    assert upload(app.test_client(), GOOD_CSV).status_code == 401
    assert (
        upload(
            member, GOOD_CSV, headers={"X-CSRFToken": csrf_token(member, "/datasets")}
        ).status_code
        == 403
    )
    assert (
        upload(app.test_client(), GOOD_CSV, headers=admin_token(app, ["predict"])).status_code
        == 403
    )
    assert stored_files(app) == []


BAD_UPLOADS = [
    (b"\0\1\2binary", "data.csv", 415, "unsupported_format"),
    (b"a,b\n1\n", "data.csv", 422, "ragged_rows"),
    (b"a,b\n", "data.csv", 422, "no_rows"),
    (b"PK\x03\x04", "book.xlsx", 415, "unsupported_format"),
    (b"a\n" + b"1\n" * 60_000, "data.csv", 413, "payload_too_large"),
]


@pytest.mark.parametrize(("data", "filename", "status", "code"), BAD_UPLOADS)
def test_bad_files_get_a_4xx_body_and_leave_nothing(
    app: Flask, data: bytes, filename: str, status: int, code: str
) -> None:
    before = table_counts(app)
    response = upload(app.test_client(), data, filename, headers=admin_token(app, ["full"]))
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"] and "details" in error
    assert table_counts(app) == {**before, "api_tokens": before["api_tokens"] + 1}
    assert stored_files(app) == []


def test_a_body_over_the_upload_limit_is_413_before_it_is_read(
    app_factory: Any, tmp_path: Path
) -> None:
    app = app_factory(ARTIFACTS_DIR=str(tmp_path / "a"), DATASET_MAX_BYTES="1000")
    make_user(app, "admin@example.com", name="Admin", role="admin")
    response = upload(
        app.test_client(), b"a\n" + b"1\n" * 50_000, headers=admin_token(app, ["full"])
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


def test_missing_file_name_or_multipart_are_refused(app: Flask) -> None:
    token = admin_token(app, ["full"])
    client = app.test_client()
    no_file = client.post(
        "/api/v1/datasets", data={"name": "x"}, headers=token, content_type="multipart/form-data"
    )
    assert (
        no_file.status_code == 422 and no_file.get_json()["error"]["details"][0]["field"] == "file"
    )
    no_name = upload(client, GOOD_CSV, name="", headers=token)
    assert no_name.status_code == 422 and no_name.get_json()["error"]["code"] == "invalid_name"
    assert client.post("/api/v1/datasets", json={}, headers=token).status_code == 415


def test_unknown_dataset_and_bad_paging(app: Flask) -> None:
    member = signed_in(app, "ann@example.com")
    missing = member.get("/api/v1/datasets/nothing")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "dataset_not_found"
    assert member.get("/api/v1/datasets?page=0").status_code == 422
    assert member.get("/datasets/nothing").status_code == 404
    assert member.get("/datasets?page=x").status_code == 400
    assert member.get("/datasets?page=%C2%B2").status_code == 400  # "²" is a digit to isdigit()


def test_the_explorer_shows_overview_columns_charts_and_paged_rows(app: Flask) -> None:
    frame = small_frame(130)
    upload(
        app.test_client(),
        parquet_bytes(frame),
        "f.parquet",
        name="sample",
        headers=admin_token(app, ["full"]),
    )
    member = signed_in(app, "ann@example.com")
    listing = member.get("/datasets")
    assert listing.status_code == 200
    assert '<a href="/datasets/sample"><code>sample</code></a>' in listing.get_data(as_text=True)
    assert 'action="/datasets"' not in listing.get_data(as_text=True)  # no upload form for members

    page = member.get("/datasets/sample")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    text = visible_text(parse(html))
    assert "Duplicate rows" in text and "Missing cells" in text and "130" in text
    for column in frame.columns:
        assert f"<code>{column}</code>" in html
    # Chart data sits in JSON blocks that charts.js hands to plotly.js; no inline script.
    blocks = re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', html, re.S)
    figures = {key: json.loads(body) for key, body in blocks}
    assert figures["chart-correlations-data"]["data"][0]["type"] == "heatmap"
    histogram = figures["chart-column-0-data"]["data"][0]
    assert sum(histogram["y"]) == 130
    assert re.findall(r"<script(?![^>]*(?:src=|application/json))", html) == []
    assert "/static/vendor/plotly.min.js" in html and "js/charts.js" in html
    assert "Page 1 of 6" in text

    last = member.get("/datasets/sample?page=6")
    rows = parse(last.get_data(as_text=True))
    assert "Rows 126 to 130 of 130" in visible_text(rows)
    assert member.get("/datasets/sample?page=7").status_code == 404
    assert member.get("/datasets/sample?version=9").status_code == 404
    assert member.get("/datasets/sample?version=%C2%B2").status_code == 404
    assert member.get("/datasets/sample?page=10000000").status_code == 404


def test_plotly_is_served_from_the_installed_package(app: Flask) -> None:
    response = app.test_client().get("/static/vendor/plotly.min.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert b"plotly" in response.get_data()[:2000].lower()
    response.close()
    # The rules plotly.js would inject as <style> elements, read from the same file.
    css = app.test_client().get("/static/vendor/plotly.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    text = css.get_data(as_text=True)
    assert ".js-plotly-plot .plotly .main-svg {position:absolute;" in text
    assert "public" in css.headers["Cache-Control"]
    assert app.test_client().get("/static/vendor/other.js").status_code == 404


def test_only_chart_pages_allow_style_attributes_and_never_inline_styles_or_scripts(
    app: Flask,
) -> None:
    upload(app.test_client(), GOOD_CSV, headers=admin_token(app, ["full"]))
    member = signed_in(app, "ann@example.com")
    policy = member.get("/datasets/people").headers["Content-Security-Policy"]
    assert "style-src-attr 'unsafe-inline'" in policy
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    html = member.get("/datasets/people").get_data(as_text=True)
    assert 'id="plotly.js-style-global" class="no-inline-styles"' in html
    listing = member.get("/datasets").headers["Content-Security-Policy"]
    assert "unsafe-inline" not in listing


def test_an_admin_uploads_from_the_page_and_sees_refusals_beside_the_field(app: Flask) -> None:
    admin = signed_in(app, "admin@example.com")
    token = csrf_token(admin, "/datasets")
    ragged = admin.post(
        "/datasets",
        data={"csrf_token": token, "name": "people", "file": (io.BytesIO(b"a,b\n1\n"), "p.csv")},
        content_type="multipart/form-data",
    )
    assert ragged.status_code == 422
    assert "different numbers of fields" in visible_text(parse(ragged.get_data(as_text=True)))
    assert stored_files(app) == []
    added = admin.post(
        "/datasets",
        data={"csrf_token": token, "name": "people", "file": (io.BytesIO(GOOD_CSV), "p.csv")},
        content_type="multipart/form-data",
    )
    assert added.status_code == 302 and added.location.endswith("/datasets/people")
    assert "Version 1 of people is stored" in admin.get("/datasets/people").get_data(as_text=True)
    member = signed_in(app, "ann@example.com")
    refused = member.post(
        "/datasets",
        data={
            "csrf_token": csrf_token(member, "/datasets"),
            "name": "x",
            "file": (io.BytesIO(GOOD_CSV), "p.csv"),
        },
        content_type="multipart/form-data",
    )
    assert refused.status_code == 403
