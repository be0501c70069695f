"""The dataset pages pass the rules of every page (labels, no inline code, nothing from
outside), in English and Korean, and every class they use has a style rule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.datasets import parquet_bytes, small_frame, upload
from tests.support.html import check_page, csrf_token, parse, visible_text
from tests.support.tokens import make_token
from tests.support.users import login, make_user

CSS = Path(__file__).resolve().parents[2] / "modelport" / "static" / "css"


@pytest.fixture
def admin(app_factory: Any, tmp_path: Path) -> FlaskClient:
    app: Flask = app_factory(ARTIFACTS_DIR=str(tmp_path / "artifacts"))
    make_user(app, "admin@example.com", name="Admin", role="admin")
    token = make_token(app, "admin@example.com")
    frame = small_frame(60)
    response = upload(
        app.test_client(),
        parquet_bytes(frame),
        "f.parquet",
        name="sample",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201
    client = app.test_client()
    assert login(client, "admin@example.com").status_code == 302
    return client


def pages(client: FlaskClient) -> list[str]:
    return [client.get(path).get_data(as_text=True) for path in ("/datasets", "/datasets/sample")]


def test_the_pages_pass_the_page_rules_in_english_and_korean(admin: FlaskClient) -> None:
    for html in pages(admin):
        check_page(html, "en")
    admin.post(
        "/language",
        data={"lang": "ko", "next": "/", "csrf_token": csrf_token(admin, "/")},
    )
    listing, explorer = pages(admin)
    check_page(listing, "ko")
    check_page(explorer, "ko")
    assert "데이터셋 추가" in visible_text(parse(listing))
    text = visible_text(parse(explorer))
    for korean in ("개요", "중복 행", "결측 셀", "상관관계", "분포", "숫자", "범주"):
        assert korean in text
    for english in ("Overview", "Duplicate rows", "numeric", "categorical", "Rows"):
        assert english not in text


def test_every_class_the_pages_use_has_a_rule(admin: FlaskClient) -> None:
    css = "".join(p.read_text() for p in CSS.glob("*.css"))
    used = set().union(*(n.classes() for html in pages(admin) for n in parse(html).walk()))
    used.discard("no-inline-styles")  # plotly.js's marker: do not inject <style> elements
    unstyled = {c for c in used if not re.search(rf"\.{re.escape(c)}\b", css)}
    assert not unstyled, f"classes without a rule: {sorted(unstyled)}"
