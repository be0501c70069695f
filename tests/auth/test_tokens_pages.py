"""API tokens on /account/tokens and in the token service (checklist 28, 31)."""

from __future__ import annotations

import hashlib
import re
import string
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from modelport.models import ApiToken
from modelport.models.types import utcnow
from tests.support.databases import execute, rows, table_counts
from tests.support.html import csrf_token, field_errors, text
from tests.support.tokens import make_token, me_status
from tests.support.users import login, make_user

URLSAFE = set(string.ascii_letters + string.digits + "-_")


def _create(client, name: str = "laptop", scope: str = "predict", expires_on: str = ""):  # noqa: ANN001, ANN202
    return client.post(
        "/account/tokens",
        data={
            "name": name,
            "scope": scope,
            "expires_on": expires_on,
            "csrf_token": csrf_token(client, "/account/tokens"),
        },
    )


def _shown_token(response) -> str:  # noqa: ANN001
    match = re.search(r'<code class="token" id="new-token">([^<]+)</code>', text(response))
    assert match, "the new token is not on the page"
    return match.group(1)


@pytest.mark.db
def test_token_is_shown_once_and_stored_only_as_a_hash(app, client):
    make_user(app)
    login(client)
    response = _create(client, "laptop", "full")
    assert response.status_code == 200
    plaintext = _shown_token(response)
    assert "Copy it now: it is shown only once." in text(response)

    (row,) = rows(app, "api_tokens")
    assert row["secret_hash"] == hashlib.sha256(plaintext.encode()).hexdigest()
    assert all(plaintext not in str(value) for value in row.values())
    assert plaintext.startswith(row["prefix"])
    assert row["scopes"] == "full"

    # At least 128 bits from the CSPRNG: the random part is >= 22 URL-safe base64 characters.
    random_part = plaintext[len(row["prefix"]) + 1 :]
    assert set(random_part) <= URLSAFE
    assert len(random_part) * 6 >= 128
    other = make_token(app)
    assert other[len(row["prefix"]) + 1 :] != random_part

    listing = client.get("/account/tokens")
    assert listing.status_code == 200
    assert "laptop" in text(listing) and row["prefix"] in text(listing)
    assert plaintext not in text(listing)
    assert random_part not in text(listing)


@pytest.mark.db
def test_token_works_until_revoked_and_records_last_use(app, client):
    make_user(app)
    login(client)
    plaintext = _shown_token(_create(client))
    (row,) = rows(app, "api_tokens")
    assert row["last_used_at"] is None
    assert me_status(app, plaintext) == 200
    assert rows(app, "api_tokens")[0]["last_used_at"] is not None

    response = client.post(
        f"/account/tokens/{row['id']}/revoke",
        data={"csrf_token": csrf_token(client, "/account/tokens")},
    )
    assert response.status_code == 302
    assert "The token was revoked." in text(client.get("/account/tokens"))
    assert table_counts(app)["api_tokens"] == 0
    assert me_status(app, plaintext) == 401


@pytest.mark.db
def test_revoking_another_users_token_is_404_and_it_keeps_working(app, client):
    make_user(app)
    make_user(app, "bob@example.com", name="Bob")
    bobs = make_token(app, "bob@example.com")
    (bob_row,) = rows(app, "api_tokens")
    login(client)
    before = table_counts(app)
    response = client.post(
        f"/account/tokens/{bob_row['id']}/revoke",
        data={"csrf_token": csrf_token(client, "/account/tokens")},
    )
    assert response.status_code == 404
    assert table_counts(app) == before
    assert me_status(app, bobs) == 200
    assert bob_row["prefix"] not in text(client.get("/account/tokens"))


@pytest.mark.db
def test_expired_token_is_refused(app):
    make_user(app)
    plaintext = make_token(app)
    assert me_status(app, plaintext) == 200
    execute(
        app,
        sa.update(ApiToken.__table__).values(expires_at=utcnow() - timedelta(seconds=1)),
    )
    assert me_status(app, plaintext) == 401


@pytest.mark.db
def test_token_with_an_expiry_date_works_until_that_day(app, client):
    make_user(app)
    login(client)
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    plaintext = _shown_token(_create(client, "short-lived", expires_on=tomorrow))
    (row,) = rows(app, "api_tokens")
    assert row["expires_at"] is not None
    assert me_status(app, plaintext) == 200


@pytest.mark.db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": ""}, "This field is required."),
        ({"name": "x" * 101}, "Field cannot be longer than 100 characters."),
        ({"scope": "admin"}, "Not a valid choice."),
        ({"expires_on": "yesterday"}, "Not a valid date value."),
        ({"expires_on": "2001-01-01"}, "The expiry must be in the future."),
    ],
    ids=["no-name", "long-name", "bad-scope", "bad-date", "past-date"],
)
def test_bad_token_form_is_a_400_and_creates_nothing(app, client, data, message):
    make_user(app)
    login(client)
    before = table_counts(app)
    response = client.post(
        "/account/tokens",
        data={
            "name": "laptop",
            "scope": "predict",
            "csrf_token": csrf_token(client, "/account/tokens"),
            **data,
        },
    )
    assert response.status_code == 400
    assert message in field_errors(response)
    assert 'id="new-token"' not in text(response)
    assert table_counts(app) == before


@pytest.mark.db
def test_revoke_of_an_unknown_id_is_404(app, client):
    make_user(app)
    login(client)
    response = client.post(
        "/account/tokens/424242/revoke", data={"csrf_token": csrf_token(client, "/account")}
    )
    assert response.status_code == 404
    assert "Error 404" in text(response)


@pytest.mark.db
def test_revoke_of_an_id_beyond_the_column_range_is_404(app, client):
    make_user(app)
    login(client)
    response = client.post(
        "/account/tokens/99999999999999999999/revoke",
        data={"csrf_token": csrf_token(client, "/account")},
    )
    assert response.status_code == 404
