"""Pages: every page renders in English and Korean, forms are accessible, nothing is external.

Issue 2 item 8 (layout, language switch, accessible forms, no CDN) and the checklist items on
the Content-Security-Policy (no inline script or style) and state changes by POST only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.databases import table_counts
from tests.support.html import (
    Node,
    assert_error_beside_field,
    check_page,
    csrf_token,
    parse,
    visible_text,
)
from tests.support.users import PASSWORD, login, make_user

PUBLIC_PAGES = ["/", "/auth/signup", "/auth/login", "/auth/reset"]
SIGNED_IN_PAGES = ["/account", "/account/tokens"]
ADMIN_PAGES = ["/admin/users"]

# English UI text that must not be left on a Korean page.
ENGLISH_UI = [
    "Sign in",
    "Sign out",
    "Create account",
    "Password",
    "E-mail",
    "Account",
    "Your account",
    "API tokens",
    "Users",
    "Search",
    "Skip to content",
]

# Words that stay as they are in Korean: names of products, protocols and API identifiers.
UNTRANSLATED_WORDS = {
    "Modelport",
    "English",
    "API",
    "JSON",
    "CSV",
    "ONNX",
    "MLflow",
    "scikit",
    "learn",
    "SQLite",
    "PostgreSQL",
    "MariaDB",
    "Redis",
    "gunicorn",
    "Kubernetes",
    "Open",
    "Inference",
    "Protocol",
    "predict",
    "full",
}

# Korean text each page must show (the title and the main call to action).
KOREAN_ON_PAGE = {
    "/": ["머신러닝", "계정 만들기", "로그인"],
    "/auth/signup": ["회원 가입", "이메일", "비밀번호 확인"],
    "/auth/login": ["로그인", "이 기기에서 로그인 상태 유지", "비밀번호를 잊으셨습니까?"],
    "/auth/reset": ["비밀번호 재설정", "링크 보내기"],
    "/account": ["내 계정", "비밀번호 변경", "계정 삭제", "가입일"],
    "/account/tokens": ["API 토큰", "토큰 만들기", "만료일(선택 사항)"],
    "/admin/users": ["이메일 또는 이름으로 검색", "관리자", "비활성화"],
}

CSS = Path(__file__).resolve().parent.parent / "modelport" / "static" / "css" / "modelport.css"


# --- checks every page must pass ----------------------------------------------------------


def check_korean(root: Node, path: str) -> None:
    """Fully Korean: the known strings are there and no English UI text is left."""
    text = visible_text(root)
    for korean in KOREAN_ON_PAGE[path]:
        assert korean in text, f"{path}: missing {korean!r}"
    for english in ENGLISH_UI:
        assert english not in text, f"{path}: English {english!r} on the Korean page"
    without_addresses = re.sub(r"\S+@\S+", " ", text)
    leftovers = set(re.findall(r"[A-Za-z]{3,}", without_addresses)) - UNTRANSLATED_WORDS
    assert not leftovers, f"{path}: untranslated words {sorted(leftovers)}"


def switch_language(client: FlaskClient, lang: str, next_path: str = "/") -> None:
    response = client.post(
        "/language",
        data={"lang": lang, "next": next_path, "csrf_token": csrf_token(client, "/")},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == next_path


def get_page(client: FlaskClient, path: str, **kwargs: object) -> str:
    response = client.get(path, **kwargs)
    assert response.status_code == 200, f"{path}: {response.status_code}"
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


# --- public pages -----------------------------------------------------------------------


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_public_page_in_english(client: FlaskClient, path: str) -> None:
    root = check_page(get_page(client, path), "en")
    text = visible_text(root)
    assert "Sign in" in text and "한국어" in text
    assert "로그인" not in text


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_public_page_in_korean_after_the_switch(client: FlaskClient, path: str) -> None:
    switch_language(client, "ko", path)
    check_korean(check_page(get_page(client, path), "ko"), path)


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_public_page_in_korean_from_accept_language(client: FlaskClient, path: str) -> None:
    html = get_page(client, path, headers={"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5"})
    check_korean(check_page(html, "ko"), path)


def test_home_page_says_what_modelport_does(client: FlaskClient) -> None:
    text = visible_text(parse(get_page(client, "/")))
    assert "Modelport serves scikit-learn, ONNX and MLflow models" in text
    assert "Create an account" in text


def test_switch_choice_wins_over_accept_language_and_switches_back(client: FlaskClient) -> None:
    switch_language(client, "ko")
    html = get_page(client, "/auth/login", headers={"Accept-Language": "en"})
    assert '<html lang="ko">' in html
    switch_language(client, "en", "/auth/login")
    html = get_page(client, "/auth/login", headers={"Accept-Language": "ko"})
    assert '<html lang="en">' in html and "Sign in" in html


# --- the language switch itself -----------------------------------------------------------


def test_language_switch_refuses_an_unknown_language(client: FlaskClient) -> None:
    token = csrf_token(client, "/")
    response = client.post("/language", data={"lang": "xx", "csrf_token": token})
    assert response.status_code == 400
    # Nothing was remembered: the next page is still English.
    assert '<html lang="en">' in get_page(client, "/")


def test_language_switch_is_post_only_and_needs_csrf(client: FlaskClient) -> None:
    assert client.get("/language?lang=ko").status_code == 405
    assert client.post("/language", data={"lang": "ko"}).status_code == 400
    assert '<html lang="en">' in get_page(client, "/")


def test_language_switch_returns_only_within_the_site(client: FlaskClient) -> None:
    token = csrf_token(client, "/")
    response = client.post(
        "/language", data={"lang": "ko", "next": "https://evil.example/", "csrf_token": token}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_language_form_returns_to_the_page_shown(client: FlaskClient) -> None:
    root = parse(get_page(client, "/auth/reset?x=1"))
    (form,) = [n for n in root.walk() if n.tag == "form" and n.attrs.get("action") == "/language"]
    fields = {n.attrs.get("name"): n.attrs.get("value") for n in form.walk() if n.tag in {"input"}}
    assert fields["next"] == "/auth/reset?x=1"
    buttons = {n.attrs["value"]: n for n in form.walk() if n.tag == "button"}
    assert set(buttons) == {"en", "ko"}
    assert buttons["en"].attrs.get("aria-current") == "true"
    assert buttons["ko"].attrs.get("lang") == "ko"


# --- forms with errors ------------------------------------------------------------------


def test_signup_errors_are_shown_beside_their_fields(app: Flask, client: FlaskClient) -> None:
    before = table_counts(app)
    response = client.post(
        "/auth/signup",
        data={
            "email": "not-an-address",
            "name": "",
            "password": PASSWORD,
            "password2": "something else entirely",
            "csrf_token": csrf_token(client, "/auth/signup"),
        },
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    check_page(html, "en")
    assert_error_beside_field(html, "email", "Invalid email address.")
    assert_error_beside_field(html, "name", "This field is required.")
    assert_error_beside_field(html, "password2", "The passwords do not match.")
    # The password hint is still read with the field.
    password = [n for n in parse(html).walk() if n.attrs.get("id") == "password"][0]
    assert password.attrs["aria-describedby"] == "password-hint"
    assert 'value="correct horse' not in html, "a password was echoed back"
    assert table_counts(app) == before


def test_password_policy_error_is_shown_beside_the_field_in_korean(
    app: Flask, client: FlaskClient
) -> None:
    before = table_counts(app)
    switch_language(client, "ko", "/auth/signup")
    response = client.post(
        "/auth/signup",
        data={
            "email": "new@example.com",
            "name": "새 회원",
            "password": "short",
            "password2": "short",
            "csrf_token": csrf_token(client, "/auth/signup"),
        },
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    check_page(html, "ko")
    assert_error_beside_field(html, "password", "15자 이상으로 입력하십시오.")
    assert table_counts(app) == before


def test_login_error_in_korean_names_no_english(app: Flask, client: FlaskClient) -> None:
    switch_language(client, "ko", "/auth/login")
    response = client.post(
        "/auth/login",
        data={"email": "", "password": "", "csrf_token": csrf_token(client, "/auth/login")},
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert_error_beside_field(html, "email", "이 항목은 필수입니다.")
    check_korean(check_page(html, "ko"), "/auth/login")


# --- signed-in pages --------------------------------------------------------------------


def _signed_in(app: Flask, client: FlaskClient, role: str = "user") -> None:
    make_user(app, "minji@example.com", name="김민지", role=role)
    assert login(client, "minji@example.com", PASSWORD).status_code == 302


@pytest.mark.db
def test_signed_in_pages_in_english_and_korean(app: Flask, client: FlaskClient) -> None:
    _signed_in(app, client)
    for path in SIGNED_IN_PAGES:
        root = check_page(get_page(client, path), "en")
        assert "Sign out" in visible_text(root)
    switch_language(client, "ko", "/account")
    for path in SIGNED_IN_PAGES:
        check_korean(check_page(get_page(client, path), "ko"), path)
    assert "사용자" in visible_text(parse(get_page(client, "/account")))  # the role, translated


@pytest.mark.db
def test_signed_in_pages_in_korean_from_accept_language(app: Flask, client: FlaskClient) -> None:
    _signed_in(app, client)
    for path in SIGNED_IN_PAGES:
        html = get_page(client, path, headers={"Accept-Language": "ko"})
        check_korean(check_page(html, "ko"), path)


@pytest.mark.db
def test_admin_users_page_in_english_and_korean(app: Flask, client: FlaskClient) -> None:
    _signed_in(app, client, role="admin")
    make_user(app, "jun@example.com", name="박준")
    root = check_page(get_page(client, "/admin/users"), "en")
    text = visible_text(root)
    assert "2 users" in text and "jun@example.com" in text
    switch_language(client, "ko", "/admin/users")
    root = check_page(get_page(client, "/admin/users"), "ko")
    check_korean(root, "/admin/users")
    text = visible_text(root)
    assert "사용자 2명" in text and "활성" in text


@pytest.mark.db
def test_new_token_is_shown_once_with_a_copy_button_from_a_file(
    app: Flask, client: FlaskClient
) -> None:
    _signed_in(app, client)
    switch_language(client, "ko", "/account/tokens")
    response = client.post(
        "/account/tokens",
        data={
            "name": "노트북",
            "scope": "predict",
            "csrf_token": csrf_token(client, "/account/tokens"),
        },
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    root = check_page(html, "ko")
    check_korean(root, "/account/tokens")
    (token,) = [n for n in root.walk() if n.attrs.get("id") == "new-token"]
    assert token.tag == "code" and token.all_text().startswith("mp_")
    (button,) = [n for n in root.walk() if n.attrs.get("data-copy") == "new-token"]
    assert "hidden" in button.attrs  # shown by the script only
    scripts = [n.attrs["src"] for n in root.walk() if n.tag == "script"]
    assert scripts == ["/static/js/copy.js"]
    assert client.get("/static/js/copy.js").status_code == 200
    # Shown once: the next visit lists the token by its prefix only.
    again = get_page(client, "/account/tokens")
    assert token.all_text() not in again and 'id="new-token"' not in again


@pytest.mark.db
def test_nav_marks_the_current_page(app: Flask, client: FlaskClient) -> None:
    _signed_in(app, client)
    root = parse(get_page(client, "/account/tokens"))
    current = [n.attrs["href"] for n in root.walk() if n.attrs.get("aria-current") == "page"]
    assert current == ["/account/tokens"]


@pytest.mark.db
def test_language_switch_after_a_failed_post_returns_to_a_page_that_exists(
    app: Flask, client: FlaskClient
) -> None:
    _signed_in(app, client)
    response = client.post(
        "/account/password",
        data={"current_password": "", "csrf_token": csrf_token(client, "/account")},
    )
    assert response.status_code == 400
    root = parse(response.get_data(as_text=True))
    (next_input,) = [n for n in root.walk() if n.attrs.get("name") == "next"]
    assert next_input.attrs["value"] == "/account"
    assert get_page(client, next_input.attrs["value"])


def test_error_pages_are_translated(client: FlaskClient) -> None:
    response = client.get("/no-such-page", headers={"Accept-Language": "ko"})
    assert response.status_code == 404
    root = check_page(response.get_data(as_text=True), "ko")
    assert "페이지를 찾을 수 없습니다" in visible_text(root)


# --- the stylesheet ---------------------------------------------------------------------


@pytest.mark.db
def test_stylesheet_is_local_and_styles_every_class_the_pages_use(
    app: Flask, client: FlaskClient
) -> None:
    css = CSS.read_text()
    assert "@import" not in css and not re.search(r"url\(\s*['\"]?(https?:)?//", css)
    assert client.get("/static/css/modelport.css").status_code == 200
    pages = [get_page(client, path) for path in PUBLIC_PAGES]
    bad = client.post("/auth/signup", data={"csrf_token": csrf_token(client, "/auth/signup")})
    pages.append(bad.get_data(as_text=True))
    _signed_in(app, client, role="admin")
    pages += [get_page(client, path) for path in [*SIGNED_IN_PAGES, *ADMIN_PAGES]]
    created = client.post(
        "/account/tokens",
        data={"name": "t", "scope": "full", "csrf_token": csrf_token(client, "/account/tokens")},
    )
    pages.append(created.get_data(as_text=True))
    used = set().union(*(n.classes() for html in pages for n in parse(html).walk()))
    unstyled = {c for c in used if not re.search(rf"\.{re.escape(c)}\b", css)}
    assert not unstyled, f"classes without a rule in modelport.css: {sorted(unstyled)}"
