import pytest

from tests.support.users import login, make_user


@pytest.mark.db
def test_login_and_me(app, client):
    make_user(app)
    response = login(client)
    assert response.status_code == 302
    me = client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json["email"] == "ann@example.com"
