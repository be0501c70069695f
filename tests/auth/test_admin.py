"""Administration of members: search, roles, disabling (checklist 16, 27, 30)."""

from __future__ import annotations

import pytest

from tests.support.cookies import remember_cookie, replay_remember
from tests.support.databases import table_counts
from tests.support.html import csrf_token, text
from tests.support.tokens import make_token, me_status
from tests.support.users import PASSWORD, is_signed_in, login, make_user, user_row


def _admin_client(app, email: str = "root@example.com"):  # noqa: ANN001, ANN202
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def _post(client, path: str, **data: str):  # noqa: ANN001, ANN202
    return client.post(path, data={**data, "csrf_token": csrf_token(client, "/admin/users")})


@pytest.mark.db
def test_admin_lists_and_searches_users(app):
    make_user(app, "root@example.com", name="Root", role="admin")
    make_user(app, "ann@example.com", name="Ann Lee")
    make_user(app, "bob@example.com", name="Bob Stone")
    admin = _admin_client(app)
    page = text(admin.get("/admin/users"))
    assert "3 users" in page
    assert all(e in page for e in ("root@example.com", "ann@example.com", "bob@example.com"))
    found = text(admin.get("/admin/users?q=STONE"))
    assert "1 user" in found and "bob@example.com" in found and "ann@example.com" not in found
    # Typed text is matched literally: no SQL injection, no LIKE wildcards.
    assert "0 users" in text(admin.get("/admin/users?q=%25' OR 1=1--"))
    assert "0 users" in text(admin.get("/admin/users?q=_"))
    assert "0 users" in text(admin.get("/admin/users?q=%25"))


@pytest.mark.db
def test_members_and_anonymous_cannot_reach_admin_pages(app, client):
    user_id = make_user(app)
    response = client.get("/admin/users")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")
    login(client)
    assert client.get("/admin/users").status_code == 403
    before = table_counts(app)
    response = client.post(
        f"/admin/users/{user_id}/role",
        data={"role": "admin", "csrf_token": csrf_token(client, "/account")},
    )
    assert response.status_code == 403
    assert user_row(app, "ann@example.com")["role"] == "user"
    assert table_counts(app) == before


@pytest.mark.db
def test_demoted_admin_loses_the_rights_on_the_next_request(app):
    make_user(app, "root@example.com", name="Root", role="admin")
    second_id = make_user(app, "second@example.com", name="Second", role="admin")
    root = _admin_client(app)
    second = _admin_client(app, "second@example.com")
    assert second.get("/admin/users").status_code == 200

    response = _post(root, f"/admin/users/{second_id}/role", role="user")
    assert response.status_code == 302
    assert "second@example.com is now user" in text(root.get("/admin/users"))
    assert user_row(app, "second@example.com")["role"] == "user"
    assert second.get("/admin/users").status_code == 403
    assert is_signed_in(second)  # still a member, just not an admin

    assert _post(root, f"/admin/users/{second_id}/role", role="admin").status_code == 302
    assert second.get("/admin/users").status_code == 200


@pytest.mark.db
def test_disabled_member_is_signed_out_and_can_return_when_enabled(app):
    make_user(app, "root@example.com", name="Root", role="admin")
    ann_id = make_user(app)
    root = _admin_client(app)
    ann = app.test_client()
    login(ann, remember=True)
    remember_only = replay_remember(app, remember_cookie(app, ann))
    token = make_token(app)
    assert me_status(app, token) == 200

    response = _post(root, f"/admin/users/{ann_id}/disable")
    assert response.status_code == 302
    assert "ann@example.com is disabled and signed out." in text(root.get("/admin/users"))
    assert not is_signed_in(ann)
    assert remember_only.get("/api/v1/me").status_code == 401
    assert me_status(app, token) == 401
    assert login(app.test_client()).status_code == 400

    assert _post(root, f"/admin/users/{ann_id}/enable").status_code == 302
    assert login(app.test_client()).status_code == 302
    # Disabling terminated them: re-enabling does not bring old tokens or sessions back.
    assert me_status(app, token) == 401
    assert not is_signed_in(remember_only)


@pytest.mark.db
def test_the_last_admin_cannot_be_demoted_or_disabled(app):
    root_id = make_user(app, "root@example.com", name="Root", role="admin")
    root = _admin_client(app)
    before = table_counts(app)

    response = _post(root, f"/admin/users/{root_id}/role", role="user")
    assert response.status_code == 409
    assert "The last administrator cannot be demoted." in text(response)
    response = _post(root, f"/admin/users/{root_id}/disable")
    assert response.status_code == 409
    assert "You cannot disable your own account." in text(response)
    assert user_row(app, "root@example.com")["role"] == "admin"
    assert user_row(app, "root@example.com")["active"] in (True, 1)
    assert table_counts(app) == before
    assert root.get("/admin/users").status_code == 200


@pytest.mark.db
def test_last_active_admin_cannot_be_disabled_by_a_disabled_admins_peer(app):
    """Two admins, one disabled: the other is now the last active one."""
    make_user(app, "root@example.com", name="Root", role="admin")
    second_id = make_user(app, "second@example.com", name="Second", role="admin")
    root = _admin_client(app)
    second = _admin_client(app, "second@example.com")
    root_id = user_row(app, "root@example.com")["id"]
    assert _post(second, f"/admin/users/{root_id}/disable").status_code == 302
    # root is disabled now; second is the last active admin and cannot be demoted.
    assert not is_signed_in(root)
    response = _post(second, f"/admin/users/{second_id}/role", role="user")
    assert response.status_code == 409
    assert user_row(app, "second@example.com")["role"] == "admin"


@pytest.mark.db
@pytest.mark.parametrize(
    ("path", "data", "status"),
    [
        ("/admin/users/{id}/role", {"role": "superuser"}, 400),
        ("/admin/users/{id}/role", {}, 400),
        ("/admin/users/999999/role", {"role": "admin"}, 404),
        ("/admin/users/999999/disable", {}, 404),
        ("/admin/users/999999/enable", {}, 404),
    ],
    ids=["unknown-role", "no-role", "no-user-role", "no-user-disable", "no-user-enable"],
)
def test_bad_admin_requests_change_nothing(app, path, data, status):
    make_user(app, "root@example.com", name="Root", role="admin")
    ann_id = make_user(app)
    root = _admin_client(app)
    before = table_counts(app)
    response = _post(root, path.format(id=ann_id), **data)
    assert response.status_code == status
    assert "Error" in text(response)
    assert user_row(app, "ann@example.com")["role"] == "user"
    assert table_counts(app) == before
    assert login(app.test_client(), "ann@example.com", PASSWORD).status_code == 302


@pytest.mark.db
@pytest.mark.parametrize("action", ["role", "disable", "enable"])
def test_admin_action_on_an_id_beyond_the_column_range_is_404(app, action):
    make_user(app, "root@example.com", name="Root", role="admin")
    root = _admin_client(app)
    before = table_counts(app)
    response = _post(root, f"/admin/users/99999999999999999999/{action}", role="user")
    assert response.status_code == 404
    assert table_counts(app) == before
