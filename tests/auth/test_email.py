"""E-mail confirmation at sign-up and change of e-mail address."""

from __future__ import annotations

import pytest

from tests.support.databases import table_counts
from tests.support.html import csrf_token, field_errors, text
from tests.support.http import path_of
from tests.support.users import PASSWORD, login, make_user, signup, user_row

INVALID = "This link is invalid or has expired"


def _body(message) -> str:  # noqa: ANN001
    return message.get_payload(decode=True).decode()


@pytest.mark.db
def test_signup_confirmation_link_is_needed_before_sign_in(app_factory, mailbox):
    app = app_factory(REQUIRE_EMAIL_CONFIRMATION=True)
    client = app.test_client()
    response = signup(client, "new@example.com", PASSWORD)
    assert response.status_code == 302
    assert "Check your e-mail" in text(client.get("/auth/login"))
    links = mailbox.links("new@example.com")
    assert len(links) == 1
    assert "/auth/confirm/" in links[0]
    assert user_row(app, "new@example.com")["email_confirmed_at"] is None

    refused = login(client, "new@example.com", PASSWORD)
    assert refused.status_code == 400
    assert "Confirm your e-mail address first: open the link we sent you." in field_errors(refused)
    assert client.get("/account").status_code == 302

    opened = app.test_client().get(path_of(links[0]))
    assert opened.status_code == 302
    assert opened.headers["Location"] == "/auth/login"
    assert user_row(app, "new@example.com")["email_confirmed_at"] is not None
    assert login(client, "new@example.com", PASSWORD).status_code == 302
    assert client.get("/account").status_code == 200

    # The link is spent once used.
    again = app.test_client().get(path_of(links[0]))
    assert again.status_code == 400
    assert INVALID in text(again)


@pytest.mark.db
def test_wrong_password_of_an_unconfirmed_account_says_only_wrong_password(app_factory, mailbox):
    app = app_factory(REQUIRE_EMAIL_CONFIRMATION=True)
    signup(app.test_client(), "new@example.com", PASSWORD)
    response = login(app.test_client(), "new@example.com", "not the password at all")
    assert response.status_code == 400
    assert field_errors(response) == ["Wrong e-mail or password."]


@pytest.mark.db
def test_signup_without_confirmation_setting_sends_nothing_and_signs_in(app, mailbox):
    client = app.test_client()
    assert signup(client, "new@example.com", PASSWORD).status_code == 302
    assert mailbox.messages == []
    assert login(client, "new@example.com", PASSWORD).status_code == 302


def _change_email(client, email: str, password: str | None):  # noqa: ANN001, ANN202
    data = {"email": email, "csrf_token": csrf_token(client, "/account")}
    if password is not None:
        data["password"] = password
    return client.post("/account/email", data=data)


@pytest.mark.db
def test_email_change_needs_the_password_and_a_link_from_the_new_address(app, client, mailbox):
    make_user(app)
    login(client)
    before = table_counts(app)

    wrong = _change_email(client, "ann.new@example.com", "not the password at all")
    assert wrong.status_code == 400
    assert "The password is not correct." in field_errors(wrong)
    assert mailbox.messages == []
    assert table_counts(app) == before

    response = _change_email(client, "Ann.New@Example.com", PASSWORD)
    assert response.status_code == 302
    assert "We sent a confirmation link" in text(client.get("/account"))
    links = mailbox.links("ann.new@example.com")
    assert len(links) == 1
    assert mailbox.to("ann@example.com") == []
    # Nothing changes until the link is opened.
    assert user_row(app, "ann@example.com") is not None

    opened = client.get(path_of(links[0]))
    assert opened.status_code == 302
    assert user_row(app, "ann@example.com") is None
    assert user_row(app, "ann.new@example.com") is not None
    notices = mailbox.to("ann@example.com")
    assert len(notices) == 1
    assert "ann.new@example.com" in _body(notices[0])

    assert login(app.test_client(), "ann.new@example.com", PASSWORD).status_code == 302
    assert login(app.test_client(), "ann@example.com", PASSWORD).status_code == 400
    again = client.get(path_of(links[0]))
    assert again.status_code == 400
    assert INVALID in text(again)


@pytest.mark.db
def test_email_change_to_a_taken_address_answers_the_same_but_sends_no_link(app, client, mailbox):
    make_user(app)
    make_user(app, "bob@example.com", name="Bob")
    login(client)
    before = table_counts(app)
    taken = _change_email(client, "bob@example.com", PASSWORD)
    taken_page = text(client.get("/account"))
    free = _change_email(client, "free@example.com", PASSWORD)
    free_page = text(client.get("/account"))

    assert taken.status_code == free.status_code == 302
    assert taken.headers["Location"] == free.headers["Location"]
    assert "We sent a confirmation link" in taken_page
    assert "We sent a confirmation link" in free_page
    assert mailbox.to("bob@example.com") == []
    assert len(mailbox.to("free@example.com")) == 1
    assert len(mailbox.messages) == 1
    assert table_counts(app) == before
    assert user_row(app, "ann@example.com") is not None


@pytest.mark.db
def test_email_change_link_is_refused_if_the_address_was_taken_meanwhile(app, client, mailbox):
    make_user(app)
    login(client)
    _change_email(client, "late@example.com", PASSWORD)
    (link,) = mailbox.links("late@example.com")
    make_user(app, "late@example.com", name="Late")
    response = client.get(path_of(link))
    assert response.status_code == 400
    assert INVALID in text(response)
    assert user_row(app, "ann@example.com") is not None


@pytest.mark.db
@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("not-an-address", "Invalid email address."),
        ("ann@example.com", "This is already your e-mail address."),
        ("", "This field is required."),
    ],
    ids=["invalid", "same", "empty"],
)
def test_bad_email_change_is_a_400_with_a_message(app, client, mailbox, email, message):
    make_user(app)
    login(client)
    before = table_counts(app)
    response = _change_email(client, email, PASSWORD)
    assert response.status_code == 400
    assert message in field_errors(response)
    assert table_counts(app) == before
    assert mailbox.messages == []
