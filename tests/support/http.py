"""Requests and answers: credentials in the header forms the API accepts, the API's error
body, and where a redirect may lead."""

from __future__ import annotations

import base64
import re
from urllib.parse import urljoin, urlsplit

from werkzeug.test import TestResponse

from tests.support.users import PASSWORD

# Redirect targets that lead off the site, in the spellings browsers accept (checklist 26).
HOSTILE = [
    "//evil.com",
    "\\\\\\evil.com",
    "/\\evil.com",
    "\\/evil.com",
    " //evil.com",
    "\t//evil.com",
    "https://evil.com",
    "http:///evil.com",
    "javascript:alert(1)",
    "//evil.com/%2F..",
    "/\n/evil.com",
]


def basic(email: str = "ann@example.com", password: str = PASSWORD) -> dict[str, str]:
    """An ``Authorization: Basic`` header for e-mail and password."""
    encoded = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_api_error(response: TestResponse, status: int, code: str | None = None) -> dict:
    """The error body of docs/api.md: {"error": {"code", "message", "details"}} and the status."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    if code is not None:
        assert error["code"] == code, error
    if error["details"] is not None:
        assert isinstance(error["details"], list)
        for item in error["details"]:
            assert set(item) == {"row", "field", "code", "message"}
    return error


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def assert_same_origin(location: str) -> None:
    """Where a browser would go from a page on http://localhost: still http://localhost."""
    # Browsers treat backslashes like slashes and drop tabs and newlines before resolving.
    browser_view = location.replace("\\", "/").replace("\t", "").replace("\n", "").strip()
    target = urlsplit(urljoin("http://localhost/auth/login", browser_view))
    assert target.scheme in ("http", "https"), location
    assert target.netloc == "localhost", location
